"""A real HTTP server on 127.0.0.1 playing GitHub's ID token request endpoint, for tests.

It answers from a script of (status, body) pairs, records every request, and stops when the
``serve`` context ends (its thread is a daemon, so a failing test cannot leave it running).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


def token_reply(token: str) -> Reply:
    return Reply(status=200, body=json.dumps({"value": token}).encode())


@dataclass(frozen=True, slots=True, kw_only=True)
class Seen:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass(kw_only=True)
class Endpoint:
    url: str  # ACTIONS_ID_TOKEN_REQUEST_URL, with a query like GitHub's
    requests: list[Seen]
    port: int


@contextmanager
def serve(replies: Sequence[Reply], *, path: str = "/idtoken") -> Iterator[Endpoint]:
    """Serve ``replies`` in order (the last one repeats); yield where and what was asked."""
    seen: list[Seen] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            with lock:
                seen.append(
                    Seen(
                        path=parts.path,
                        query=urllib.parse.parse_qs(parts.query, keep_blank_values=True),
                        headers={k.lower(): v for k, v in self.headers.items()},
                    )
                )
                reply = replies[min(len(seen), len(replies)) - 1]
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    # A short poll interval makes shutdown() quick (the default waits up to half a second).
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield Endpoint(
            url=f"http://127.0.0.1:{port}{path}?api-version=2.0", requests=seen, port=port
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
