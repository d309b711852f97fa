"""A hostile HTTP(S) server on 127.0.0.1 for tests: it answers one byte at a time, slowly.

Each read the client makes gets a byte well within any per-read timeout, so only a deadline for
the whole request stops the client. The server is bounded by construction: it sends at most
``max_bytes`` per connection and then closes it, accepts at most ``max_connections``, and stops
when the ``drip`` context ends (its threads are daemons). It counts connections and bytes sent,
so tests can bound the work a slow server caused without measuring time.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from keyless.local.pki import LocalPki, PkiFiles

#: Status line and headers of a big answer: the body that follows never completes.
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"


@dataclass(kw_only=True)
class DripServer:
    url: str  # http(s)://127.0.0.1:PORT
    max_bytes: int
    connections: int = 0
    #: Bytes sent on each connection, in the order the connections came.
    sent: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def most_sent(self) -> int:
        with self.lock:
            return max(self.sent, default=0)


def tls_files(directory: Path) -> PkiFiles:
    """A fresh CA and a server certificate for 127.0.0.1, written to ``directory``."""
    return LocalPki.generate().write(directory)


@contextmanager
def drip(
    *,
    headers_first: bool = False,
    interval: float = 0.05,
    max_bytes: int = 400,
    max_connections: int = 20,
    tls: PkiFiles | None = None,
) -> Iterator[DripServer]:
    """Serve: read the request, then send ``HEAD`` and a body one byte per ``interval``.

    ``headers_first`` sends ``HEAD`` at once and drips only the body; otherwise the status line
    itself is dripped.
    """
    stop = threading.Event()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    port = listener.getsockname()[1]
    context: ssl.SSLContext | None = None
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.server_chain, tls.server_key)
    server = DripServer(url=f"{'https' if tls else 'http'}://127.0.0.1:{port}", max_bytes=max_bytes)

    def handle(raw: socket.socket, index: int) -> None:
        try:
            raw.settimeout(5.0)
            conn = context.wrap_socket(raw, server_side=True) if context else raw
            with conn:
                request = b""
                while b"\r\n\r\n" not in request and len(request) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                payload = HEAD + b" " * max_bytes
                start = len(HEAD) if headers_first else 0
                if start:
                    conn.sendall(HEAD)
                for position in range(start, max_bytes):
                    if stop.wait(interval):
                        return
                    conn.sendall(payload[position : position + 1])
                    with server.lock:
                        server.sent[index] = position + 1
        except OSError:
            return  # the client gave up: what a deadline is for

    def accept() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with server.lock:
                if server.connections >= max_connections:
                    raw.close()
                    continue
                index = server.connections
                server.connections += 1
                server.sent.append(0)
            threading.Thread(target=handle, args=(raw, index), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
