"""``keyless deploy`` argument errors (one line naming the value, exit code 2, no AWS call), and
``--role-arn``: the exchange of ``keyless assume`` first, with STS on botocore's Stubber."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from keyless.cli.cmd_deploy import TerminalProgress
from keyless.cli.seams import Seams
from keyless.deploy.apply import DeployRequest, DeployResult
from keyless.deploy.headers import HeaderPolicy
from keyless.deploy.local_tree import LocalFile
from keyless.deploy.plan import Plan, Reason, Upload
from tests.cli.helpers import run_cli
from tests.cli.test_assume import SESSION, TOKEN
from tests.sts_stub import (
    ACCESS_KEY_ID,
    ROLE_ARN,
    SECRET_ACCESS_KEY,
    SESSION_TOKEN,
    StubbedSts,
    identity_response,
    stubbed_sts,
    web_identity_response,
)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["site", "bucket/prefix"], "destination 'bucket/prefix' is not an S3 URL"),
        (["site", "s3://Bad_Bucket"], "bucket name 'Bad_Bucket' is not valid"),
        (["site", "s3://b-1", "--acl", "public"], "--acl 'public' is not a canned ACL"),
        (["site", "s3://b-1", "--rule", "*.js"], "rule '*.js' is not GLOB:header=value"),
        (["site", "s3://b-1", "--metadata", "novalue"], "--metadata 'novalue' is not K=V"),
        (["site", "s3://b-1", "--expires", "soon"], "expires date 'soon' is not a date"),
        (["site", "s3://b-1", "--concurrency", "0"], "--concurrency 0 is out of range"),
        (["site", "s3://b-1", "--max-delete", "150"], "--max-delete 150 is not a percentage"),
        (["site", "s3://b-1", "--paths", "/x"], "--paths needs --invalidate"),
        # Header values: a control character is named with its flag before any request.
        (
            ["site", "s3://b-1", "--metadata", "build=1\r\nX-Evil: 1"],
            "--metadata build='1\\r\\nX-Evil: 1' holds the control character '\\r'",
        ),
        (
            ["site", "s3://b-1", "--cache-control", "no-cache\nSet-Cookie: a=b"],
            "--cache-control 'no-cache\\nSet-Cookie: a=b' holds the control character '\\n'",
        ),
        (
            ["site", "s3://b-1", "--content-encoding", "gzip\x00"],
            "--content-encoding 'gzip\\x00' holds the control character '\\x00'",
        ),
        (
            ["site", "s3://b-1", "--rule", "*.html:cache-control=a\r\nb"],
            "rule '*.html:cache-control=a\\r\\nb' holds the control character '\\r'",
        ),
    ],
)
def test_bad_arguments(argv: list[str], message: str) -> None:
    result = run_cli(["deploy", *argv])
    assert result.code == 2
    assert f"error: {message}" in result.stderr


def test_terminal_progress_draws_one_line() -> None:
    stream = io.StringIO()
    ticks = iter(float(i) for i in range(1, 100))
    progress = TerminalProgress(stream, clock=lambda: next(ticks))
    file = LocalFile(key="a.html", path="a.html", size=2000)
    upload = Upload(key="a.html", file=file, reason=Reason.NEW, headers=HeaderPolicy().for_key("a"))
    progress.planned(
        Plan(
            uploads=(upload, upload),
            deletes=(),
            unchanged=(),
            skipped=(),
            local_count=2,
            remote_count=0,
        )
    )
    progress.done("upload", "a.html", 2000, True)
    progress.done("upload", "b.html", 2000, True)
    progress.close()
    text = stream.getvalue()
    assert text.startswith("plan: 2 to upload (4.0 kB)")
    assert "\r[###############               ] 1/2 files, 2.0 kB/4.0 kB" in text
    assert text.endswith("2/2 files, 4.0 kB/4.0 kB\n")


def test_missing_or_empty_local_dir_is_refused_before_any_aws_call(tmp_path: Path) -> None:
    missing = run_cli(["deploy", str(tmp_path / "dist"), "s3://site-1", "--delete"])
    assert missing.code == 2
    assert f"error: LOCAL_DIR '{tmp_path / 'dist'}' does not exist" in missing.stderr
    empty = run_cli(["deploy", str(tmp_path), "s3://site-1", "--delete"])
    assert empty.code == 2
    assert "error: LOCAL_DIR is empty: refusing to deploy nothing" in empty.stderr


# --- --role-arn: the exchange of `keyless assume`, then the deploy with its credentials --------


@pytest.fixture
def stub() -> Iterator[StubbedSts]:
    with stubbed_sts() as stubbed:
        yield stubbed


@pytest.fixture
def deployed() -> list[tuple[DeployRequest, boto3.Session]]:
    """What ``deploy`` was called with (by ``seams``); nothing is sent to S3."""
    return []


@pytest.fixture
def seams(stub: StubbedSts, deployed: list[tuple[DeployRequest, boto3.Session]]) -> Seams:
    """The stubbed STS, and a deploy that records its arguments."""

    def fake_deploy(
        request: DeployRequest, *, session: boto3.Session, progress: object
    ) -> DeployResult:
        deployed.append((request, session))
        plan = Plan(uploads=(), deletes=(), unchanged=(), skipped=(), local_count=1, remote_count=1)
        return DeployResult(plan=plan, dry_run=False)

    return dataclasses.replace(stub.seams, deploy=fake_deploy)


def _bitbucket_env(token: str | None = TOKEN) -> dict[str, str]:
    env = {
        "BITBUCKET_BUILD_NUMBER": "42",
        "BITBUCKET_REPO_SLUG": "site",
        "BITBUCKET_STEP_UUID": "{3f2a9c1d-0000-4000-8000-000000000001}",
        # Stored keys of the step: never used once --role-arn is given.
        "AWS_ACCESS_KEY_ID": "AKIASTOREDKEY0000000",
        "AWS_SECRET_ACCESS_KEY": "stored-secret-never-used",
    }
    if token is not None:
        env["BITBUCKET_STEP_OIDC_TOKEN"] = token
    return env


def test_role_arn_assumes_first_then_deploys_with_those_credentials(
    stub: StubbedSts,
    deployed: list[tuple[DeployRequest, boto3.Session]],
    seams: Seams,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As in the exchange, no profile is read: one that does not exist cannot stop the deploy.
    monkeypatch.setenv("AWS_PROFILE", "does-not-exist")
    stub.stubber.add_response(
        "assume_role_with_web_identity",
        web_identity_response(session=SESSION),
        {"RoleArn": ROLE_ARN, "RoleSessionName": SESSION, "WebIdentityToken": TOKEN},
    )
    stub.stubber.add_response("get_caller_identity", identity_response(session=SESSION))
    argv = ["deploy", str(tmp_path), "s3://site-1/www", "--role-arn", ROLE_ARN]
    result = run_cli(
        [*argv, "--region", "eu-west-1", "--expect-account", "123456789012"],
        env=_bitbucket_env(),
        seams=seams,
    )
    assert result.code == 0, result.stderr
    assert result.stderr.startswith(
        f"keyless: assumed arn:aws:sts::123456789012:assumed-role/deploy/{SESSION}"
        " (account 123456789012) until 2030-01-02T03:04:05Z\n"
    )
    [(request, session)] = deployed
    assert request.target.prefix == "www/"
    credentials = session.get_credentials()
    assert credentials is not None
    frozen = credentials.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        SESSION_TOKEN,
    )
    assert session.region_name == "eu-west-1"
    assert session.client("s3").meta.region_name == "eu-west-1"
    for secret in (TOKEN, SECRET_ACCESS_KEY, SESSION_TOKEN):
        assert secret not in result.stdout + result.stderr


def test_role_arn_without_token_is_refused_before_any_deploy(
    stub: StubbedSts,
    deployed: list[tuple[DeployRequest, boto3.Session]],
    tmp_path: Path,
    seams: Seams,
) -> None:
    argv = ["deploy", str(tmp_path), "s3://site-1", "--role-arn", ROLE_ARN]
    result = run_cli(argv, env=_bitbucket_env(token=None), seams=seams)
    assert result.code == 2
    assert "error: Bitbucket Pipelines: BITBUCKET_STEP_OIDC_TOKEN is not set" in result.stderr
    assert "never falls back" in result.stderr
    assert deployed == []


def test_expect_account_refuses_other_accounts(
    stub: StubbedSts,
    deployed: list[tuple[DeployRequest, boto3.Session]],
    tmp_path: Path,
    seams: Seams,
) -> None:
    stub.stubber.add_response(
        "assume_role_with_web_identity", web_identity_response(session=SESSION)
    )
    stub.stubber.add_response("get_caller_identity", identity_response(session=SESSION))
    argv = ["deploy", str(tmp_path), "s3://site-1", "--role-arn", ROLE_ARN]
    result = run_cli([*argv, "--expect-account", "999999999999"], env=_bitbucket_env(), seams=seams)
    assert result.code == 2
    assert "are in account 123456789012, not the expected 999999999999" in result.stderr
    assert deployed == []


@pytest.mark.parametrize(
    "option",
    [
        ["--audience", "sts.amazonaws.com"],
        ["--session-name", "x-1"],
        ["--duration", "900"],
        ["--expect-account", "123456789012"],
        ["--ci", "bitbucket"],
        ["--token-file", "t.jwt"],
        ["--token-env", "ID_TOKEN"],
    ],
)
def test_exchange_options_need_role_arn(option: list[str], tmp_path: Path) -> None:
    result = run_cli(["deploy", str(tmp_path), "s3://site-1", *option])
    assert result.code == 2
    assert f"error: {option[0]} needs --role-arn" in result.stderr


def test_no_session_policies_chaining_or_static_fallback(tmp_path: Path) -> None:
    for option in ("--chain-role-arn", "--session-policy", "--allow-static-fallback"):
        result = run_cli(["deploy", str(tmp_path), "s3://site-1", option, "x"])
        assert result.code == 2
        assert "unrecognized arguments" in result.stderr


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda root: (root / "a").symlink_to("b") or (root / "b").symlink_to("a"),
            "symlink 'a' is a symlink loop",
        ),
        (lambda root: (root / "gone").symlink_to("nowhere"), "symlink 'gone' is dangling"),
    ],
    ids=["loop", "dangling"],
)
def test_broken_symlinks_are_named_before_any_aws_call(
    tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    (tmp_path / "index.html").write_text("home")
    make(tmp_path)
    result = run_cli(["deploy", str(tmp_path), "s3://site-1"])
    assert result.code == 2
    assert result.stderr.startswith(f"error: {message}")
