"""The boto3 client factory: explicit timeouts and retries, endpoints from the environment."""

from __future__ import annotations

import pytest

from keyless import limits
from keyless.aws import clients


def test_region_prefers_flag_then_aws_region_then_default_region() -> None:
    env = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-central-1"}
    assert clients.region_from(env, "ap-south-1") == "ap-south-1"
    assert clients.region_from(env) == "eu-west-1"
    assert clients.region_from({"AWS_DEFAULT_REGION": "eu-central-1"}) == "eu-central-1"
    assert clients.region_from({}) == "us-east-1"


def test_client_has_keyless_timeouts_and_standard_retries() -> None:
    sess = clients.session(region="us-east-1", access_key_id="AKIDEXAMPLE", secret_access_key="x")
    sts = clients.client(sess, "sts")
    config = sts.meta.config
    # botocore's Config stubs do not declare its option attributes; read them generically.
    assert getattr(config, "connect_timeout") == limits.AWS_CONNECT_TIMEOUT_SECONDS  # noqa: B009
    assert getattr(config, "read_timeout") == limits.AWS_READ_TIMEOUT_SECONDS  # noqa: B009
    assert getattr(config, "retries") == {  # noqa: B009
        "mode": "standard",
        "total_max_attempts": limits.AWS_MAX_ATTEMPTS,
    }


def test_endpoint_comes_from_aws_endpoint_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    sess = clients.session(region="us-east-1", access_key_id="AKIDEXAMPLE", secret_access_key="x")
    assert clients.client(sess, "s3").meta.endpoint_url == "http://127.0.0.1:4566"
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:5000")
    assert clients.client(sess, "sts").meta.endpoint_url == "http://127.0.0.1:5000"
