"""How the gateway gets issuers' key sets: one total deadline per fetch, and few fetches.

Two things ``keyless.tokens``' defaults do not give the gateway:

* ``DeadlineHttpClient``: a GET whose whole exchange (connect, TLS handshake, head, body) must end
  by one monotonic deadline. A per-read timeout lets a server that sends a byte every few seconds
  hold an exchange for minutes; here every socket operation gets only the time that is left.
* ``GatewayKeyCache``: refetches an issuer's keys on an unknown ``kid`` at once (a rotation shows
  on the next exchange) but at most once per ``GATEWAY_JWKS_REFRESH_MIN_INTERVAL_SECONDS`` per
  issuer, with one fetch in flight per issuer that every waiting exchange shares; discovery and
  key set of one fetch share one deadline (``GATEWAY_KEY_FETCH_DEADLINE_SECONDS``).
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from keyless.errors import IssuerError, NetworkError, TokenVerificationError
from keyless.http import HttpClient, HttpResponse
from keyless.limits import (
    GATEWAY_JWKS_REFRESH_MIN_INTERVAL_SECONDS,
    GATEWAY_KEY_FETCH_DEADLINE_SECONDS,
    GATEWAY_KEY_HEAD_MAX_BYTES,
    GATEWAY_KEY_READ_BYTES,
    HTTP_MAX_BODY_BYTES,
    JWKS_CACHE_TTL_SECONDS,
)
from keyless.tokens import IssuerUrl, JwksCache, VerificationKey, fetch_jwks

__all__ = ["DeadlineHttpClient", "GatewayKeyCache", "deadline_fetcher"]


Clock = Callable[[], float]


class DeadlineHttpClient:
    """``HttpClient`` whose requests all end by one deadline (``until``), given as a time of
    ``time.monotonic``. One TLS context, made once, serves every request. Redirects are not
    followed; the response body is capped at ``HTTP_MAX_BODY_BYTES``."""

    def __init__(
        self,
        *,
        ca_bundle: Path | None = None,
        until: float | None = None,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self._context = context or ssl.create_default_context(
            cafile=str(ca_bundle) if ca_bundle else None
        )
        self._until = until

    def until(self, deadline: float) -> DeadlineHttpClient:
        """The same client (same TLS context) with every request ending by ``deadline``."""
        return DeadlineHttpClient(context=self._context, until=deadline)

    def get(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> HttpResponse:
        deadline = self._until
        if timeout is not None or deadline is None:
            own = time.monotonic() + (timeout or GATEWAY_KEY_FETCH_DEADLINE_SECONDS)
            deadline = own if deadline is None else min(deadline, own)
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise NetworkError(f"refusing to fetch {_origin(url)}: only http(s) URLs are supported")
        origin = _origin(url)
        try:
            raw = self._exchange(parts, headers or {}, deadline)
        except TimeoutError as exc:
            raise NetworkError(f"{origin} did not answer in time") from exc
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise NetworkError(f"cannot reach {origin}: {exc}") from exc
        return _parse(raw, origin)

    def _exchange(self, parts: SplitResult, headers: Mapping[str, str], deadline: float) -> bytes:
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        sock = socket.create_connection((host, port), timeout=_remaining(deadline))
        try:
            if parts.scheme == "https":
                sock.settimeout(_remaining(deadline))
                # The handshake is one call; CPython bounds its whole loop by the socket timeout.
                sock = self._context.wrap_socket(sock, server_hostname=host)
            sock.settimeout(_remaining(deadline))
            sock.sendall(request)
            return _read_response(sock, deadline)
        finally:
            sock.close()


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def _read_response(sock: socket.socket, deadline: float) -> bytes:
    """Bytes of one response, read until the server closes or the response is complete."""
    data = bytearray()
    expected: int | None = None
    while True:
        sock.settimeout(_remaining(deadline))
        piece = sock.recv(GATEWAY_KEY_READ_BYTES)
        if not piece:
            return bytes(data)
        data += piece
        if len(data) > HTTP_MAX_BODY_BYTES + GATEWAY_KEY_HEAD_MAX_BYTES:
            raise ValueError(f"response larger than {HTTP_MAX_BODY_BYTES} bytes")
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            if len(data) > GATEWAY_KEY_HEAD_MAX_BYTES:
                raise ValueError("response head too large")
            continue
        if expected is None:
            expected = _announced_length(bytes(data[:head_end]))
        if expected is not None and expected >= 0 and len(data) >= head_end + 4 + expected:
            return bytes(data)
        if expected == -1 and data.endswith(b"0\r\n\r\n"):
            return bytes(data)  # the last chunk of a chunked body


def _announced_length(head: bytes) -> int | None:
    """Content-Length from ``head``; -1 for a chunked body; None when the close ends it."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            return -1
        if name == b"content-length":
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


class _Buffered:
    """What ``http.client.HTTPResponse`` reads from: the response already received."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str) -> io.BufferedIOBase:
        return io.BytesIO(self._data)


def _parse(raw: bytes, origin: str) -> HttpResponse:
    response = http.client.HTTPResponse(_Buffered(raw))  # type: ignore[arg-type]
    try:
        response.begin()
        body = response.read(HTTP_MAX_BODY_BYTES + 1)
    except (http.client.HTTPException, ValueError) as exc:
        raise NetworkError(f"incomplete or malformed response from {origin}") from exc
    if len(body) > HTTP_MAX_BODY_BYTES:
        raise NetworkError(f"response from {origin} is larger than {HTTP_MAX_BODY_BYTES} bytes")
    return HttpResponse(status=response.status, body=body, headers=dict(response.getheaders()))


def _origin(url: str) -> str:
    return url.split("?", 1)[0]


# --- the key cache -------------------------------------------------------------------------------


@dataclass(slots=True)
class _IssuerKeys:
    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: Mapping[str, VerificationKey] | None = None
    #: When the fetch that gave ``keys`` started, and when it ended.
    started_at: float = float("-inf")
    fetched_at: float = float("-inf")
    #: When the last attempt of any kind ended, its failure if it failed.
    attempted_at: float | None = None
    failure: IssuerError | None = None
    #: When the last refetch for an unknown ``kid`` ended.
    refreshed_at: float | None = None


class GatewayKeyCache(JwksCache):
    """The gateway's ``JwksCache``: per issuer, one fetch in flight at a time, whose result
    every exchange that waited for it uses; an unknown ``kid`` refetches at once unless the keys
    were fetched after the exchange arrived or a refetch ended less than
    ``min_refresh_interval`` seconds ago. Keys are used for ``ttl`` seconds. A failed fetch
    keeps the last good keys and is not retried within the interval."""

    def __init__(
        self,
        *,
        fetch: Callable[[IssuerUrl, float], Mapping[str, VerificationKey]],
        ttl: float = JWKS_CACHE_TTL_SECONDS,
        min_refresh_interval: float = GATEWAY_JWKS_REFRESH_MIN_INTERVAL_SECONDS,
        deadline: float = GATEWAY_KEY_FETCH_DEADLINE_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(ttl=ttl, min_refresh_interval=min_refresh_interval, clock=clock)
        self._fetch = fetch
        self._ttl_seconds = ttl
        self._interval = min_refresh_interval
        self._deadline = deadline
        self._now = clock
        self._issuers: dict[IssuerUrl, _IssuerKeys] = {}
        self._issuers_lock = threading.Lock()

    def key(self, issuer: IssuerUrl, kid: str, *, http: HttpClient) -> VerificationKey:
        arrived = self._now()
        with self._issuers_lock:
            state = self._issuers.setdefault(issuer, _IssuerKeys())
        # Wait for a fetch in flight no longer than a fetch may take.
        if not state.lock.acquire(timeout=self._deadline):
            raise IssuerError(f"the keys of {issuer} are still being fetched") from NetworkError(
                f"{issuer} did not answer in time"
            )
        try:
            now = self._now()
            keys = state.keys
            if keys is None or now - state.fetched_at >= self._ttl_seconds:
                if self._may(state.attempted_at, now):
                    self._attempt(state, issuer)
            # An unknown kid may mean the issuer rotated its keys (RFC 8725 §3.10): refetch,
            # unless the keys were fetched after this exchange arrived, and never more often
            # than the interval, whatever tokens arrive.
            elif (
                kid not in keys
                and state.started_at < arrived
                and self._may(state.refreshed_at, now)
            ):
                self._attempt(state, issuer)
                state.refreshed_at = self._now()
            keys = state.keys
            if keys is None:
                failure = state.failure
                assert failure is not None  # noqa: S101 - no keys only after a failed attempt
                raise IssuerError(failure.message, remedy=failure.remedy) from failure.__cause__
            found = keys.get(kid)
            if found is None:
                raise TokenVerificationError(
                    f"no key with kid {kid[:40]!r} in the JWKS of {issuer}", check="kid"
                )
            return found
        finally:
            state.lock.release()

    def _may(self, last: float | None, now: float) -> bool:
        return last is None or now - last >= self._interval

    def _attempt(self, state: _IssuerKeys, issuer: IssuerUrl) -> None:
        started = self._now()
        try:
            keys = self._fetch(issuer, time.monotonic() + self._deadline)
        except IssuerError as exc:
            state.failure = exc
            state.attempted_at = self._now()
            return
        state.keys = keys
        state.started_at = started
        state.fetched_at = state.attempted_at = self._now()
        state.failure = None


def deadline_fetcher(
    client: DeadlineHttpClient,
) -> Callable[[IssuerUrl, float], Mapping[str, VerificationKey]]:
    """``fetch`` for ``GatewayKeyCache``: discovery and key set over ``client``, both by one
    deadline."""

    def fetch(issuer: IssuerUrl, deadline: float) -> Mapping[str, VerificationKey]:
        return fetch_jwks(issuer, http=client.until(deadline))

    return fetch
