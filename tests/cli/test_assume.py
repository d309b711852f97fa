"""`keyless assume`, `exec`, `credential-process` and `whoami` driven through main(argv) with STS on
botocore's Stubber: outputs, refusals, the no-fallback rule, and no secret in stderr or argv."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import boto3
import pytest

from tests.cli.helpers import Result, run_cli
from tests.jwt_factory import make_token
from tests.sts_stub import (
    ACCESS_KEY_ID,
    ROLE_ARN,
    SECRET_ACCESS_KEY,
    SESSION_TOKEN,
    StubbedSts,
    assume_role_response,
    identity_response,
    stubbed_sts,
    web_identity_response,
)

ISSUER = "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
REPO = "{7a1e0000-0000-4000-8000-00000000000a}"
SESSION = "bitbucket-site-42-3f2a9c1d"
WEB_IDENTITY = "assume_role_with_web_identity"


def _token(**kwargs: object) -> str:
    return make_token(
        {"repositoryUuid": REPO},
        issuer=ISSUER,
        audience="ari:cloud:bitbucket::workspace/5c0ffee0",
        subject=f"{REPO}:{{3f2a9c1d-0000-4000-8000-000000000001}}",
        **kwargs,  # type: ignore[arg-type]
    )


TOKEN = _token()


def _env(token: str | None = TOKEN, **extra: str) -> dict[str, str]:
    env = {
        "BITBUCKET_BUILD_NUMBER": "42",
        "BITBUCKET_REPO_SLUG": "site",
        "BITBUCKET_STEP_UUID": "{3f2a9c1d-0000-4000-8000-000000000001}",
        "PATH": os.environ.get("PATH", ""),
    }
    if token is not None:
        env["BITBUCKET_STEP_OIDC_TOKEN"] = token
    env.update(extra)
    return env


@pytest.fixture
def stub() -> Iterator[StubbedSts]:
    with stubbed_sts() as stubbed:
        yield stubbed


def _answer(stub: StubbedSts, *, session: str = SESSION) -> None:
    stub.stubber.add_response(
        WEB_IDENTITY,
        web_identity_response(session=session),
        {"RoleArn": ROLE_ARN, "RoleSessionName": session, "WebIdentityToken": TOKEN},
    )
    stub.stubber.add_response("get_caller_identity", identity_response(session=session))


def _assert_no_secrets(result: Result, *, stdout_too: bool = False) -> None:
    places = [result.stderr] + ([result.stdout] if stdout_too else [])
    for text in places:
        for secret in (TOKEN, TOKEN.rsplit(".", 1)[1][:24], SECRET_ACCESS_KEY, SESSION_TOKEN):
            assert secret not in text


# --- assume --------------------------------------------------------------------------------------


@pytest.mark.prints_secrets("stdout")  # the credentials are the command's output
@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_assume_prints_exports_and_keeps_secrets_off_stderr(
    stub: StubbedSts, verbose: list[str]
) -> None:
    _answer(stub)
    result = run_cli([*verbose, "assume", "--role-arn", ROLE_ARN], env=_env(), seams=stub.seams)
    assert result.code == 0, result.stderr
    assert f"export AWS_ACCESS_KEY_ID={ACCESS_KEY_ID}\n" in result.stdout
    assert "export AWS_SECRET_ACCESS_KEY=" in result.stdout
    assert result.stderr == (
        f"keyless: assumed arn:aws:sts::123456789012:assumed-role/deploy/{SESSION}"
        " (account 123456789012) until 2030-01-02T03:04:05Z\n"
    )
    _assert_no_secrets(result)


@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_access_denied_is_one_line_naming_role_and_code(
    stub: StubbedSts, verbose: list[str]
) -> None:
    stub.stubber.add_client_error(
        WEB_IDENTITY, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403
    )
    result = run_cli([*verbose, "assume", "--role-arn", ROLE_ARN], env=_env(), seams=stub.seams)
    assert result.code == 2
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first == (
        f"error: STS AssumeRoleWithWebIdentity for {ROLE_ARN} failed: AccessDenied: Not authorized"
        " to perform sts:AssumeRoleWithWebIdentity"
    )
    assert "keyless doctor" in result.stderr
    assert stub.time.sleeps == []
    _assert_no_secrets(result, stdout_too=True)


@pytest.mark.prints_secrets("stdout")  # the credentials are the command's output
def test_dotenv_json_and_summary(stub: StubbedSts) -> None:
    _answer(stub)
    result = run_cli(
        ["assume", "--role-arn", ROLE_ARN, "--format", "json"], env=_env(), seams=stub.seams
    )
    assert json.loads(result.stdout)["SecretAccessKey"] == SECRET_ACCESS_KEY
    _answer(stub)
    result = run_cli(
        ["assume", "--role-arn", ROLE_ARN, "--format", "dotenv"], env=_env(), seams=stub.seams
    )
    assert f"AWS_SESSION_TOKEN={SESSION_TOKEN}\n" in result.stdout
    _answer(stub)
    result = run_cli(["assume", "--role-arn", ROLE_ARN, "--json"], env=_env(), seams=stub.seams)
    summary = json.loads(result.stdout)
    assert summary["identity"]["session"] == SESSION
    assert summary["expiration"] == "2030-01-02T03:04:05Z"
    _assert_no_secrets(result, stdout_too=True)


@pytest.mark.prints_secrets("stdout")  # the credentials are the command's output
def test_the_role_can_come_from_the_environment(stub: StubbedSts) -> None:
    _answer(stub)
    result = run_cli(["assume"], env=_env(KEYLESS_ROLE_ARN=ROLE_ARN), seams=stub.seams)
    assert result.code == 0, result.stderr


def test_a_terminal_gets_no_credentials_and_costs_no_call(stub: StubbedSts) -> None:
    result = run_cli(
        ["assume", "--role-arn", ROLE_ARN], env=_env(), stdout_is_terminal=True, seams=stub.seams
    )
    assert result.code == 2
    assert "refusing to print credentials to a terminal" in result.stderr
    assert stub.keys_used == []


def test_no_token_is_an_error_even_with_static_keys(stub: StubbedSts) -> None:
    env = _env(token=None, AWS_ACCESS_KEY_ID="AKIASTATIC", AWS_SECRET_ACCESS_KEY="static-secret")
    result = run_cli(["assume", "--role-arn", ROLE_ARN], env=env, seams=stub.seams)
    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(
        "error: Bitbucket Pipelines: BITBUCKET_STEP_OIDC_TOKEN is not set in this step"
    )
    assert "oidc: true" in result.stderr
    assert "--allow-static-fallback" in result.stderr
    assert "static-secret" not in result.stderr
    assert stub.keys_used == []  # no STS call at all


@pytest.mark.prints_secrets("stdout")  # the credentials are the command's output
def test_static_fallback_only_when_asked(stub: StubbedSts) -> None:
    env = _env(token=None, AWS_ACCESS_KEY_ID="AKIASTATIC", AWS_SECRET_ACCESS_KEY="static-secret")
    stub.stubber.add_response(
        "assume_role",
        assume_role_response(ROLE_ARN, SESSION),
        {"RoleArn": ROLE_ARN, "RoleSessionName": SESSION},
    )
    stub.stubber.add_response("get_caller_identity", identity_response(session=SESSION))
    result = run_cli(
        ["assume", "--role-arn", ROLE_ARN, "--allow-static-fallback"], env=env, seams=stub.seams
    )
    assert result.code == 0, result.stderr
    assert result.stderr.startswith("warning: Bitbucket Pipelines: BITBUCKET_STEP_OIDC_TOKEN")
    assert "(--allow-static-fallback)" in result.stderr
    assert stub.keys_used[0] is not None
    assert stub.keys_used[0].access_key_id == "AKIASTATIC"
    assert "static-secret" not in result.stderr


def test_fallback_without_keys_still_fails(stub: StubbedSts) -> None:
    result = run_cli(
        ["assume", "--role-arn", ROLE_ARN, "--allow-static-fallback"],
        env=_env(token=None),
        seams=stub.seams,
    )
    assert result.code == 2
    assert "--allow-static-fallback found no AWS_ACCESS_KEY_ID" in result.stderr


def test_an_expired_token_is_refused_before_sts(stub: StubbedSts) -> None:
    expired = _token(now=int(time.time()) - 7200)
    result = run_cli(["assume", "--role-arn", ROLE_ARN], env=_env(token=expired), seams=stub.seams)
    assert result.code == 2
    assert "the token from BITBUCKET_STEP_OIDC_TOKEN expired at" in result.stderr
    assert stub.keys_used == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--profile", "ci", "--format", "env"], "--profile and --format exclude each other"),
        (["--json", "--format", "env"], "--json and --format exclude each other"),
        (["--profile", "ci", "--duration", "3600"], "--profile cannot carry --duration"),
        (["--profile", "ci", "--chain-role-arn", ROLE_ARN], "cannot carry --chain-role-arn"),
        (["--session-name", "a b"], "--session-name 'a b' is not valid"),
        (["--expect-account", "12"], "--expect-account '12' is not a 12-digit"),
        (["--chain-role-arn", "x"], "--chain-role-arn 'x' is not an IAM role ARN"),
        (["--duration", "60"], "--duration 60 is out of range"),
    ],
)
def test_usage_errors(stub: StubbedSts, argv: list[str], message: str) -> None:
    result = run_cli(["assume", "--role-arn", ROLE_ARN, *argv], env=_env(), seams=stub.seams)
    assert result.code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_no_role_is_a_usage_error(stub: StubbedSts) -> None:
    result = run_cli(["assume"], env=_env(), seams=stub.seams)
    assert result.code == 2
    assert "no role to assume: pass --role-arn ARN" in result.stderr


@pytest.mark.prints_secrets("stdout")  # the credentials are the command's output
def test_a_session_policy_file_is_sent_compact(stub: StubbedSts, tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text('{\n  "Version": "2012-10-17",\n  "Statement": []\n}\n')
    stub.stubber.add_response(
        WEB_IDENTITY,
        web_identity_response(session=SESSION),
        {
            "RoleArn": ROLE_ARN,
            "RoleSessionName": SESSION,
            "WebIdentityToken": TOKEN,
            "Policy": '{"Version":"2012-10-17","Statement":[]}',
        },
    )
    stub.stubber.add_response("get_caller_identity", identity_response(session=SESSION))
    result = run_cli(
        ["assume", "--role-arn", ROLE_ARN, "--session-policy", str(policy)],
        env=_env(),
        seams=stub.seams,
    )
    assert result.code == 0, result.stderr


def test_profile_writes_no_credentials_anywhere(stub: StubbedSts, tmp_path: Path) -> None:
    _answer(stub)
    env = _env(HOME=str(tmp_path), AWS_CONFIG_FILE=str(tmp_path / "config"))
    result = run_cli(
        ["assume", "--role-arn", ROLE_ARN, "--profile", "ci", "--json"], env=env, seams=stub.seams
    )
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["profile"]["token_file"] == str(tmp_path / "keyless" / "ci.token")
    config = (tmp_path / "config").read_text()
    assert config == (
        "[profile ci]\n"
        f"role_arn = {ROLE_ARN}\n"
        f"web_identity_token_file = {tmp_path / 'keyless' / 'ci.token'}\n"
        f"role_session_name = {SESSION}\n"
        "region = us-east-1\n"
    )
    assert (tmp_path / "keyless" / "ci.token").read_text() == TOKEN
    assert "AWS_PROFILE=ci" in result.stderr
    _assert_no_secrets(result, stdout_too=True)
    assert SECRET_ACCESS_KEY not in config


@pytest.mark.prints_secrets(
    "stdout", "file"
)  # masks on stdout and the runner's GITHUB_ENV, by design
def test_github_format_masks_and_appends(stub: StubbedSts, tmp_path: Path) -> None:
    _answer(stub)
    github_env = tmp_path / "github_env"
    result = run_cli(
        ["assume", "--role-arn", ROLE_ARN, "--format", "github"],
        env=_env(GITHUB_ENV=str(github_env)),
        stdout_is_terminal=True,  # the job log: masks are fine there, credentials never
        seams=stub.seams,
    )
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[1] == f"::add-mask::{SECRET_ACCESS_KEY}"
    assert f"AWS_SESSION_TOKEN={SESSION_TOKEN}" in github_env.read_text()
    _assert_no_secrets(result)


# --- credential-process and exec -----------------------------------------------------------------


@pytest.mark.prints_secrets("stdout")  # the credentials are the command's output
def test_credential_process_prints_only_the_document(stub: StubbedSts) -> None:
    _answer(stub)
    result = run_cli(["credential-process", "--role-arn", ROLE_ARN], env=_env(), seams=stub.seams)
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["Version"] == 1
    assert document["AccountId"] == "123456789012"
    assert result.stderr == ""


@pytest.mark.prints_secrets("stdout")  # the credentials are the command's output
def test_exec_hands_credentials_through_the_environment_only(
    stub: StubbedSts, capfd: pytest.CaptureFixture[str]
) -> None:
    _answer(stub)
    child = (
        "import json, os, sys; print(json.dumps({'argv': sys.argv,"
        " 'cmdline': open('/proc/self/cmdline').read(),"
        " 'env': {k: v for k, v in os.environ.items() if k.startswith('AWS_')}}))"
    )
    env = _env(
        AWS_ACCESS_KEY_ID="AKIAOUTER",
        AWS_SECRET_ACCESS_KEY="outer-secret",
        AWS_PROFILE="outer",
        AWS_WEB_IDENTITY_TOKEN_FILE="/outer/token",
        AWS_ROLE_ARN="arn:aws:iam::111111111111:role/outer",
    )
    result = run_cli(
        ["exec", "--role-arn", ROLE_ARN, "--", sys.executable, "-c", child, "arg1"],
        env=env,
        seams=stub.seams,
    )
    assert result.code == 0, result.stderr
    seen = json.loads(capfd.readouterr().out)
    assert seen["argv"][1:] == ["arg1"]
    for secret in (SECRET_ACCESS_KEY, SESSION_TOKEN, TOKEN):
        assert secret not in seen["cmdline"]
    assert seen["env"]["AWS_ACCESS_KEY_ID"] == ACCESS_KEY_ID
    assert seen["env"]["AWS_SECRET_ACCESS_KEY"] == SECRET_ACCESS_KEY
    for name in ("AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        assert name not in seen["env"]
    _assert_no_secrets(result, stdout_too=True)


def test_exec_exits_with_the_childs_code(stub: StubbedSts) -> None:
    _answer(stub)
    result = run_cli(
        ["exec", "--role-arn", ROLE_ARN, "--", sys.executable, "-c", "raise SystemExit(3)"],
        env=_env(),
        seams=stub.seams,
    )
    assert result.code == 3


def test_exec_without_a_command_costs_no_call(stub: StubbedSts) -> None:
    result = run_cli(["exec", "--role-arn", ROLE_ARN, "--"], env=_env(), seams=stub.seams)
    assert result.code == 2
    assert "no command given" in result.stderr
    assert stub.keys_used == []


# --- whoami --------------------------------------------------------------------------------------


def test_whoami_names_the_role_and_session(stub: StubbedSts) -> None:
    def make_session(env: Mapping[str, str], region: str) -> boto3.Session:
        return boto3.Session(
            region_name=region,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            aws_session_token=SESSION_TOKEN,
        )

    seams = dataclasses.replace(stub.seams, ambient_session=make_session)
    stub.stubber.add_response("get_caller_identity", identity_response(session=SESSION))
    result = run_cli(["whoami"], env={}, seams=seams)
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "account: 123456789012",
        f"arn:     arn:aws:sts::123456789012:assumed-role/deploy/{SESSION}",
        f"user id: AROAEXAMPLE:{SESSION}",
        "role:    deploy",
        f"session: {SESSION}",
        "from:    explicit",
    ]
    stub.stubber.add_response("get_caller_identity", identity_response(session=SESSION))
    document = json.loads(run_cli(["whoami", "--json"], env={}, seams=seams).stdout)
    assert document["role"] == "deploy"
    assert document["credential_source"] == "explicit"


SAFE_EVAL = 'creds="$(keyless assume --role-arn ARN)" && eval "$creds"'


def test_every_shell_hint_assigns_before_eval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `eval "$(keyless assume ...)"` alone succeeds when the exchange fails (the README's warning):
    # help and remedies show the assignment that fails the shell instead, and no undocumented
    # variable.
    run_cli(["assume", "--help"])  # argparse writes help to sys.stdout itself
    shown = [
        capsys.readouterr().out,
        run_cli(
            ["whoami"], env={"HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "c")}
        ).stderr,
    ]
    for text in shown:
        assert SAFE_EVAL in text, text
        assert 'eval "$(keyless' not in text
        assert "$AWS_ROLE_ARN" not in text
    assert 'eval "$(keyless' not in Path("README.md").read_text(encoding="utf-8")
