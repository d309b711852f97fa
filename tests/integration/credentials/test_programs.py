"""Every way `keyless assume` hands credentials on, consumed by a real program against the local
stack: the shell and the AWS CLI, a profile used by the AWS CLI and by boto3, credential_process,
`keyless exec`, a second hop, and no secret in stderr, in `-v` output or in a child's argv."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from tests.github_endpoint import serve, token_reply
from tests.integration.credentials.conftest import (
    AWS,
    BITBUCKET_SESSION,
    KEYLESS,
    Account,
    run,
)

pytestmark = pytest.mark.integration


def _secrets_of(env_exports: str) -> list[str]:
    """The secret values in `--format env` output."""
    values = dict(
        line.removeprefix("export ").split("=", 1) for line in env_exports.splitlines() if line
    )
    return [
        shlex.split(values["AWS_SECRET_ACCESS_KEY"])[0],
        shlex.split(values["AWS_SESSION_TOKEN"])[0],
    ]


def _assert_absent(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
        assert secret[-24:] not in text


def _assumed_arn(account: Account, role: str, session: str = BITBUCKET_SESSION) -> str:
    return f"arn:aws:sts::{account.stack.account_id}:assumed-role/{role}/{session}"


def test_eval_env_then_the_aws_cli(account: Account, home: Path) -> None:
    token = account.bitbucket_token()
    env = account.bitbucket_env(home, token, AWS_OIDC_ROLE_ARN=account.bb_deploy)
    script = (
        f'eval "$({KEYLESS} -v assume --format env 2>{home}/assume.err)" && '
        f"{AWS} sts get-caller-identity"
    )
    result = run(["/bin/bash", "-c", script], env)
    assert result.returncode == 0, result.stderr + (home / "assume.err").read_text()
    identity = json.loads(result.stdout)
    assert identity["Arn"] == _assumed_arn(account, "bb-deploy")
    stderr = (home / "assume.err").read_text()
    assert stderr.startswith(f"keyless: assumed {_assumed_arn(account, 'bb-deploy')}")
    exports = run([str(KEYLESS), "assume", "--role-arn", account.bb_deploy], env)
    _assert_absent(stderr + exports.stderr, token, *_secrets_of(exports.stdout))


def test_a_profile_is_used_by_the_aws_cli_and_by_boto3(account: Account, home: Path) -> None:
    token = account.bitbucket_token()
    env = account.bitbucket_env(home, token)
    config = home / ".aws" / "config"
    config.parent.mkdir()
    config.write_text("[default]\nregion = eu-central-1\noutput = text\n")
    result = run([str(KEYLESS), "assume", "--role-arn", account.bb_deploy, "--profile", "ci"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    text = config.read_text()
    assert text.startswith("[default]\nregion = eu-central-1\noutput = text\n\n[profile ci]\n")
    token_file = home / ".aws" / "keyless" / "ci.token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    _assert_absent(result.stderr, token)

    # The job's variables are gone: the AWS CLI and boto3 assume the role from the profile alone.
    plain = account.job_env(home, AWS_PROFILE="ci")
    cli = run([str(AWS), "sts", "get-caller-identity", "--output", "json"], plain)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["Arn"] == _assumed_arn(account, "bb-deploy")
    code = (
        "import boto3, json; s = boto3.Session();"
        " print(json.dumps([s.client('sts').get_caller_identity()['Arn'],"
        " s.get_credentials().method]))"
    )
    sdk = run([sys.executable, "-c", code], plain)
    assert sdk.returncode == 0, sdk.stderr
    assert json.loads(sdk.stdout) == [
        _assumed_arn(account, "bb-deploy"),
        "assume-role-with-web-identity",
    ]


def test_credential_process_in_an_aws_config(account: Account, home: Path) -> None:
    token = account.bitbucket_token()
    config = home / ".aws" / "config"
    config.parent.mkdir()
    config.write_text(
        "[profile deploy]\n"
        f"credential_process = {KEYLESS} credential-process --role-arn {account.bb_deploy}\n"
    )
    env = account.bitbucket_env(home, token, AWS_PROFILE="deploy")
    result = run([str(AWS), "sts", "get-caller-identity"], env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Arn"] == _assumed_arn(account, "bb-deploy")


def test_credential_process_fetches_a_fresh_github_token_each_time(
    account: Account, home: Path
) -> None:
    first, second = account.github_token(), account.github_token()
    assert first != second
    with serve([token_reply(first), token_reply(second)]) as endpoint:
        env = account.job_env(
            home,
            GITHUB_ACTIONS="true",
            ACTIONS_ID_TOKEN_REQUEST_URL=endpoint.url,
            ACTIONS_ID_TOKEN_REQUEST_TOKEN="ghs_request-bearer",
            GITHUB_REPOSITORY="acme/site",
            GITHUB_RUN_ID="9876543210",
            GITHUB_RUN_ATTEMPT="1",
        )
        argv = [str(KEYLESS), "credential-process", "--role-arn", account.gh_main]
        documents = [run(argv, env), run(argv, env)]
    for result in documents:
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["Version"] == 1
        assert result.stderr == ""
    assert len(endpoint.requests) == 2
    assert endpoint.requests[0].query["audience"] == ["sts.amazonaws.com"]


def test_exec_runs_the_aws_cli_without_the_outer_keys(account: Account, home: Path) -> None:
    token = account.bitbucket_token()
    env = account.bitbucket_env(
        home,
        token,
        AWS_ACCESS_KEY_ID="AKIAOUTEROUTEROUTER0",
        AWS_SECRET_ACCESS_KEY="outer-secret-that-must-not-be-used",
        AWS_PROFILE="outer",
    )
    result = run(
        [
            str(KEYLESS),
            "exec",
            "--role-arn",
            account.bb_deploy,
            "--",
            str(AWS),
            "sts",
            "get-caller-identity",
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Arn"] == _assumed_arn(account, "bb-deploy")
    _assert_absent(result.stderr, token)


def test_exec_exposes_no_secret_in_the_childs_argv(account: Account, home: Path) -> None:
    token = account.bitbucket_token()
    env = account.bitbucket_env(home, token)
    child = (
        "import json, os;"
        " print(json.dumps({'cmdline': open('/proc/self/cmdline').read(),"
        " 'parent': open(f'/proc/{os.getppid()}/cmdline').read(),"
        " 'secrets': [os.environ['AWS_SECRET_ACCESS_KEY'], os.environ['AWS_SESSION_TOKEN']]}))"
    )
    result = run(
        [
            str(KEYLESS),
            "-v",
            "exec",
            "--role-arn",
            account.bb_deploy,
            "--",
            sys.executable,
            "-c",
            child,
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    secrets = [token, *seen["secrets"]]
    _assert_absent(seen["cmdline"] + seen["parent"] + result.stderr, *secrets)
    assert result.stderr.startswith("keyless: assumed")  # -v says what it did, nothing secret


def test_a_second_hop_and_whoami(account: Account, home: Path) -> None:
    env = account.bitbucket_env(home, account.bitbucket_token())
    result = run(
        [
            str(KEYLESS),
            "exec",
            "--role-arn",
            account.bb_deploy,
            "--chain-role-arn",
            account.chained,
            "--expect-account",
            account.stack.account_id,
            "--",
            str(KEYLESS),
            "whoami",
            "--json",
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    whoami = json.loads(result.stdout)
    assert whoami["role"] == "chained"
    assert whoami["session"] == BITBUCKET_SESSION
    assert whoami["account"] == account.stack.account_id
    assert whoami["credential_source"] == "env"


def test_another_account_is_refused_and_nothing_is_printed(account: Account, home: Path) -> None:
    env = account.bitbucket_env(home, account.bitbucket_token())
    result = run(
        [
            str(KEYLESS),
            "assume",
            "--role-arn",
            account.bb_deploy,
            "--expect-account",
            "999999999999",
        ],
        env,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"are in account {account.stack.account_id}, not the expected 999999999999" in (
        result.stderr
    )


def test_a_refused_token_is_one_line_naming_role_and_code(account: Account, home: Path) -> None:
    token = account.bitbucket_token(environment="{e0000000-0000-4000-8000-0000000000e2}")
    env = account.bitbucket_env(home, token)
    result = run([str(KEYLESS), "-v", "assume", "--role-arn", account.bb_prod], env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == (
        f"error: STS AssumeRoleWithWebIdentity for {account.bb_prod} failed: AccessDenied: Not"
        " authorized to perform sts:AssumeRoleWithWebIdentity"
    )
    assert "retrying" not in result.stderr  # AccessDenied is never retried
    _assert_absent(result.stderr, token)


def test_no_token_with_static_keys_is_refused_with_the_remedy(account: Account, home: Path) -> None:
    env = account.bitbucket_env(
        home,
        None,
        AWS_ACCESS_KEY_ID=account.stack.admin.access_key_id,
        AWS_SECRET_ACCESS_KEY=account.stack.admin.secret_access_key,
    )
    result = run([str(KEYLESS), "assume", "--role-arn", account.bb_deploy], env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "oidc: true" in result.stderr
    assert "--allow-static-fallback" in result.stderr
    _assert_absent(result.stderr, account.stack.admin.secret_access_key)
