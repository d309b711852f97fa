"""A loopback HTTP/1.1 proxy for tests that injects faults on chosen requests.

It listens on 127.0.0.1 (ephemeral port) in front of one upstream (moto for S3, the local stack's
gateway for STS and S3) and forwards every request as it came, keep-alive and chunked bodies
included, except those a ``Rule`` matches (method, path and query patterns), which get a fault
instead, at most ``times`` times each: an error status with an S3 or STS error body, a connection
closed without an answer, a reset (RST, via ``SO_LINGER`` 0), an answer whose body is shorter than
its ``Content-Length``, or a bounded delay before forwarding. Every request is logged with what
was done to it, so tests count attempts rather than time anything.

Both of keyless' HTTP stacks come through it: botocore (``http.client``/urllib3) and the AWS
Common Runtime's native S3 client, which keeps connections alive and pipelines nothing.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

#: A delay longer than this is refused: a test's slowness must stay bounded by construction.
MAX_DELAY_SECONDS = 10.0
#: Seconds the proxy waits for the upstream to answer one request.
UPSTREAM_TIMEOUT_SECONDS = 60.0
#: Seconds an idle client connection is kept open.
IDLE_TIMEOUT_SECONDS = 30.0

#: Hop-by-hop headers (RFC 9110 §7.6.1) plus those the proxy recomputes.
_NOT_FORWARDED = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """What a matched request gets instead of the upstream's answer."""

    #: "status", "close", "reset", "truncate" or "delay".
    kind: str
    status: int = 0
    code: str = ""
    message: str = ""
    #: "s3" (``<Error>``) or "sts" (``<ErrorResponse>``, the query protocol's shape).
    flavor: str = "s3"
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("status", "close", "reset", "truncate", "delay"):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if not 0 <= self.delay <= MAX_DELAY_SECONDS:
            raise ValueError(f"delay {self.delay} s is outside 0..{MAX_DELAY_SECONDS}")

    @property
    def name(self) -> str:
        return f"{self.kind} {self.status} {self.code}".strip() if self.status else self.kind


def error(status: int, code: str, message: str = "", *, flavor: str = "s3") -> Fault:
    return Fault(kind="status", status=status, code=code, message=message or code, flavor=flavor)


SLOW_DOWN = error(503, "SlowDown", "Please reduce your request rate.")
INTERNAL_ERROR = error(500, "InternalError", "We encountered an internal error. Please try again.")
ACCESS_DENIED = error(403, "AccessDenied", "Access Denied")
CLOSE = Fault(kind="close")
RESET = Fault(kind="reset")
TRUNCATE = Fault(kind="truncate")


def throttling(*, flavor: str = "sts") -> Fault:
    return error(400, "Throttling", "Rate exceeded", flavor=flavor)


def delay(seconds: float) -> Fault:
    return Fault(kind="delay", delay=seconds)


@dataclass(kw_only=True)
class Rule:
    """Requests this rule matches get ``fault``, after the first ``skip`` matches, ``times``
    times (then they are forwarded again). Patterns are searched in the decoded path and the raw
    query; ``None`` matches anything."""

    fault: Fault
    method: str | None = None
    path: str | None = None
    query: str | None = None
    times: int = 1
    skip: int = 0
    #: Called (on the proxy's thread) when the rule first injects; e.g. to change the world.
    on_first: Callable[[], None] | None = None
    matched: int = 0
    injected: int = 0

    def matches(self, method: str, path: str, query: str) -> bool:
        return (
            (self.method is None or self.method == method)
            and (self.path is None or re.search(self.path, path) is not None)
            and (self.query is None or re.search(self.query, query) is not None)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Seen:
    method: str
    path: str
    query: str
    #: The fault's name, or "forwarded".
    outcome: str
    status: int | None = None


@dataclass(kw_only=True)
class _State:
    rules: list[Rule] = field(default_factory=list)
    log: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FaultProxy:
    """``with FaultProxy(upstream_url) as proxy:``; ``proxy.url`` goes where the upstream's
    would; ``proxy.add(Rule(...))`` arms a fault; ``proxy.log`` is every request seen."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream {upstream_url!r} is not http://HOST:PORT")
        self.upstream = (parts.hostname, parts.port)
        self._state = _State()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, *rules: Rule) -> None:
        with self._state.lock:
            self._state.rules.extend(rules)

    def clear(self) -> None:
        with self._state.lock:
            self._state.rules.clear()
            self._state.log.clear()

    @property
    def log(self) -> list[Seen]:
        with self._state.lock:
            return list(self._state.log)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests seen (faulted or forwarded) with ``method`` whose path matches ``path``."""
        return sum(
            1
            for seen in self.log
            if (method is None or seen.method == method)
            and (path is None or re.search(path, seen.path))
        )

    def _decide(self, method: str, path: str, query: str) -> Fault | None:
        hook = None
        fault = None
        with self._state.lock:
            for rule in self._state.rules:
                if not rule.matches(method, path, query):
                    continue
                rule.matched += 1
                if rule.matched > rule.skip and rule.injected < rule.times:
                    rule.injected += 1
                    if rule.injected == 1:
                        hook = rule.on_first
                    fault = rule.fault
                    break
        if hook is not None:
            hook()
        return fault

    def _record(self, seen: Seen) -> None:
        with self._state.lock:
            self._state.log.append(seen)

    def start(self) -> FaultProxy:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fault-proxy",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_all()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_SECONDS
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the log holds queries and headers; tests read FaultProxy.log instead

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        if self._upstream is not None:
            self._upstream.close()

    def _handle(self) -> None:
        proxy = self.server.proxy
        raw_path, _, query = self.path.partition("?")
        path = unquote(raw_path)
        body = self._read_body()
        fault = proxy._decide(self.command, path, query)
        seen = Seen(method=self.command, path=path, query=query, outcome="forwarded")
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay)
            seen = Seen(method=self.command, path=path, query=query, outcome=fault.name)
            fault = None
        if fault is not None and fault.kind != "truncate":
            proxy._record(Seen(method=self.command, path=path, query=query, outcome=fault.name))
            self._inject(fault)
            return
        try:
            status, reason, headers, data = self._forward(body)
        except (OSError, http.client.HTTPException):
            proxy._record(Seen(method=self.command, path=path, query=query, outcome="upstream"))
            self._abort(reset=False)
            return
        outcome = fault.name if fault is not None else seen.outcome
        proxy._record(
            Seen(method=self.command, path=path, query=query, outcome=outcome, status=status)
        )
        if fault is not None and len(data) >= 2:
            # Announce the whole body, send half of it, then end the connection.
            self._head(status, reason, headers, len(data))
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._abort(reset=False)
            return
        self._head(status, reason, headers, len(data))
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle

    def _read_body(self) -> bytes:
        """The request body as it came (chunked framing kept: a signature may cover it)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            pieces = bytearray()
            while True:
                line = self.rfile.readline(65537)
                pieces += line
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, up to the empty line
                        trailer = self.rfile.readline(65537)
                        pieces += trailer
                        if trailer in (b"\r\n", b"\n", b""):
                            return bytes(pieces)
                pieces += self.rfile.read(size + 2)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        for attempt in (1, 2):
            reused = self._upstream is not None
            if self._upstream is None:
                host, port = self.server.proxy.upstream
                self._upstream = http.client.HTTPConnection(
                    host, port, timeout=UPSTREAM_TIMEOUT_SECONDS
                )
            connection = self._upstream
            try:
                connection.putrequest(
                    self.command, self.path, skip_host=True, skip_accept_encoding=True
                )
                for name, value in self.headers.items():
                    if name.lower() not in _NOT_FORWARDED:
                        connection.putheader(name, value)
                connection.endheaders()
                if body:
                    connection.send(body)
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                connection.close()
                self._upstream = None
                if reused and attempt == 1:
                    continue  # a kept-alive connection the upstream had closed
                raise
            except (OSError, http.client.HTTPException):
                connection.close()
                self._upstream = None
                raise
            if response.will_close:
                connection.close()
                self._upstream = None
            headers = [
                (name, value)
                for name, value in response.getheaders()
                if name.lower() not in _NOT_FORWARDED
                and name.lower() not in ("content-length", "transfer-encoding")
            ]
            return response.status, response.reason, headers, data
        raise AssertionError("unreachable")

    def _head(self, status: int, reason: str, headers: list[tuple[str, str]], length: int) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _inject(self, fault: Fault) -> None:
        if fault.kind == "close":
            self._abort(reset=False)
            return
        if fault.kind == "reset":
            self._abort(reset=True)
            return
        request_id = uuid.uuid4().hex
        if fault.flavor == "sts":
            kind = "Sender" if fault.status < 500 else "Receiver"
            body = (
                '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                f"<Error><Type>{kind}</Type><Code>{fault.code}</Code>"
                f"<Message>{fault.message}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>"
            ).encode()
        else:
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{fault.code}</Code><Message>{fault.message}</Message>"
                f"<RequestId>{request_id}</RequestId></Error>"
            ).encode()
        headers = [("Content-Type", "text/xml"), ("x-amz-request-id", request_id)]
        self._head(fault.status, http.client.responses.get(fault.status, ""), headers, len(body))
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _abort(self, *, reset: bool) -> None:
        """End the client connection now: FIN, or RST with a zero linger time."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        if reset:
            with contextlib.suppress(OSError):
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
        with contextlib.suppress(OSError):
            self.connection.close()


@contextlib.contextmanager
def proxied(upstream_url: str, *rules: Rule) -> Iterator[FaultProxy]:
    with FaultProxy(upstream_url) as proxy:
        proxy.add(*rules)
        yield proxy
