"""The one HTTP seam of keyless: a tiny client protocol and its standard-library implementation.

Production code takes an ``HttpClient`` argument that defaults to ``UrllibClient()``; tests pass a
fake or point the real client at a server on 127.0.0.1. Every request has a timeout and a body-size
cap (``keyless.limits``). TLS is verified against the system store, or against ``ca_bundle`` when
one is given (the local stack's CA).
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from keyless.errors import NetworkError
from keyless.limits import HTTP_MAX_BODY_BYTES, HTTP_TIMEOUT_SECONDS


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class HttpClient(Protocol):
    def get(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> HttpResponse:
        """GET ``url``. Any HTTP status is a response; only transport failures raise
        ``NetworkError`` (connection refused, TLS failure, timeout)."""
        ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect could carry a bearer token to another host; callers handle 3xx themselves.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class UrllibClient:
    """``HttpClient`` on the standard library. Redirects are not followed."""

    def __init__(self, *, ca_bundle: Path | None = None, timeout: float = HTTP_TIMEOUT_SECONDS):
        self._timeout = timeout
        context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), _NoRedirect()
        )

    def get(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> HttpResponse:
        if not url.startswith(("https://", "http://")):
            raise NetworkError(f"refusing to fetch {url!r}: only http(s) URLs are supported")
        request = urllib.request.Request(url, headers=dict(headers or {}), method="GET")  # noqa: S310
        try:
            with self._opener.open(request, timeout=timeout or self._timeout) as response:
                body = response.read(HTTP_MAX_BODY_BYTES + 1)
                status = response.status
                response_headers = dict(response.headers.items())
        except urllib.error.HTTPError as exc:
            body = exc.read(HTTP_MAX_BODY_BYTES + 1) if exc.fp else b""
            status = exc.code
            response_headers = dict(exc.headers.items()) if exc.headers else {}
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NetworkError(f"cannot reach {_origin(url)}: {reason}") from exc
        if len(body) > HTTP_MAX_BODY_BYTES:
            raise NetworkError(
                f"response from {_origin(url)} is larger than {HTTP_MAX_BODY_BYTES} bytes"
            )
        return HttpResponse(status=status, body=body, headers=response_headers)


def _origin(url: str) -> str:
    """Scheme, host and path of ``url`` without its query (a query may carry a secret)."""
    return url.split("?", 1)[0]
