"""The gateway's HTTP side: the bounded server on loopback and the handler of one connection,
which routes a request (moto's control API refused, expired sessions and unsigned requests
answered as AWS does, the federation actions decided here) and relays everything else to moto,
with the gate header only the gateway can add.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl, unquote

from keyless.limits import (
    GATEWAY_CHUNK_LINE_MAX_BYTES,
    GATEWAY_IDLE_TIMEOUT_SECONDS,
    GATEWAY_QUERY_API_MAX_BODY_BYTES,
    GATEWAY_RELAY_CHUNK_BYTES,
    GATEWAY_UNSIZED_RESPONSE_MAX_BYTES,
)
from keyless.local.bounded_server import BoundedHTTPServer
from keyless.local.sts.exchange import AllowedExchange
from keyless.local.sts.rules import (
    ACTION,
    RESULT_CLOSING,
    StsError,
    answer_additions,
    error_document,
    guarded_action,
    query_parameters,
    s3_error_document,
)

logger = logging.getLogger(__name__)

#: Connection-level headers that describe one hop, not the message (RFC 9110 §7.6.1).
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


# --- HTTP --------------------------------------------------------------------------------------


class _ClientGone(Exception):
    """The client closed its connection mid-request; nothing more can be sent to it."""


class Gateway(Protocol):
    """What the handler asks of the gateway it serves (``keyless.local.sts.server.StsGateway``)."""

    #: The header and value moto requires on every request (``GATE_HEADER``).
    gate: tuple[str, str]

    def decide(self, params: Mapping[str, str]) -> AllowedExchange: ...

    def changed(self) -> None: ...

    def issued(self, allowed: AllowedExchange, body: bytes) -> bytes: ...

    def expired(self, authorization: str) -> bool: ...

    def upstream(self) -> http.client.HTTPConnection: ...

    def signed_mint_request(
        self, allowed: AllowedExchange
    ) -> tuple[bytes, list[tuple[str, str]]]: ...


#: ``(method, request target, headers)`` of each request as it arrives, before it is answered or
#: relayed: how tests see the traffic a command sends.
RequestObserver = Callable[[str, str, Mapping[str, str]], None]


class GatewayServer(BoundedHTTPServer):
    """A bounded server (see ``keyless.local.bounded_server``) that can also wake every idle
    connection at once, for ``stop()``."""

    def __init__(
        self,
        address: tuple[str, int],
        *,
        gateway: Gateway,
        observe: RequestObserver | None = None,
    ) -> None:
        self.gateway = gateway
        self.observe = observe
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, GatewayHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def wake_idle_connections(self) -> None:
        """End the wait of threads parked on idle keep-alive connections; a request in progress
        still gets its response (only the reading side is shut)."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)


class GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = GATEWAY_IDLE_TIMEOUT_SECONDS
    server: GatewayServer
    _upstream_connection: http.client.HTTPConnection | None = None
    _answered = False

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._upstream_connection is not None:
                self._upstream_connection.close()

    # After a first request, the wait for the next one is idle time: the server may close the
    # connection then to make room. (A new connection has not been idle: it is not closed.)
    def handle_one_request(self) -> None:
        if self._answered:
            self.server.idle(self.connection)
        try:
            super().handle_one_request()
        finally:
            self.server.busy(self.connection)
            self._answered = True

    def parse_request(self) -> bool:
        self.server.busy(self.connection)
        return super().parse_request()

    # The default log line holds the query string, which can carry a token or a session token.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s -> %s", self.command, self.path.split("?", 1)[0], code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("gateway: %s", format)

    def _dispatch(self) -> None:
        if self.server.observe is not None:
            self.server.observe(self.command, self.path, dict(self.headers.items()))
        try:
            self._route()
        except _ClientGone:
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch

    def _route(self) -> None:
        target = self.path
        if not target.startswith("/"):
            self._send_error_xml(400, "InvalidRequest", "Only origin-form request targets")
            return
        raw_path, _, query = target.partition("?")
        path = unquote(raw_path)
        # moto's control API could switch authentication off or reset the account.
        if path.lstrip("/").startswith("moto-api"):
            logger.info("refused %s %s: moto's control API is not exposed", self.command, path)
            self._send_error_xml(
                403, "AccessDenied", "moto's control API is not reachable through the gateway"
            )
            return
        signed = "Authorization" in self.headers
        if signed and self.server.gateway.expired(self.headers["Authorization"]):
            self.close_connection = True  # its body stays unread
            # As AWS answers it: S3 (any path) 400, the query protocol (STS, IAM) 403.
            logger.info("refused %s %s: expired session credentials", self.command, path)
            if path.strip("/"):
                self._send_error_xml(400, "ExpiredToken", "The provided token has expired.")
            else:
                self._send_error_xml(
                    403, "ExpiredToken", "The security token included in the request is expired"
                )
            return
        if path.strip("/"):
            # Not a query-protocol request (those all go to "/"): relay, streaming the body.
            if not signed:
                self.close_connection = True  # its body stays unread
                self._refuse_unsigned(presigned=_presigned(query))
                return
            self._relay(body=None)
            return
        body = self._read_query_body()
        if body is None:
            return
        params = query_parameters(query, body)
        guarded = guarded_action(params.get("Action", []), self.headers.get("X-Amz-Target"))
        if guarded is None:
            if not signed:
                self._send_error_xml(
                    403, "MissingAuthenticationToken", "Request is missing Authentication Token"
                )
                return
            self._relay(body=body)
        elif guarded == ACTION and set(params.get("Action", [])) == {ACTION}:
            self._assume_role_with_web_identity(params)
        else:
            logger.info("refused %s: only the query protocol's %s is served", guarded, ACTION)
            self._send_sts_error(
                StsError(
                    "InvalidAction",
                    400,
                    f"{guarded} is not available through the local stack's gateway",
                )
            )

    def _refuse_unsigned(self, *, presigned: bool) -> None:
        """Answer a request without an Authorization header as S3 does. moto with authentication
        on fails them with HTTP 500 (it reads the missing header); that includes presigned URLs,
        whose query-string signature it cannot check, so those are declared unsupported."""
        logger.info("refused unsigned %s %s", self.command, self.path.split("?", 1)[0])
        if presigned:
            status, code, message = (
                501,
                "NotImplemented",
                "Presigned URLs (query-string authentication) are not supported by the local stack",
            )
        else:
            status, code, message = 403, "AccessDenied", "Access Denied"
        request_id = str(uuid.uuid4())
        body = s3_error_document(code, message, request_id)
        headers = [("x-amz-request-id", request_id), ("Content-Type", "application/xml")]
        self._send(status, http.client.responses[status], headers, body)

    # --- AssumeRoleWithWebIdentity -----------------------------------------------------------

    def _assume_role_with_web_identity(self, params: Mapping[str, list[str]]) -> None:
        single: dict[str, str] = {}
        for name, values in params.items():
            if len(set(values)) > 1:
                self._send_sts_error(
                    StsError("ValidationError", 400, f"Parameter {name} is given more than once")
                )
                return
            single[name] = values[0]
        try:
            allowed = self.server.gateway.decide(single)
        except StsError as refusal:
            self._send_sts_error(refusal)
            return
        body, headers = self.server.gateway.signed_mint_request(allowed)
        try:
            status, reason, moto_headers, moto_body = self._exchange_upstream(
                "POST", "/", headers, body
            )
        except OSError as exc:
            logger.error("moto did not answer the mint request: %s", exc)
            self._send_sts_error(
                StsError("ServiceUnavailable", 503, "Service unavailable", sender=False)
            )
            return
        if status != 200:
            logger.error("moto refused to mint credentials (HTTP %d)", status)
            self._send(status, reason, _end_to_end(moto_headers), moto_body)
            return
        closing = RESULT_CLOSING
        if moto_body.count(closing) != 1:
            logger.error("moto's %s response has an unexpected shape", ACTION)
            self._send_sts_error(
                StsError("InternalFailure", 500, "The request processing has failed.", sender=False)
            )
            return
        extra = answer_additions(
            subject=allowed.identity.subject,
            provider_arn=allowed.provider_arn,
            audience=allowed.audience,
        )
        enriched = self.server.gateway.issued(allowed, moto_body).replace(closing, extra + closing)
        headers_out = [
            (k, v) for k, v in _end_to_end(moto_headers) if k.lower() != "content-length"
        ]
        self._send(200, reason, headers_out, enriched)

    def _exchange_upstream(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """A buffered request to moto; retried once on a fresh connection if a kept-alive one
        turns out to be closed (nothing was processed then)."""
        for attempt in (1, 2):
            connection, reused = self._connection()
            try:
                _send_head(connection, method, target, headers, self.server.gateway.gate)
                connection.send(body)
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop_connection()
                if reused and attempt == 1:
                    continue
                raise
            except (OSError, http.client.HTTPException):
                self._drop_connection()
                raise
            if response.will_close:
                self._drop_connection()
            return response.status, response.reason, response.getheaders(), data
        raise AssertionError("unreachable")  # pragma: no cover

    # --- relaying ---------------------------------------------------------------------------------

    def _relay(self, *, body: bytes | None) -> None:
        """Send the client's request to moto as it came (method, raw target, headers in order,
        body), then its response back. ``body`` is the already-read body, or None to stream it."""
        headers = list(self.headers.items())
        try:
            if body is not None:
                # A query-protocol call (IAM's included): whatever moto did, the gateway's view
                # of IAM is renewed before the client learns of it.
                try:
                    status, reason, moto_headers, data = self._exchange_upstream(
                        self.command, self.path, headers, body
                    )
                finally:
                    self.server.gateway.changed()
                self._send(status, reason, _end_to_end(moto_headers), data)
                return
            connection, _ = self._connection()
            _send_head(connection, self.command, self.path, headers, self.server.gateway.gate)
            self._stream_request_body(connection)
            response = connection.getresponse()
        except _ClientGone:
            self._drop_connection()  # moto holds half a request on it
            raise
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            logger.error(
                "relay of %s %s to moto failed: %s", self.command, self.path.split("?")[0], exc
            )
            self._send_error_xml(502, "BadGateway", "moto did not answer")
            return
        self._stream_response(response)

    def _stream_request_body(self, connection: http.client.HTTPConnection) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            # Relay the chunked framing as it came: the client's signature may cover it.
            while True:
                line = self._read_line()
                connection.send(line)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, up to the empty line
                        trailer = self._read_line()
                        connection.send(trailer)
                        if trailer in (b"\r\n", b"\n"):
                            return
                self._copy(connection, size + 2)  # the data and its CRLF
        length = self._content_length()
        if length:
            self._copy(connection, length)

    def _stream_response(self, response: http.client.HTTPResponse) -> None:
        headers = _end_to_end(response.getheaders())
        bodiless = self.command == "HEAD" or response.status in (204, 304)
        try:
            if bodiless or (response.length is not None and not response.chunked):
                self._start_response(response.status, response.reason, headers)
                while not bodiless:
                    piece = response.read(GATEWAY_RELAY_CHUNK_BYTES)
                    if not piece:
                        break
                    self._write(piece)
            else:
                data = response.read(GATEWAY_UNSIZED_RESPONSE_MAX_BYTES + 1)
                if len(data) > GATEWAY_UNSIZED_RESPONSE_MAX_BYTES:
                    raise http.client.HTTPException("unsized response too large to relay")
                self._send(response.status, response.reason, headers, data)
        except (OSError, http.client.HTTPException):
            self._drop_connection()
            self.close_connection = True
            return
        if response.will_close:
            self._drop_connection()

    # --- small I/O helpers ------------------------------------------------------------------------

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        if self._upstream_connection is not None:
            return self._upstream_connection, True
        self._upstream_connection = self.server.gateway.upstream()
        return self._upstream_connection, False

    def _drop_connection(self) -> None:
        if self._upstream_connection is not None:
            self._upstream_connection.close()
            self._upstream_connection = None

    def _content_length(self) -> int:
        value = self.headers.get("Content-Length", "0")
        try:
            length = int(value)
        except ValueError:
            length = -1
        if length < 0:
            self._send_error_xml(400, "InvalidRequest", "Content-Length is not a number")
            raise _ClientGone
        return length

    def _read_query_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding"):
            self._send_error_xml(411, "MissingContentLength", "Requests to / need a Content-Length")
            self.close_connection = True
            return None
        length = self._content_length()
        if length > GATEWAY_QUERY_API_MAX_BODY_BYTES:
            self._send_error_xml(
                413,
                "RequestEntityTooLarge",
                f"Body larger than {GATEWAY_QUERY_API_MAX_BODY_BYTES} bytes",
            )
            self.close_connection = True
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise _ClientGone
        return body

    def _read_line(self) -> bytes:
        line = self.rfile.readline(GATEWAY_CHUNK_LINE_MAX_BYTES + 1)
        if not line or len(line) > GATEWAY_CHUNK_LINE_MAX_BYTES:
            raise _ClientGone
        return line

    def _copy(self, connection: http.client.HTTPConnection, length: int) -> None:
        remaining = length
        while remaining:
            piece = self.rfile.read(min(GATEWAY_RELAY_CHUNK_BYTES, remaining))
            if not piece:
                raise _ClientGone
            connection.send(piece)
            remaining -= len(piece)

    def _start_response(self, status: int, reason: str, headers: Iterable[tuple[str, str]]) -> None:
        try:
            self.send_response_only(status, reason)
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
        except OSError as exc:
            raise _ClientGone from exc
        self.log_request(status)

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except OSError as exc:
            raise _ClientGone from exc

    def _send(
        self, status: int, reason: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> None:
        if self.command == "HEAD" or status in (204, 304):
            self._start_response(status, reason, headers)  # moto's Content-Length, no body
            return
        out = [(k, v) for k, v in headers if k.lower() != "content-length"]
        out.append(("Content-Length", str(len(body))))
        self._start_response(status, reason, out)
        if body:
            self._write(body)

    def _send_sts_error(self, error: StsError) -> None:
        request_id = str(uuid.uuid4())
        body = error_document(error, request_id)
        headers = [("x-amzn-RequestId", request_id), ("Content-Type", "text/xml")]
        self._send(error.status, http.client.responses.get(error.status, ""), headers, body)

    def _send_error_xml(self, status: int, code: str, message: str) -> None:
        self._send_sts_error(StsError(code, status, message, sender=status < 500))


def _send_head(
    connection: http.client.HTTPConnection,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    gate: tuple[str, str],
) -> None:
    # Host and Accept-Encoding come from the client's own headers, unchanged: SigV4 signs Host.
    connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    for name, value in headers:
        # A client's own copy of the gate header (in any spelling WSGI folds into the same
        # variable) is dropped: only the gateway's value reaches moto.
        if _header_key(name) != _header_key(gate[0]):
            connection.putheader(name, value)
    connection.putheader(*gate)
    connection.endheaders()


def _header_key(name: str) -> str:
    """The WSGI environ spelling of a header name: case and ``-``/``_`` folded together."""
    return name.strip().upper().replace("-", "_")


def _end_to_end(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]


def _presigned(query: str) -> bool:
    """Whether the query string carries a signature (a presigned URL, SigV4 or SigV2)."""
    return any(
        name in ("X-Amz-Signature", "Signature")
        for name, _ in parse_qsl(query, keep_blank_values=True)
    )
