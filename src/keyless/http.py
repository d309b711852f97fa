"""The one HTTP seam of keyless: a tiny client protocol and its standard-library implementation.

Production code takes an ``HttpClient`` argument that defaults to ``UrllibClient()``; tests pass a
fake or point the real client at a server on 127.0.0.1. Every request has ONE deadline for all of
it (connect, TLS handshake, sending, status line, headers and body), not a timeout per socket
read: a server that sends one byte every few seconds cannot hold a request past its deadline.
Bodies are capped (``keyless.limits``). TLS is verified against the system store, or against
``ca_bundle`` when one is given (the local stack's CA).
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, cast

from keyless.errors import NetworkError
from keyless.limits import HTTP_MAX_BODY_BYTES, HTTP_TIMEOUT_SECONDS
from keyless.urls import has_userinfo, shown_url


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class HttpClient(Protocol):
    def get(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> HttpResponse:
        """GET ``url`` within ``timeout`` seconds in all (the client's default when ``None``).

        Any HTTP status is a response; only transport failures raise ``NetworkError``
        (connection refused, TLS failure, the deadline passed)."""
        ...


class HttpPoster(Protocol):
    def post(
        self,
        url: str,
        *,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        """POST ``body`` to ``url`` within ``timeout`` seconds in all, as ``HttpClient.get``."""
        ...


class TransportError(NetworkError):
    """The request failed in transit (no connection, reset, closed, timed out); ``failure`` is
    the exception the transport raised, for callers that name the kind of failure."""

    def __init__(self, message: str, *, failure: BaseException) -> None:
        super().__init__(message)
        self.failure = failure


class DeadlineExceeded(TimeoutError):
    """The request's total deadline passed (raised inside the transport, reported as
    ``NetworkError``)."""


class _Deadline:
    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        """Seconds left; ``DeadlineExceeded`` once none are."""
        left = self._end - self._clock()
        if left <= 0:
            raise DeadlineExceeded(f"no complete answer within {round(self.seconds, 1):g} s")
        return left


class _DeadlineReader(io.RawIOBase):
    """The socket's byte stream for ``http.client``, each read given only the time left."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        super().__init__()
        self._sock = sock
        # makefile() keeps the descriptor open after urllib closes the socket object itself.
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline
        #: Reads done, for tests that bound the work a slow server can cause.
        self.reads = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(self._deadline.remaining())
        self.reads += 1
        try:
            return self._raw.readinto(buffer)
        except TimeoutError:
            self._deadline.remaining()  # the deadline's own error when it is the cause
            raise

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """What ``HTTPResponse`` is given instead of the socket: it only calls ``makefile``."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str, *args: object, **kwargs: object) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


def _response_class(deadline: _Deadline) -> type[http.client.HTTPResponse]:
    class _Response(http.client.HTTPResponse):
        def __init__(
            self,
            sock: socket.socket,
            debuglevel: int = 0,
            method: str | None = None,
            url: str | None = None,
        ) -> None:
            wrapped = cast(socket.socket, _DeadlineSocket(sock, deadline))
            super().__init__(wrapped, debuglevel, method, url)

    return _Response


def _arm(connection: http.client.HTTPConnection, deadline: _Deadline) -> None:
    """Make ``connection`` connect, handshake, send and read within ``deadline``."""

    def connect(
        address: tuple[str, int], timeout: object = None, source_address: object = None
    ) -> socket.socket:
        sock = socket.create_connection(address, deadline.remaining())
        try:
            # What is left bounds the TLS handshake (one deadline in CPython's ssl module) and
            # sendall (one deadline for all the data since Python 3.5); reads re-arm it each time.
            sock.settimeout(deadline.remaining())
        except BaseException:
            sock.close()
            raise
        return sock

    connection._create_connection = connect  # type: ignore[attr-defined]
    connection.response_class = _response_class(deadline)


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, *, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        _arm(self, deadline)


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, *, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        _arm(self, deadline)


class _HttpHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(partial(_HTTPConnection, deadline=self._deadline), req)


class _HttpsHandler(urllib.request.HTTPSHandler):
    def __init__(self, context: ssl.SSLContext, deadline: _Deadline) -> None:
        super().__init__(context=context)
        self._tls = context
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = partial(_HTTPSConnection, deadline=self._deadline)
        return self.do_open(connection, req, context=self._tls)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect could carry a bearer token to another host; callers handle 3xx themselves.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class UrllibClient:
    """``HttpClient`` and ``HttpPoster`` on the standard library. Redirects are not followed;
    proxies from the environment (``HTTPS_PROXY``, ``NO_PROXY``) are honoured as urllib does."""

    def __init__(
        self,
        *,
        ca_bundle: Path | None = None,
        loopback_ca_bundle: Path | None = None,
        timeout: float = HTTP_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        """``ca_bundle`` replaces the system's CAs for every host; ``loopback_ca_bundle`` is
        trusted besides them for loopback hosts only (the local stack's CA)."""
        self._timeout = timeout
        self._clock = clock
        self._context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
        self._loopback_context = self._context
        if loopback_ca_bundle is not None and ca_bundle is None:
            self._loopback_context = ssl.create_default_context()
            self._loopback_context.load_verify_locations(cafile=str(loopback_ca_bundle))

    def get(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> HttpResponse:
        return self._request("GET", url, None, headers, timeout)

    def post(
        self,
        url: str,
        *,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        return self._request("POST", url, body, headers, timeout)

    def _request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        timeout: float | None,
    ) -> HttpResponse:
        shown = shown_url(url)
        if not url.startswith(("https://", "http://")):
            raise NetworkError(f"refusing to fetch {shown}: only http(s) URLs are supported")
        if has_userinfo(url):
            # urllib would send it as part of the host, and its errors would echo it.
            raise NetworkError(
                f"refusing to fetch {shown}: a URL with user:password@ is not supported",
                remedy="Remove the user info from the URL; keyless never sends it.",
            )
        deadline = _Deadline(timeout if timeout is not None else self._timeout, self._clock)
        # One opener per request: its handlers carry this request's deadline.
        context = self._loopback_context if is_loopback(url) else self._context
        opener = urllib.request.build_opener(
            _HttpsHandler(context, deadline), _HttpHandler(deadline), _NoRedirect()
        )
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
            url, data=body, headers=dict(headers or {}), method=method
        )
        try:
            try:
                opened = opener.open(request, timeout=deadline.remaining())
            except urllib.error.HTTPError as exc:
                # Any status is an answer; its body is read within the same deadline.
                with exc:
                    body = exc.read(HTTP_MAX_BODY_BYTES + 1) if exc.fp else b""
                status = exc.code
                response_headers = dict(exc.headers.items()) if exc.headers else {}
            else:
                with opened as response:
                    body = response.read(HTTP_MAX_BODY_BYTES + 1)
                    status = response.status
                    response_headers = dict(response.headers.items())
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise TransportError(f"cannot reach {shown}: {_reason(reason)}", failure=exc) from None
        if len(body) > HTTP_MAX_BODY_BYTES:
            raise NetworkError(f"response from {shown} is larger than {HTTP_MAX_BODY_BYTES} bytes")
        return HttpResponse(status=status, body=body, headers=response_headers)


def is_loopback(url: str) -> bool:
    """True when ``url``'s host is a loopback address or ``localhost``."""
    try:
        host = urllib.parse.urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reason(reason: object) -> str:
    if isinstance(reason, DeadlineExceeded):
        return str(reason)
    if isinstance(reason, TimeoutError):
        return "timed out"
    text = str(reason) or type(reason).__name__
    return " ".join(text.split())
