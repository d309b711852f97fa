"""Uploads carry a CRC32 that the server checks: a body corrupted on the way is rejected.

moto does not verify checksums, so a strict little S3 stand-in on 127.0.0.1 does: it recomputes
the CRC32 of what it received (after flipping a byte for keys marked 'corrupt') like S3 does.
"""

from __future__ import annotations

import base64
import http.server
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyless.deploy.transfer import CrtS3, Endpoint, PutJob, PutOutcome

pytestmark = pytest.mark.integration


class _Frozen:
    def __init__(self) -> None:
        self.access_key = "AKIAKEYLESSTEST00000"
        self.secret_key = "not-a-secret"
        self.token: str | None = "session-token"


class _StrictS3(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, str]] = []  # noqa: RUF012 (one server per test module)

    def do_PUT(self) -> None:
        body = bytearray(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(dict(self.headers.items()))
        if "corrupt" in self.path:
            body[0] ^= 0xFF
        expected = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        if self.headers.get("x-amz-checksum-crc32") != expected:
            payload = b"<Error><Code>BadDigest</Code><Message>CRC32 mismatch</Message></Error>"
            self.send_response(400)
        else:
            payload = b""
            self.send_response(200)
            self.send_header("ETag", '"0123456789abcdef0123456789abcdef"')
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def strict_s3() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StrictS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_corrupted_body_is_rejected_and_reported(tmp_path: Path, strict_s3: str) -> None:
    for name in ("good.txt", "corrupt.txt"):
        (tmp_path / name).write_bytes(b"payload " * 100)
    endpoint = Endpoint(scheme="http", netloc=strict_s3, region="us-east-1", virtual_hosted=False)
    plane = CrtS3(
        endpoint=endpoint,
        bucket="site",
        credentials=_Frozen,
        concurrency=1,
        part_size=8 << 20,
    )
    done: list[PutOutcome] = []
    jobs = [
        PutJob(
            key=name, path=str(tmp_path / name), size=800, headers=[("Content-Type", "text/plain")]
        )
        for name in ("good.txt", "corrupt.txt")
    ]
    outcomes = {o.key: o for o in plane.put_all(jobs, on_done=lambda o, n: done.append(o))}
    assert outcomes["good.txt"].error is None
    assert outcomes["good.txt"].etag == "0123456789abcdef0123456789abcdef"
    assert outcomes["corrupt.txt"].error == "BadDigest"
    assert outcomes["corrupt.txt"].status == 400
    assert len(done) == 2
    # Signed with the session's temporary credentials; the secret itself is never sent.
    headers = _StrictS3.seen[0]
    assert headers["X-Amz-Security-Token"] == "session-token"
    assert "x-amz-checksum-crc32" in headers["Authorization"]
    assert all("not-a-secret" not in value for value in headers.values())


@pytest.mark.parametrize("stream_large", [True, False])
def test_large_files_arrive_whole_streamed_or_buffered(
    tmp_path: Path, bucket: str, moto_endpoint: str, stream_large: bool
) -> None:
    # Streamed: parts read from disk as sent, CRC32 in an aws-chunked trailer (the TLS default);
    # buffered: one large file at a time, CRC32 in a header (plain HTTP). Both must store the
    # exact bytes as a multipart object, small files going on meanwhile.
    import boto3

    part = 5 << 20
    sizes = {"big-a.bin": 2 * part + 17, "big-b.bin": part + 1, "small.txt": 300}
    jobs = []
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
        jobs.append(PutJob(key=name, path=str(tmp_path / name), size=size, headers=()))
    plane = CrtS3(
        endpoint=Endpoint.from_url(moto_endpoint, region="us-east-1"),
        bucket=bucket,
        credentials=_Frozen,
        concurrency=4,
        part_size=part,
        stream_large=stream_large,
    )
    outcomes = {o.key: o for o in plane.put_all(jobs, on_done=lambda o, n: None)}
    assert all(o.error is None for o in outcomes.values()), outcomes
    s3 = boto3.client("s3")
    for name, size in sizes.items():
        body = s3.get_object(Bucket=bucket, Key=name)["Body"].read()
        assert len(body) == size
        assert body == (tmp_path / name).read_bytes()
    assert (outcomes["big-a.bin"].etag or "").endswith("-3")
