"""Bitbucket Pipelines: BITBUCKET_STEP_OIDC_TOKEN, or the `oidc: true` remedy."""

from __future__ import annotations

import pytest

from keyless.ci.bitbucket import PROVIDER as bitbucket
from keyless.errors import CredentialError, TokenError
from keyless.testing import NO_HTTP
from tests.jwt_factory import make_token

ISSUER = "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
WORKSPACE_AUD = "ari:cloud:bitbucket::workspace/5c0ffee0-0000-4000-8000-000000000001"
JOB = {
    "BITBUCKET_BUILD_NUMBER": "42",
    "BITBUCKET_REPO_UUID": "{7a1e0000-0000-4000-8000-00000000000a}",
}


HTTP = NO_HTTP


def _token(audience: str | list[str] = WORKSPACE_AUD) -> str:
    return make_token(
        {"repositoryUuid": JOB["BITBUCKET_REPO_UUID"], "branchName": "main"},
        issuer=ISSUER,
        audience=audience,
        subject=f"{JOB['BITBUCKET_REPO_UUID']}:{{step}}",
    )


def test_not_in_bitbucket_is_none() -> None:
    assert bitbucket.obtain({"CI": "true"}, audience=None, http=HTTP) is None
    assert not bitbucket.in_ci({})


def test_step_with_oidc_gives_the_variable() -> None:
    token = _token()
    obtained = bitbucket.obtain(
        {**JOB, "BITBUCKET_STEP_OIDC_TOKEN": token}, audience=None, http=HTTP
    )
    assert obtained is not None
    assert obtained.token == token
    assert obtained.provider == "bitbucket"
    assert obtained.source == "BITBUCKET_STEP_OIDC_TOKEN"
    assert token not in repr(obtained)


def test_trailing_newline_from_echo_is_dropped() -> None:
    token = _token()
    obtained = bitbucket.obtain(
        {**JOB, "BITBUCKET_STEP_OIDC_TOKEN": token + "\n"}, audience=None, http=HTTP
    )
    assert obtained is not None
    assert obtained.token == token


@pytest.mark.parametrize("marker", ["BITBUCKET_BUILD_NUMBER", "BITBUCKET_REPO_UUID"])
def test_step_without_oidc_is_an_error_with_the_yaml_fix(marker: str) -> None:
    with pytest.raises(CredentialError) as info:
        bitbucket.obtain({marker: JOB[marker]}, audience=None, http=HTTP)
    error = info.value
    assert error.message.startswith("Bitbucket Pipelines: BITBUCKET_STEP_OIDC_TOKEN is not set")
    assert error.remedy is not None
    assert "oidc: true" in error.remedy
    assert "- step:" in error.remedy


def test_empty_variable_counts_as_missing() -> None:
    with pytest.raises(CredentialError, match="BITBUCKET_STEP_OIDC_TOKEN is not set"):
        bitbucket.obtain({**JOB, "BITBUCKET_STEP_OIDC_TOKEN": "  "}, audience=None, http=HTTP)


def test_garbage_in_the_variable_is_a_token_error_without_the_value() -> None:
    with pytest.raises(TokenError) as info:
        bitbucket.obtain(
            {**JOB, "BITBUCKET_STEP_OIDC_TOKEN": "not-a-jwt-secretvalue"}, audience=None, http=HTTP
        )
    assert "secretvalue" not in info.value.diagnostics()


def test_audience_the_token_has_is_accepted() -> None:
    token = _token(["https://deploy.example", WORKSPACE_AUD])
    obtained = bitbucket.obtain(
        {**JOB, "BITBUCKET_STEP_OIDC_TOKEN": token}, audience="https://deploy.example", http=HTTP
    )
    assert obtained is not None


def test_audience_bitbucket_cannot_issue_is_refused_with_the_yaml_fix() -> None:
    token = _token()
    with pytest.raises(CredentialError) as info:
        bitbucket.obtain(
            {**JOB, "BITBUCKET_STEP_OIDC_TOKEN": token}, audience="sts.amazonaws.com", http=HTTP
        )
    error = info.value
    assert error.message.startswith("Bitbucket Pipelines:")
    assert "'sts.amazonaws.com'" in error.message
    assert WORKSPACE_AUD in error.message  # what the token does have: not a secret
    assert error.remedy is not None
    assert "audiences:\n          - sts.amazonaws.com" in error.remedy
    assert token not in error.diagnostics()


@pytest.mark.parametrize(
    ("issuer", "owned"),
    [
        (ISSUER, True),
        ("https://api.bitbucket.org/2.0/workspaces/my-team_2/pipelines-config/identity/oidc", True),
        ("https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc/", False),
        ("http://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc", False),
        ("https://api.bitbucket.org/2.0/workspaces//pipelines-config/identity/oidc", False),
        ("https://token.actions.githubusercontent.com", False),
    ],
)
def test_owns_issuer(issuer: str, owned: bool) -> None:
    assert bitbucket.owns_issuer(issuer) is owned


def test_declares_no_extra_aws_condition_keys() -> None:
    assert bitbucket.aws_condition_claims == frozenset()
    assert {"repositoryUuid", "branchName", "sub", "exp"} <= bitbucket.safe_claims


def test_malformed_token_is_refused_when_its_audience_must_be_read() -> None:
    env = {**JOB, "BITBUCKET_STEP_OIDC_TOKEN": "eyJhbGciOiJub25lIn0.bm90IGpzb24.c2ln"}
    with pytest.raises(TokenError) as info:
        bitbucket.obtain(env, audience="sts.amazonaws.com", http=HTTP)
    assert info.value.message.startswith(
        "Bitbucket Pipelines: the token from BITBUCKET_STEP_OIDC_TOKEN is malformed"
    )
