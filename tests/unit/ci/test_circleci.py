"""CircleCI: CIRCLE_OIDC_TOKEN_V2 then CIRCLE_OIDC_TOKEN; `circleci run oidc get` for audiences."""

from __future__ import annotations

import json

import pytest

from keyless.ci.base import RunResult
from keyless.ci.circleci import PROVIDER as circleci
from keyless.errors import CredentialError
from keyless.testing import NO_HTTP, ScriptedRunner, printed
from tests.jwt_factory import make_token

ORG = "9f1f0d1e-0000-4000-8000-00000000abcd"
ISSUER = f"https://oidc.circleci.com/org/{ORG}"
JOB = {"CIRCLECI": "true"}


def _token(audience: str = ORG, version: str = "v2") -> str:
    return make_token({"oidc.circleci.com/vcs-ref": version}, issuer=ISSUER, audience=audience)


def test_not_in_circleci_is_none() -> None:
    assert circleci.obtain({"CIRCLE_OIDC_TOKEN": _token()}, audience=None, http=NO_HTTP) is None


def test_v2_is_preferred() -> None:
    v2 = _token(version="v2")
    env = {**JOB, "CIRCLE_OIDC_TOKEN": _token(version="v1"), "CIRCLE_OIDC_TOKEN_V2": v2}
    obtained = circleci.obtain(env, audience=None, http=NO_HTTP)
    assert obtained is not None
    assert (obtained.token, obtained.source) == (v2, "CIRCLE_OIDC_TOKEN_V2")


def test_v1_alone_is_used() -> None:
    v1 = _token(version="v1")
    obtained = circleci.obtain({**JOB, "CIRCLE_OIDC_TOKEN": v1}, audience=None, http=NO_HTTP)
    assert obtained is not None
    assert (obtained.token, obtained.source) == (v1, "CIRCLE_OIDC_TOKEN")


def test_job_without_tokens_is_an_error_with_the_fix() -> None:
    with pytest.raises(CredentialError) as info:
        circleci.obtain(JOB, audience=None, http=NO_HTTP)
    error = info.value
    assert error.message.startswith("CircleCI: neither CIRCLE_OIDC_TOKEN_V2 nor CIRCLE_OIDC_TOKEN")
    assert error.remedy is not None
    assert "forked pull requests" in error.remedy


def test_audience_is_requested_from_the_cli_without_secrets_in_argv() -> None:
    env_token = _token()
    fresh = _token("sts.amazonaws.com")
    runner = ScriptedRunner(result=printed(fresh))
    obtained = circleci.obtain(
        {**JOB, "CIRCLE_OIDC_TOKEN_V2": env_token},
        audience="sts.amazonaws.com",
        http=NO_HTTP,
        runner=runner,
    )
    assert obtained is not None
    assert obtained.token == fresh
    assert obtained.source == "circleci run oidc get"
    [argv] = runner.calls
    assert argv[:5] == ["circleci", "run", "oidc", "get", "--claims"]
    assert json.loads(argv[5]) == {"aud": "sts.amazonaws.com"}
    assert not any(env_token in arg or fresh in arg for arg in argv)
    assert runner.timeouts[0] > 0


def test_audience_the_job_token_already_has_needs_no_cli() -> None:
    env_token = _token(ORG)
    runner = ScriptedRunner(error=AssertionError("must not run"))
    obtained = circleci.obtain(
        {**JOB, "CIRCLE_OIDC_TOKEN_V2": env_token}, audience=ORG, http=NO_HTTP, runner=runner
    )
    assert obtained is not None
    assert obtained.token == env_token
    assert runner.calls == []


def test_missing_cli_is_a_credential_error() -> None:
    runner = ScriptedRunner(error=FileNotFoundError("circleci"))
    with pytest.raises(CredentialError) as info:
        circleci.obtain(JOB, audience="sts.amazonaws.com", http=NO_HTTP, runner=runner)
    assert info.value.message.startswith("CircleCI: circleci is not installed")
    assert info.value.remedy is not None
    assert "circleci run oidc get" in info.value.remedy


def test_failing_cli_reports_its_status_with_token_shaped_text_redacted() -> None:
    leaked = _token()
    runner = ScriptedRunner(
        result=RunResult(returncode=3, stdout=leaked, stderr=f"error: bad claims near {leaked}\n")
    )
    with pytest.raises(CredentialError) as info:
        circleci.obtain(JOB, audience="sts.amazonaws.com", http=NO_HTTP, runner=runner)
    assert "exited with status 3" in info.value.message
    assert "<redacted>" in info.value.message
    assert leaked not in info.value.diagnostics()
    assert leaked[:40] not in info.value.diagnostics()


def test_owns_issuer() -> None:
    assert circleci.owns_issuer(ISSUER)
    assert not circleci.owns_issuer("https://oidc.circleci.com/org/not-a-uuid")
    assert not circleci.owns_issuer("https://agent.buildkite.com")


def test_condition_claims_are_conservatively_empty() -> None:
    # The 2026 STS list for CircleCI is UNCONFIRMED: nothing beyond sub and aud is promised.
    assert circleci.aws_condition_claims == frozenset()
    assert "oidc.circleci.com/vcs-ref" in circleci.aws_unconfirmed_claims
    assert "oidc.circleci.com/vcs-origin" in circleci.safe_claims
