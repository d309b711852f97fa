"""`keyless doctor` against the local stack, one test per failure class, each asserting the named
cause: no `oidc: true` / `id-token: write`, a deployment environment that changes `sub`, a
pull_request subject, a wrong audience, a missing provider, GitHub's immutable subject against a
name-only pattern, a custom subject template; and a clean bill of health."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.github_endpoint import serve, token_reply
from tests.integration.credentials.conftest import (
    BITBUCKET_AUDIENCE,
    KEYLESS,
    PROD_UUID,
    STAGING_UUID,
    Account,
    run,
)

pytestmark = pytest.mark.integration


def doctor(account: Account, env: dict[str, str], *args: str, expect: int = 1) -> dict[str, Any]:
    result = run(
        [str(KEYLESS), "doctor", "--json", "--ca-bundle", str(account.stack.ca_bundle), *args],
        env,
    )
    assert result.returncode == expect, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    for secret in (env.get("BITBUCKET_STEP_OIDC_TOKEN"), env.get("AWS_SECRET_ACCESS_KEY")):
        if secret:
            assert secret not in result.stdout + result.stderr
    return report


def step(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in report["steps"] if s["step"] == name)
    return found


@contextmanager
def github_job(account: Account, home: Path, token: str, **extra: str) -> Iterator[dict[str, str]]:
    with serve([token_reply(token)]) as endpoint:
        yield account.job_env(
            home,
            GITHUB_ACTIONS="true",
            ACTIONS_ID_TOKEN_REQUEST_URL=endpoint.url,
            ACTIONS_ID_TOKEN_REQUEST_TOKEN="ghs_request-bearer",
            GITHUB_REPOSITORY="acme/site",
            GITHUB_RUN_ID="1",
            **extra,
        )


def test_all_fine(account: Account, home: Path) -> None:
    env = account.bitbucket_env(home, account.bitbucket_token(), **account.admin())
    report = doctor(account, env, "--role-arn", account.bb_deploy, expect=0)
    assert report["ok"] is True
    assert report["cause"] is None
    assert {s["step"]: s["status"] for s in report["steps"]} == {
        "ci": "ok",
        "token": "ok",
        "claims": "ok",
        "time": "ok",
        "signature": "ok",
        "provider": "ok",
        "trust": "ok",
        "exchange": "ok",
        "identity": "ok",
    }
    assert step(report, "identity")["data"]["identity"]["role"] == "bb-deploy"


def test_a_bitbucket_step_without_oidc(account: Account, home: Path) -> None:
    report = doctor(account, account.bitbucket_env(home, None), "--role-arn", account.bb_deploy)
    assert report["cause"] == "oidc-not-enabled"
    assert "oidc: true" in step(report, "token")["fix"]


def test_a_github_job_without_id_token_write(account: Account, home: Path) -> None:
    env = account.job_env(home, GITHUB_ACTIONS="true", GITHUB_REPOSITORY="acme/site")
    report = doctor(account, env, "--role-arn", account.gh_main)
    assert report["cause"] == "oidc-not-enabled"
    assert "id-token: write" in step(report, "token")["fix"]


def test_a_deployment_environment_changes_the_subject(account: Account, home: Path) -> None:
    # The role pins the production environment; this step deploys to staging.
    token = account.bitbucket_token(environment=STAGING_UUID)
    env = account.bitbucket_env(home, token, **account.admin())
    report = doctor(account, env, "--role-arn", account.bb_prod)
    assert report["cause"] == "deployment-environment"
    trust = step(report, "trust")
    assert trust["status"] == "problem"
    assert any(PROD_UUID in line and STAGING_UUID in line for line in trust["details"])
    assert step(report, "exchange")["cause"] == "deployment-environment"


def test_a_pull_request_subject(account: Account, home: Path) -> None:
    token = account.github_token(subject="repo:acme/site:pull_request")
    with github_job(account, home, token) as env:
        # No credentials to read the role: the likely cause from the claims alone.
        report = doctor(account, env, "--role-arn", account.gh_main)
    assert report["cause"] == "pull-request"
    assert step(report, "trust")["status"] == "skipped"
    assert "AccessDenied" in step(report, "exchange")["summary"]


def test_a_pull_request_subject_against_a_policy_file(
    account: Account, home: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "trust.json"
    document = account.stack.iam().get_role(RoleName="gh-main")["Role"]["AssumeRolePolicyDocument"]
    policy.write_text(json.dumps(document))
    token = account.github_token(subject="repo:acme/site:pull_request")
    with github_job(account, home, token) as env:
        report = doctor(account, env, "--role-arn", account.gh_main, "--policy", str(policy))
    trust = step(report, "trust")
    assert trust["cause"] == "pull-request"
    assert trust["summary"].startswith(f"--policy {policy}:")


def test_a_wrong_audience(account: Account, home: Path) -> None:
    token = account.bitbucket_token(audience="ari:cloud:bitbucket::workspace/another")
    env = account.bitbucket_env(home, token, **account.admin())
    report = doctor(account, env, "--role-arn", account.bb_deploy)
    assert report["cause"] == "audience"
    assert BITBUCKET_AUDIENCE in step(report, "provider")["summary"]
    exchange = step(report, "exchange")
    assert "InvalidIdentityToken: Incorrect token audience" in exchange["summary"]
    assert exchange["cause"] == "audience"


def test_a_missing_provider(account: Account, home: Path) -> None:
    token = account.github_token(issuer=account.unregistered_issuer)
    with github_job(account, home, token) as env:
        report = doctor(account, env, "--role-arn", account.gh_main)
    assert report["cause"] == "provider-missing"
    exchange = step(report, "exchange")
    assert "InvalidIdentityToken: No OpenIDConnect provider found" in exchange["summary"]
    assert account.unregistered_issuer in exchange["fix"]

    with github_job(account, home, token, **account.admin()) as env:
        report = doctor(account, env, "--role-arn", account.gh_main)
    assert step(report, "provider")["cause"] == "provider-missing"


def test_an_immutable_github_subject_against_a_name_only_pattern(
    account: Account, home: Path
) -> None:
    token = account.github_token(subject="repo:acme@101/site@202:ref:refs/heads/main")
    with github_job(account, home, token, **account.admin()) as env:
        report = doctor(account, env, "--role-arn", account.gh_main)
    assert report["cause"] == "immutable-subject"
    assert "@ID" in step(report, "trust")["fix"]


def test_a_custom_subject_template(account: Account, home: Path) -> None:
    subject = (
        "repo:acme/site:environment:prod:job_workflow_ref:acme/ci/.github/workflows/d.yml@main"
    )
    token = account.github_token(subject=subject)
    with github_job(account, home, token, **account.admin()) as env:
        report = doctor(account, env, "--role-arn", account.gh_main)
    assert report["cause"] == "custom-subject"


def test_human_output_names_the_cause_and_the_fix(account: Account, home: Path) -> None:
    token = account.bitbucket_token(environment=STAGING_UUID)
    env = account.bitbucket_env(home, token, **account.admin())
    ca = str(account.stack.ca_bundle)
    result = run([str(KEYLESS), "doctor", "--role-arn", account.bb_prod, "--ca-bundle", ca], env)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[ok     ] ci         Bitbucket Pipelines")
    assert any(line.startswith("[PROBLEM] trust") for line in lines)
    assert any(line.strip() == "cause: deployment-environment" for line in lines)
    assert lines[-1] == "Problem found: deployment-environment."
    assert token not in result.stdout + result.stderr


def test_outside_local_run_the_exported_local_ca_verifies_the_signature(
    account: Account, home: Path
) -> None:
    # What `keyless local serve` exports is enough: no --ca-bundle (loopback hosts only).
    env = account.bitbucket_env(home, account.bitbucket_token(), **account.admin())
    env.pop("KEYLESS_LOCAL_CA_BUNDLE", None)
    unknown = run([str(KEYLESS), "doctor", "--json", "--role-arn", account.bb_deploy], env)
    assert json.loads(unknown.stdout)["cause"] == "issuer-unreachable", unknown.stdout
    env["KEYLESS_LOCAL_CA_BUNDLE"] = str(account.stack.ca_bundle)
    exported = run([str(KEYLESS), "doctor", "--json", "--role-arn", account.bb_deploy], env)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert step(json.loads(exported.stdout), "signature")["status"] == "ok"


def test_human_output_is_short_and_says_each_fix_once(account: Account, home: Path) -> None:
    token = account.bitbucket_token(audience="ari:cloud:bitbucket::workspace/another")
    env = account.bitbucket_env(home, token, **account.admin())
    ca = str(account.stack.ca_bundle)
    result = run([str(KEYLESS), "doctor", "--role-arn", account.bb_deploy, "--ca-bundle", ca], env)
    assert result.returncode == 1
    out = result.stdout
    fixes = [line.strip() for line in out.splitlines() if line.strip().startswith("fix:")]
    spelled = [fix for fix in fixes if "as for" not in fix]
    assert len(spelled) == len(set(spelled)), out
    assert any(fix.startswith("fix:   as for provider above") for fix in fixes), out
    assert "or Request" not in out
    assert "have the job request" in out
    # The claims IAM decides on, not every claim: no epoch times (the time step has them).
    claims = out.split("] claims", 1)[1].split("\n[", 1)[0].splitlines()[1:]
    assert [line.split(" = ")[0].strip() for line in claims if " = " in line] == [
        "iss",
        "sub",
        "aud",
    ], out
    assert "more claim(s) in --json and `keyless claims`" in out
    assert not [line for line in claims if line.strip().startswith(("iat", "exp", "nbf"))]
