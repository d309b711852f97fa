"""An HTTP server for the local stack's gateway that stays answerable under load.

``ThreadingHTTPServer`` listens with a backlog of 5 and starts a thread per connection without
limit: 200 simultaneous clients got connection resets. This server listens with a real backlog,
serves at most ``max_workers`` connections at once, and answers one more with AWS's throttling
error (which SDKs retry with backoff) from a second, small set of threads. When both are busy
the accept loop waits, and new connections queue in the backlog: a client is slowed down or told
to retry, never reset. Kept-alive connections that wait idle for their next request are closed
to make room when every thread is taken, as any HTTP server may close an idle connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl

from keyless.limits import (
    GATEWAY_LISTEN_BACKLOG,
    GATEWAY_MAX_REFUSERS,
    GATEWAY_MAX_WORKERS,
    GATEWAY_REFUSAL_DRAIN_MAX_BYTES,
    GATEWAY_REFUSAL_HEAD_MAX_BYTES,
    GATEWAY_REFUSAL_IO_SECONDS,
    GATEWAY_WORKER_WAIT_SECONDS,
)

__all__ = ["BoundedHTTPServer", "throttling_response"]

_STS_NAMESPACE: Final = "https://sts.amazonaws.com/doc/2011-06-15/"


def throttling_response(head: bytes) -> bytes:
    """The whole HTTP response AWS gives an over-rate request, for the request ``head``: STS's
    ``Throttling`` (400, "Rate exceeded") for the query protocol's ``/``, S3's ``SlowDown`` (503)
    for anything else. Both are retried by the SDKs' standard retry mode."""
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1", errors="replace")
    parts = request_line.split(" ")
    method, target = (parts[0], parts[1]) if len(parts) >= 2 else ("", "/")
    path, _, query = target.partition("?")
    query_protocol = path == "/" and (
        method == "POST" or any(name == "Action" for name, _ in parse_qsl(query))
    )
    request_id = str(uuid.uuid4())
    if query_protocol:
        status = "400 Bad Request"
        body = (
            f'<ErrorResponse xmlns="{_STS_NAMESPACE}">\n'
            "  <Error>\n"
            "    <Type>Sender</Type>\n"
            "    <Code>Throttling</Code>\n"
            "    <Message>Rate exceeded</Message>\n"
            "  </Error>\n"
            f"  <RequestId>{request_id}</RequestId>\n"
            "</ErrorResponse>\n"
        ).encode()
        headers = f"x-amzn-RequestId: {request_id}\r\nContent-Type: text/xml\r\n"
    else:
        status = "503 Slow Down"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers = f"x-amz-request-id: {request_id}\r\nContent-Type: application/xml\r\n"
    return (
        f"HTTP/1.1 {status}\r\n{headers}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


class BoundedHTTPServer(HTTPServer):
    """``HTTPServer`` with a listen backlog, a bounded set of connection threads and a
    throttling answer when they are all busy. ``server_close`` joins every thread it started."""

    request_queue_size = GATEWAY_LISTEN_BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        handler: Callable[..., BaseHTTPRequestHandler],
        *,
        max_workers: int = GATEWAY_MAX_WORKERS,
        max_refusers: int = GATEWAY_MAX_REFUSERS,
    ) -> None:
        self._workers = threading.BoundedSemaphore(max_workers)
        self._refusers = threading.BoundedSemaphore(max_refusers)
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()
        self._closing = threading.Event()
        self._idle: set[socket.socket] = set()
        self._idle_lock = threading.Lock()
        self._refused = 0
        super().__init__(address, handler)

    @property
    def refused(self) -> int:
        """Connections answered with the throttling error so far."""
        with self._idle_lock:
            return self._refused

    def idle(self, sock: socket.socket) -> None:
        """The handler waits for the next request on ``sock``: it may be closed to make room."""
        with self._idle_lock:
            self._idle.add(sock)

    def busy(self, sock: socket.socket) -> None:
        """A request arrived on ``sock`` (or it is closing): it must not be closed under it."""
        with self._idle_lock:
            self._idle.discard(sock)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Only when idle connections were just closed is a thread about to free up.
        if self._workers.acquire(blocking=False) or (
            self._close_idle_connections()
            and self._workers.acquire(timeout=GATEWAY_WORKER_WAIT_SECONDS)
        ):
            self._start(self._serve, request, client_address)
            return
        while not self._refusers.acquire(timeout=GATEWAY_WORKER_WAIT_SECONDS):
            if self._closing.is_set():
                self.shutdown_request(request)
                return
        self._start(self._refuse, request, client_address)

    def server_close(self) -> None:
        self._closing.set()
        super().server_close()
        with self._threads_lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join()

    # --- internals -----------------------------------------------------------------------------

    def _close_idle_connections(self) -> bool:
        """End the wait of handlers parked on idle kept-alive connections (they see EOF and
        return their thread); a request in progress is not touched. Whether there were any."""
        with self._idle_lock:
            parked, self._idle = self._idle, set()
        for sock in parked:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)
        return bool(parked)

    def _start(self, target: Callable[[Any, Any], None], request: Any, address: Any) -> None:
        thread = threading.Thread(target=target, args=(request, address), daemon=False)
        with self._threads_lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # socketserver's own policy: report it, keep serving
            self.handle_error(request, client_address)
        finally:
            self.busy(request)
            self.shutdown_request(request)
            self._workers.release()

    def _refuse(self, request: Any, client_address: Any) -> None:
        sock: socket.socket = request
        try:
            with self._idle_lock:
                self._refused += 1
            head = _read_head(sock)
            if head:
                sock.sendall(throttling_response(head))
                sock.shutdown(socket.SHUT_WR)
                _drain(sock)
        except OSError:
            pass  # the client went away: nothing to answer
        finally:
            self.shutdown_request(request)
            self._refusers.release()


def _read_head(sock: socket.socket) -> bytes:
    """The request's head (up to the empty line), read within one deadline; b"" if none came."""
    deadline = time.monotonic() + GATEWAY_REFUSAL_IO_SECONDS
    head = b""
    while b"\r\n\r\n" not in head and len(head) < GATEWAY_REFUSAL_HEAD_MAX_BYTES:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            piece = sock.recv(4096)
        except TimeoutError:
            break
        if not piece:
            break
        head += piece
    return head


def _drain(sock: socket.socket) -> None:
    """Read what the client still sends until it closes, within one deadline and a byte cap."""
    deadline = time.monotonic() + GATEWAY_REFUSAL_IO_SECONDS
    drained = 0
    with contextlib.suppress(OSError):
        while drained < GATEWAY_REFUSAL_DRAIN_MAX_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            sock.settimeout(remaining)
            piece = sock.recv(65_536)
            if not piece:
                return
            drained += len(piece)
