"""``keyless.aws.sts_endpoint``: the exchange takes the botocore-free Query client exactly where it
does what botocore's STS client would, and a failure reads the same whichever client met it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from keyless.aws.sts import RetryPolicy, Sts
from keyless.aws.sts_endpoint import exchange_client_factory, query_endpoint, sts_client_factory
from keyless.aws.sts_errors import convert, retry_reason
from keyless.aws.sts_query import QueryStsClient, StsAnswerError, StsTransportError
from keyless.errors import AwsError, KeylessError, NetworkError
from keyless.local.issuer import LocalIssuer

ROLE = "arn:aws:iam::123456789012:role/deploy"
NO_CONFIG = {"AWS_CONFIG_FILE": "/nonexistent/keyless-test-config"}


@pytest.mark.parametrize(
    ("env", "region", "endpoint"),
    [
        ({}, "eu-west-1", "https://sts.eu-west-1.amazonaws.com"),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}, "x-y-1", "http://127.0.0.1:4566"),
        (
            {"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_STS": "http://s:2"},
            "eu-west-1",
            "http://s:2",
        ),
        (
            {"AWS_ENDPOINT_URL": "http://a:1", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
            "eu-west-1",
            "https://sts.eu-west-1.amazonaws.com",
        ),
        # Where botocore's client would do something the Query client does not: botocore.
        ({}, "cn-north-1", None),
        ({}, "us-gov-west-1", None),
        ({"AWS_USE_FIPS_ENDPOINT": "true"}, "us-east-1", None),
        ({"AWS_USE_DUALSTACK_ENDPOINT": "TRUE"}, "us-east-1", None),
        ({}, "not a region", None),
        ({"AWS_ENDPOINT_URL_STS": "sts.example.com"}, "eu-west-1", None),
    ],
)
def test_the_query_endpoint_or_botocore(
    env: dict[str, str], region: str, endpoint: str | None
) -> None:
    assert query_endpoint({**NO_CONFIG, **env}, region=region) == endpoint


def test_a_default_profile_that_configures_sts_is_left_to_botocore(tmp_path: Path) -> None:
    config = tmp_path / "config"
    env = {"AWS_CONFIG_FILE": str(config)}
    config.write_text("[profile other]\nca_bundle = /x.pem\n[default]\nregion = eu-west-1\n")
    assert query_endpoint(env, region="eu-west-1") == "https://sts.eu-west-1.amazonaws.com"
    for setting in ("ca_bundle = /x.pem", "endpoint_url = http://x", "services = local"):
        config.write_text(f"[default]\n{setting}\n")
        assert query_endpoint(env, region="eu-west-1") is None, setting
    config.write_text("[default\nnot a config file")
    assert query_endpoint(env, region="eu-west-1") is None


def test_the_exchange_factory_makes_query_clients_only_where_equivalent() -> None:
    local = exchange_client_factory(
        {**NO_CONFIG, "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, region="r-1"
    )
    assert isinstance(local(None), QueryStsClient)
    fips = exchange_client_factory(
        {**NO_CONFIG, "AWS_USE_FIPS_ENDPOINT": "true"}, region="us-east-1"
    )
    assert not isinstance(fips(None), QueryStsClient)


def test_an_unreadable_ca_bundle_is_one_line(tmp_path: Path) -> None:
    env = {**NO_CONFIG, "AWS_CA_BUNDLE": str(tmp_path / "missing.pem")}
    with pytest.raises(AwsError, match=r"AWS_CA_BUNDLE .*missing.pem cannot be read") as raised:
        exchange_client_factory(env, region="eu-west-1")(None)
    assert raised.value.remedy is not None


def _web_identity(sts: Sts) -> None:
    sts.assume_role_with_web_identity("eyJ.x.y", role_arn=ROLE, session_name="keyless")  # type: ignore[arg-type]


def test_aws_ca_bundle_is_what_the_query_client_trusts(local_issuer: LocalIssuer) -> None:
    endpoint = {**NO_CONFIG, "AWS_ENDPOINT_URL_STS": local_issuer.issuers[0]}
    once = RetryPolicy(max_attempts=1)
    untrusted = Sts(
        client_factory=exchange_client_factory(endpoint, region="eu-west-1"), retry=once
    )
    with pytest.raises(NetworkError, match="SSLError: SSL validation failed"):
        _web_identity(untrusted)
    trusted_env = {**endpoint, "AWS_CA_BUNDLE": str(local_issuer.ca_bundle)}
    trusted = Sts(
        client_factory=exchange_client_factory(trusted_env, region="eu-west-1"), retry=once
    )
    # Through TLS to the issuer, which is no STS and drops a POST: not a TLS failure any more.
    with pytest.raises(KeylessError) as raised:
        _web_identity(trusted)
    assert "SSL" not in raised.value.message


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_connection_reads_the_same_from_either_client() -> None:
    env = {**NO_CONFIG, "AWS_ENDPOINT_URL_STS": f"http://127.0.0.1:{_closed_port()}"}
    lines = []
    for factory in (exchange_client_factory, sts_client_factory):
        sts = Sts(
            client_factory=factory(env, region="eu-west-1"), retry=RetryPolicy(max_attempts=1)
        )
        with pytest.raises(NetworkError) as raised:
            _web_identity(sts)
        lines.append(raised.value.message)
    assert lines[0] == lines[1]
    assert "EndpointConnectionError: Could not connect to the endpoint URL" in lines[0]


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (StsAnswerError("Throttling", "Rate exceeded", 400), "Throttling"),
        (StsAnswerError("503", "", 503), "HTTP 503"),
        (StsAnswerError("AccessDenied", "no", 403), None),
        (StsAnswerError("InvalidIdentityToken", "bad", 400), None),
        (StsTransportError("ConnectionClosedError", "closed"), "ConnectionClosedError"),
    ],
)
def test_query_failures_are_classified_as_botocore_ones(
    failure: Exception, reason: str | None
) -> None:
    assert retry_reason(failure) == reason


def test_an_sts_message_is_redacted_and_kept_to_one_line() -> None:
    token = "eyJhbGciOi.eyJzdWIiOi.c2ln"
    failure = StsAnswerError("InvalidIdentityToken", f"bad\n  token {token}", 400)
    error = convert(
        failure, operation="AssumeRoleWithWebIdentity", role=ROLE, attempts=1, secrets=(token,)
    )
    assert error.message == (
        f"STS AssumeRoleWithWebIdentity for {ROLE} failed: InvalidIdentityToken: bad token"
        " <redacted>"
    )
