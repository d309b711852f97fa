"""Buildkite: `buildkite-agent oidc request-token --audience AUD`, with a fake and a real child."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from keyless.ci.base import RunResult
from keyless.ci.buildkite import PROVIDER as buildkite
from keyless.errors import CredentialError, TokenError
from keyless.limits import CI_HELPER_TIMEOUT_SECONDS
from keyless.testing import NO_HTTP, ScriptedRunner, printed
from tests.jwt_factory import make_token

JOB = {"BUILDKITE": "true", "BUILDKITE_JOB_ID": "0190-job"}


def test_not_in_buildkite_is_none() -> None:
    runner = ScriptedRunner(error=AssertionError("must not run"))
    assert buildkite.obtain({}, audience=None, http=NO_HTTP, runner=runner) is None
    assert runner.calls == []


def test_default_audience_is_sts() -> None:
    token = make_token(issuer="https://agent.buildkite.com")
    runner = ScriptedRunner(result=printed(token))
    obtained = buildkite.obtain(JOB, audience=None, http=NO_HTTP, runner=runner)
    assert obtained is not None
    assert obtained.token == token
    assert obtained.provider == "buildkite"
    assert runner.calls == [
        ["buildkite-agent", "oidc", "request-token", "--audience", "sts.amazonaws.com"]
    ]
    assert runner.timeouts == [CI_HELPER_TIMEOUT_SECONDS]


def test_custom_audience_is_passed() -> None:
    runner = ScriptedRunner(result=printed(make_token(audience="https://vault.example")))
    buildkite.obtain(JOB, audience="https://vault.example", http=NO_HTTP, runner=runner)
    assert runner.calls[0][-2:] == ["--audience", "https://vault.example"]


def test_missing_agent_is_a_credential_error_with_the_plugin_fix() -> None:
    runner = ScriptedRunner(error=FileNotFoundError("buildkite-agent"))
    with pytest.raises(CredentialError) as info:
        buildkite.obtain(JOB, audience=None, http=NO_HTTP, runner=runner)
    error = info.value
    assert error.message.startswith("Buildkite: buildkite-agent is not installed or not on PATH")
    assert error.remedy is not None
    assert "mount-buildkite-agent: true" in error.remedy


def test_timeout_is_a_credential_error() -> None:
    runner = ScriptedRunner(error=TimeoutError())
    with pytest.raises(CredentialError, match="did not finish within"):
        buildkite.obtain(JOB, audience=None, http=NO_HTTP, runner=runner)


def test_agent_failure_reports_status_and_last_stderr_line() -> None:
    runner = ScriptedRunner(
        result=RunResult(
            returncode=1, stdout="", stderr="fatal: something\nfatal: 401 Unauthorized\n"
        )
    )
    with pytest.raises(CredentialError) as info:
        buildkite.obtain(JOB, audience=None, http=NO_HTTP, runner=runner)
    assert info.value.message == (
        "Buildkite: `buildkite-agent oidc request-token` exited with status 1:"
        " fatal: 401 Unauthorized"
    )
    assert info.value.remedy is not None
    assert "BUILDKITE_AGENT_ACCESS_TOKEN" in info.value.remedy


def test_output_that_is_not_a_token_is_refused() -> None:
    runner = ScriptedRunner(result=printed("Usage: buildkite-agent oidc ..."))
    with pytest.raises(TokenError, match="several lines or words"):
        buildkite.obtain(JOB, audience=None, http=NO_HTTP, runner=runner)


def _fake_agent(folder: Path, script: str) -> None:
    agent = folder / "buildkite-agent"
    agent.write_text(f"#!{sys.executable}\n{script}")
    agent.chmod(agent.stat().st_mode | stat.S_IXUSR)


@pytest.mark.prints_secrets(
    "stdout"
)  # the fake buildkite-agent prints the token, as the real one does
def test_real_child_process_gets_argv_and_the_job_environment(tmp_path: Path) -> None:
    token = make_token(issuer="https://agent.buildkite.com")
    seen = tmp_path / "seen"
    _fake_agent(
        tmp_path,
        "import os, sys\n"
        f"with open({str(seen)!r}, 'w') as seen:\n"
        "    seen.write(' '.join(sys.argv[1:]) + '|' + os.environ['BUILDKITE_JOB_ID'])\n"
        f"print({token!r})\n",
    )
    env = {**JOB, "PATH": str(tmp_path)}
    obtained = buildkite.obtain(env, audience=None, http=NO_HTTP)
    assert obtained is not None
    assert obtained.token == token
    assert seen.read_text() == "oidc request-token --audience sts.amazonaws.com|0190-job"


def test_real_runner_reports_a_missing_agent(tmp_path: Path) -> None:
    env = {**JOB, "PATH": str(tmp_path)}  # an empty folder: no buildkite-agent anywhere
    with pytest.raises(CredentialError, match="buildkite-agent is not installed"):
        buildkite.obtain(env, audience=None, http=NO_HTTP)


def test_owns_issuer() -> None:
    assert buildkite.owns_issuer("https://agent.buildkite.com")
    assert not buildkite.owns_issuer("https://agent.buildkite.com/")
    assert not buildkite.owns_issuer("https://buildkite.com/acme")


def test_declarations() -> None:
    assert buildkite.aws_condition_claims == frozenset()
    assert {"organization_slug", "pipeline_slug", "build_branch"} <= buildkite.safe_claims
