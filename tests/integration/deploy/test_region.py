"""The bucket's region from S3's own answer: a request signed for the wrong region gets a redirect
or a region error naming the right one, and the native client reports it (no HeadBucket, which a
role limited to one prefix may not call). A little S3 stand-in on 127.0.0.1 answers as S3 does."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from keyless.deploy.transfer import CrtS3, Endpoint, WrongRegionError

pytestmark = pytest.mark.integration


class _Frozen:
    access_key = "AKIAKEYLESSTEST00000"
    secret_key = "not-a-secret"
    token: str | None = None


class _ElsewhereS3(http.server.BaseHTTPRequestHandler):
    """S3 for a bucket in eu-west-1: a 301 with ``x-amz-bucket-region`` for GETs, a 400
    AuthorizationHeaderMalformed naming the region in the body only for PUTs."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"<Error><Code>PermanentRedirect</Code><Message>Use its endpoint</Message></Error>"
        self._answer(301, body, [("x-amz-bucket-region", "eu-west-1")])

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = (
            b"<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is"
            b" wrong; expecting 'eu-west-1'</Message><Region>eu-west-1</Region></Error>"
        )
        self._answer(400, body, [])

    def _answer(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in [*headers, ("Content-Type", "application/xml")]:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def plane() -> Iterator[CrtS3]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ElsewhereS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    netloc = f"127.0.0.1:{server.server_address[1]}"
    try:
        yield CrtS3(
            endpoint=Endpoint(
                scheme="http", netloc=netloc, region="us-east-1", virtual_hosted=False
            ),
            bucket="site",
            credentials=_Frozen,
            refreshable=False,
            concurrency=1,
            part_size=8 << 20,
        )
    finally:
        server.shutdown()
        server.server_close()


def test_redirect_names_the_region(plane: CrtS3) -> None:
    with pytest.raises(WrongRegionError) as caught:
        plane.get_object("www/.keyless-manifest.json.gz", limit=1 << 20)
    assert caught.value.region == "eu-west-1"
    assert str(caught.value) == (
        "reading s3://site/www/.keyless-manifest.json.gz: the bucket is in region eu-west-1,"
        " not us-east-1"
    )
    with pytest.raises(WrongRegionError):
        list(plane.list_objects("www/"))


def test_region_error_names_the_region_in_its_body(plane: CrtS3) -> None:
    with pytest.raises(WrongRegionError) as caught:
        plane.put_object("www/.keyless-manifest.json.gz", b"{}", [])
    assert caught.value.region == "eu-west-1"
