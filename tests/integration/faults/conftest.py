"""moto's S3 on 127.0.0.1 behind a fault proxy, and a fresh bucket per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.faultproxy import FaultProxy

_buckets = itertools.count()


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def proxy(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """Every AWS client of the test goes through the proxy to moto, with fixed fake keys."""
    with FaultProxy(moto_url) as running:
        monkeypatch.setenv("AWS_ENDPOINT_URL", running.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAKEYLESSTEST00000")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/keyless-test-config")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/keyless-test-credentials")
        yield running


@pytest.fixture
def bucket(proxy: FaultProxy, moto_url: str) -> str:
    name = f"faults-{next(_buckets)}"
    boto3.client("s3", endpoint_url=moto_url).create_bucket(Bucket=name)
    proxy.clear()
    return name
