"""A real moto S3 server on 127.0.0.1 (ephemeral port) and a fresh bucket per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

_buckets = itertools.count()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point every AWS client of this test at moto, with fixed fake credentials."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAKEYLESSTEST00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/keyless-test-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/keyless-test-credentials")
    return moto_endpoint


@pytest.fixture
def bucket(aws_env: str) -> str:
    name = f"site-{next(_buckets)}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def create_distribution(bucket: str, *, reference: str) -> str:
    """A CloudFront distribution in front of ``bucket`` on moto; returns its id."""
    distribution = boto3.client("cloudfront").create_distribution(
        DistributionConfig={
            "CallerReference": reference,
            "Comment": "keyless test",
            "Enabled": True,
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "s3",
                        "DomainName": f"{bucket}.s3.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "s3",
                "ViewerProtocolPolicy": "redirect-to-https",
                "MinTTL": 0,
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                "TrustedSigners": {"Enabled": False, "Quantity": 0},
            },
        }
    )["Distribution"]
    return distribution["Id"]
