"""The real AWS CLI, with its own web identity credential provider (token file + role_arn in its
config file, AWS_ENDPOINT_URL), against the local stack: the very commands a pipeline runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.local.conftest import BUCKET, OTHER_BUCKET, OTHER_SUBJECT, Scenario

pytestmark = pytest.mark.integration

AWS = Path(sys.executable).with_name("aws")
#: Seconds one CLI command may take (a cold start of awscli on a busy 2-core machine included).
CLI_TIMEOUT_SECONDS = 120


def aws(
    scenario: Scenario, tmp_path: Path, token: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run ``aws ARGS`` as a CI job would: a token file, a profile naming the role, and nothing
    else of the person's AWS setup (HOME and AWS_CONFIG_FILE point into ``tmp_path``)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    token_file = tmp_path / "web-identity-token"
    token_file.write_text(token)  # no trailing newline, as keyless writes it
    config = tmp_path / "config"
    config.write_text(
        "[default]\n"
        f"role_arn = {scenario.role_arn}\n"
        f"web_identity_token_file = {token_file}\n"
        "role_session_name = pipeline-run-7\n"
        f"region = {scenario.stack.region}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(home),
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_ENDPOINT_URL=scenario.stack.endpoint_url,
        AWS_PAGER="",
    )
    return subprocess.run(  # noqa: S603 - fixed argv, the token travels in a file
        [str(AWS), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
        cwd=tmp_path,
    )


def test_get_caller_identity_shows_the_assumed_role(scenario: Scenario, tmp_path: Path) -> None:
    result = aws(scenario, tmp_path, scenario.token(), "sts", "get-caller-identity")
    assert result.returncode == 0, result.stderr
    identity = json.loads(result.stdout)
    assert identity["Arn"] == (
        f"arn:aws:sts::{scenario.stack.account_id}:assumed-role/ci-deploy/pipeline-run-7"
    )
    assert identity["Account"] == scenario.stack.account_id


def test_s3_cp_to_the_roles_bucket_works_and_to_another_is_denied(
    scenario: Scenario, tmp_path: Path
) -> None:
    page = tmp_path / "index.html"
    page.write_text("<h1>deployed by the CLI</h1>")
    token = scenario.token()
    result = aws(scenario, tmp_path, token, "s3", "cp", page.name, f"s3://{BUCKET}/cli/index.html")
    assert result.returncode == 0, result.stderr
    assert f"upload: ./index.html to s3://{BUCKET}/cli/index.html" in result.stdout
    s3 = scenario.stack.admin_session().client("s3", endpoint_url=scenario.stack.endpoint_url)
    body = s3.get_object(Bucket=BUCKET, Key="cli/index.html")["Body"].read()
    assert body == b"<h1>deployed by the CLI</h1>"

    result = aws(scenario, tmp_path, token, "s3", "cp", page.name, f"s3://{OTHER_BUCKET}/x.html")
    assert result.returncode != 0
    assert "(AccessDenied) when calling the PutObject operation" in result.stderr


def test_a_token_from_another_repository_is_access_denied(
    scenario: Scenario, tmp_path: Path
) -> None:
    page = tmp_path / "page.html"
    page.write_text("x")
    token = scenario.token(subject=OTHER_SUBJECT)
    result = aws(scenario, tmp_path, token, "s3", "cp", page.name, f"s3://{BUCKET}/evil.html")
    assert result.returncode != 0
    assert (
        "(AccessDenied) when calling the AssumeRoleWithWebIdentity operation:"
        " Not authorized to perform sts:AssumeRoleWithWebIdentity"
    ) in result.stderr
    assert token not in result.stderr + result.stdout


def test_garbage_gets_stss_error_code(scenario: Scenario, tmp_path: Path) -> None:
    result = aws(scenario, tmp_path, "not-a-token", "sts", "get-caller-identity")
    assert result.returncode != 0
    assert (
        "(InvalidIdentityToken) when calling the AssumeRoleWithWebIdentity operation:"
        " Couldn't parse the token"
    ) in result.stderr
