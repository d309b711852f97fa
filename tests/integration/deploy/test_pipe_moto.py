"""``keyless pipe`` with the atlassian variables: OIDC through STS (moto), and its refusals."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import boto3
import pytest

from tests.cli.helpers import run_cli
from tests.integration.deploy.conftest import create_distribution

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/deploy"
BITBUCKET = {"BITBUCKET_BUILD_NUMBER": "7", "BITBUCKET_REPO_UUID": "{0000}"}


def _fake_jwt() -> str:
    # moto's STS does not verify tokens (the local stack's gateway does); the shape is what counts.
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part({'sub': 'x', 'aud': 'a'})}.c2ln"


def test_s3_deploy_with_oidc(tmp_path: Path, bucket: str, aws_env: str) -> None:
    (tmp_path / "index.html").write_text("hi")
    env = {
        **BITBUCKET,
        # The exchange reads the job's environment (here: this mapping), as `keyless assume` does.
        "AWS_ENDPOINT_URL": aws_env,
        "BITBUCKET_STEP_OIDC_TOKEN": _fake_jwt(),
        "AWS_OIDC_ROLE_ARN": ROLE,
        "AWS_DEFAULT_REGION": "us-east-1",
        "S3_BUCKET": f"{bucket}/www",
        "LOCAL_PATH": str(tmp_path),
        "CACHE_CONTROL": "no-cache",
    }
    result = run_cli(["pipe", "aws-s3-deploy"], env=env)
    assert result.code == 0, result.stderr
    assert "uploaded www/index.html" in result.stderr
    # The session is named as `keyless assume` names it, from the step's variables.
    assert "assumed arn:aws:sts::123456789012:assumed-role/deploy/bitbucket-0000-7 " in (
        result.stderr
    )
    head = boto3.client("s3").head_object(Bucket=bucket, Key="www/index.html")
    assert head["CacheControl"] == "no-cache"
    assert _fake_jwt() not in result.stderr


def test_role_without_token_is_an_error_with_the_fix(tmp_path: Path, bucket: str) -> None:
    (tmp_path / "index.html").write_text("hi")
    env = {
        **BITBUCKET,
        "AWS_OIDC_ROLE_ARN": ROLE,
        "S3_BUCKET": bucket,
        "LOCAL_PATH": str(tmp_path),
        # Stored keys in the step change nothing: no token is still an error.
        "AWS_ACCESS_KEY_ID": "AKIAKEYLESSTEST00000",
        "AWS_SECRET_ACCESS_KEY": "not-a-secret",
    }
    result = run_cli(["pipe", "aws-s3-deploy"], env=env)
    assert result.code == 2
    assert "BITBUCKET_STEP_OIDC_TOKEN is not set" in result.stderr
    assert "oidc: true" in result.stderr
    assert "never falls back" in result.stderr
    assert boto3.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_bad_role_arn_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("hi")
    env = {**BITBUCKET, "AWS_OIDC_ROLE_ARN": "deploy", "S3_BUCKET": "b-1"}
    result = run_cli(["pipe", "aws-s3-deploy"], env={**env, "LOCAL_PATH": str(tmp_path)})
    assert result.code == 2
    assert "error: AWS_OIDC_ROLE_ARN 'deploy' is not an IAM role ARN" in result.stderr


def test_cloudfront_invalidate_pipe(bucket: str, aws_env: str) -> None:
    distribution = create_distribution(bucket, reference=f"pipe-{bucket}")
    env = {
        **BITBUCKET,
        "BITBUCKET_STEP_OIDC_TOKEN": _fake_jwt(),
        "AWS_OIDC_ROLE_ARN": ROLE,
        "AWS_ENDPOINT_URL": aws_env,
        "DISTRIBUTION_ID": distribution,
        "PATHS": "/index.html /assets/*",
    }
    result = run_cli(["pipe", "aws-cloudfront-invalidate"], env=env)
    assert result.code == 0, result.stderr
    assert f"created for {distribution}: /index.html /assets/*" in result.stderr
    listed = boto3.client("cloudfront").list_invalidations(DistributionId=distribution)[
        "InvalidationList"
    ]
    assert listed["Quantity"] == 1


def _keys(bucket: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket)
    return sorted(
        item["Key"] for item in listed.get("Contents", []) if ".keyless-" not in item["Key"]
    )


def test_pre_execution_script_runs_before_the_deploy(tmp_path: Path, bucket: str) -> None:
    # The script builds the folder the pipe then deploys; it sees the pipe's variables.
    script = tmp_path / "build.sh"
    script.write_text('mkdir -p "$LOCAL_PATH" && echo built > "$LOCAL_PATH/index.html"\n')
    env = {
        "S3_BUCKET": bucket,
        "LOCAL_PATH": str(tmp_path / "public"),
        "PRE_EXECUTION_SCRIPT": str(script),
        "PATH": "/usr/bin:/bin",
    }
    result = run_cli(["pipe", "aws-s3-deploy"], env=env)
    assert result.code == 0, result.stderr
    assert f"running PRE_EXECUTION_SCRIPT {script}" in result.stderr
    assert _keys(bucket) == ["index.html"]

    script.write_text('echo built > "$LOCAL_PATH/late.html"; exit 4\n')
    failed = run_cli(["pipe", "aws-s3-deploy"], env=env)
    assert failed.code == 2
    assert f"PRE_EXECUTION_SCRIPT '{script}' exited with 4; nothing deployed" in failed.stderr
    assert _keys(bucket) == ["index.html"]


def test_the_delete_guard_is_raised_or_forced_by_the_pipe_variables(
    tmp_path: Path, bucket: str
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    for name in ("a", "b", "c", "d"):
        (site / f"{name}.html").write_text(name)
    env = {"S3_BUCKET": bucket, "LOCAL_PATH": str(site)}
    assert run_cli(["pipe", "aws-s3-deploy"], env=env).code == 0
    for name in ("b", "c", "d"):
        (site / f"{name}.html").unlink()

    refused = run_cli(["pipe", "aws-s3-deploy"], env={**env, "DELETE_FLAG": "true"})
    assert refused.code == 2
    assert (
        "error: aws-s3-deploy: refusing to delete 3 of 4 objects (75%), more than"
        " MAX_DELETE_PERCENT 50%"
    ) in refused.stderr
    assert "FORCE_DELETE: 'true'" in refused.stderr
    assert _keys(bucket) == ["a.html", "b.html", "c.html", "d.html"]

    raised = {**env, "DELETE_FLAG": "true", "MAX_DELETE_PERCENT": "75"}
    assert run_cli(["pipe", "aws-s3-deploy"], env=raised).code == 0, "75% is within 75"
    assert _keys(bucket) == ["a.html"]

    (site / "a.html").unlink()
    (site / "e.html").write_text("e")
    forced = {**env, "DELETE_FLAG": "true", "MAX_DELETE_PERCENT": "0", "FORCE_DELETE": "true"}
    result = run_cli(["pipe", "aws-s3-deploy"], env=forced)
    assert result.code == 0, result.stderr
    assert _keys(bucket) == ["e.html"]


def test_keys_beside_a_role_are_said_to_be_unused(tmp_path: Path, bucket: str) -> None:
    (tmp_path / "index.html").write_text("hi")
    env = {
        "AWS_OIDC_ROLE_ARN": ROLE,
        "S3_BUCKET": bucket,
        "LOCAL_PATH": str(tmp_path),
        "AWS_ACCESS_KEY_ID": "AKIAKEYLESSTEST00000",
    }
    result = run_cli(["pipe", "aws-s3-deploy"], env=env)
    assert result.code == 2
    assert "keyless: AWS_ACCESS_KEY_ID not used: AWS_OIDC_ROLE_ARN is set" in result.stderr
    # Outside any CI the advice is in the pipe's terms, not the command line's.
    assert "AWS_OIDC_ROLE_ARN is set, but no CI detected" in result.stderr
    for flag in ("--ci", "--token-file", "--allow-static-fallback"):
        assert flag not in result.stderr
