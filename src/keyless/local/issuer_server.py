"""The local issuer's HTTPS server: TLS handshakes in the request thread, each GET answered by a
responder."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from keyless.limits import HTTP_TIMEOUT_SECONDS


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """What an ``add_route`` responder is given."""

    path: str
    query: Mapping[str, Sequence[str]]
    headers: Mapping[str, str] = field(repr=False)  # may carry a bearer token


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """What a responder answers: status, body and its content type."""

    status: int
    body: bytes
    content_type: str = "application/json"

    @classmethod
    def json(cls, document: object, *, status: int = 200) -> Response:
        return cls(status=status, body=json.dumps(document, indent=2).encode("utf-8") + b"\n")


Responder = Callable[[Request], Response]


class IssuerServer(ThreadingHTTPServer):
    """ThreadingHTTPServer whose TLS handshake runs in the request thread, with a timeout, so a
    silent client cannot block the accept loop."""

    daemon_threads = False
    block_on_close = True

    def __init__(
        self, address: tuple[str, int], *, context: ssl.SSLContext, respond: Responder
    ) -> None:
        super().__init__(address, _Handler)
        self.context = context
        self.respond = respond

    def finish_request(self, request: Any, client_address: Any) -> None:
        raw: socket.socket = request
        raw.settimeout(HTTP_TIMEOUT_SECONDS)
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a failed handshake (e.g. a client that does not trust the CA)
        try:
            _Handler(tls, client_address, self)
        finally:
            tls.close()


class _Handler(BaseHTTPRequestHandler):
    server: IssuerServer
    server_version = "keyless-local-issuer"
    sys_version = ""
    timeout = HTTP_TIMEOUT_SECONDS

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        request = Request(
            path=parts.path,
            query=parse_qs(parts.query),
            headers=dict(self.headers.items()),
        )
        try:
            response = self.server.respond(request)
        except Exception:
            response = Response.json({"error": "internal error"}, status=500)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: request URLs may carry tokens in their queries; request_log() keeps paths only.
        return
