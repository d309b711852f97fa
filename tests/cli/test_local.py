"""``keyless local token|run`` against one running stack (in this process, announced by its stack
file): the real GitHub client against the emulated endpoint, Bitbucket's claims in a step, and the
real AWS CLI assuming a role with a Bitbucket token through its web identity provider."""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keyless import tokens
from keyless.ci.bitbucket import BitbucketScope
from keyless.local.jobs import emulated
from keyless.local.served import StackInfo, served_stack
from keyless.local.stack import RunningStack
from keyless.trust.web_identity import issuer_prefix
from tests.cli.helpers import Result, run_cli

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
KEYLESS = str(BIN / "keyless")
AWS = str(BIN / "aws")
WORKSPACE_UUID = "5c0ffee0-0000-4000-8000-000000000001"
REPO_A = "7a1e0000-0000-4000-8000-00000000000a"
REPO_B = "7a1e0000-0000-4000-8000-00000000000b"
BITBUCKET = ["--ci", "bitbucket", "--workspace", "acme", "--workspace-uuid", WORKSPACE_UUID]
ROLE_NAME = "deploy-repo-a"


@dataclass(frozen=True, slots=True, kw_only=True)
class Served:
    stack: RunningStack
    info: StackInfo
    role_arn: str

    @property
    def state(self) -> list[str]:
        return ["--state", str(self.info.state_dir)]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_stack(state_dir=tmp_path_factory.mktemp("state")) as (stack, info):
        yield Served(stack=stack, info=info, role_arn=_provision(stack))


def _provision(stack: RunningStack) -> str:
    """An OIDC provider for the acme workspace and a role that trusts repository A only."""
    assert stack.ci is not None
    scope = BitbucketScope(workspace="acme", workspace_uuid=WORKSPACE_UUID, repository_uuid=REPO_A)
    issuer = stack.ci.issuer_for(emulated("bitbucket"), scope)
    provider_arn = stack.register_provider(issuer, client_ids=[scope.audience])
    prefix = issuer_prefix(issuer)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{prefix}:aud": scope.audience},
                    "StringLike": {f"{prefix}:sub": scope.subject_pattern()},
                },
            }
        ],
    }
    role = stack.iam().create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))
    return role["Role"]["Arn"]


def _env(**extra: str) -> dict[str, str]:
    # The test process' environment: the conftest fixture already dropped CI and AWS variables.
    return {**os.environ, **extra}


def local(served: Served, command: str, *argv: str, env: dict[str, str] | None = None) -> Result:
    """``keyless local COMMAND --state <the served stack's> ARGV``."""
    return run_cli(["local", command, *served.state, *argv], env=env or _env())


# --- local token ---------------------------------------------------------------------------------


@pytest.mark.prints_secrets("stdout")  # the token is the command's (or the job's) output
def test_local_token_mints_from_the_running_stack(served: Served) -> None:
    result = local(served, "token", *BITBUCKET, "--repository-uuid", REPO_A)
    assert result.code == 0, result.stderr
    token = tokens.peek(result.stdout)
    assert token.issuer is not None
    assert token.issuer.endswith("/2.0/workspaces/acme/pipelines-config/identity/oidc")
    assert token.subject is not None
    assert token.subject.startswith("{" + REPO_A + "}:{")
    assert token.subject in result.stderr  # said where it came from, on stderr
    assert result.stdout not in result.stderr


def test_local_token_refuses_a_terminal_and_needs_a_stack(served: Served, tmp_path: Path) -> None:
    argv = ["local", "token", *served.state, "--ci", "github", "--repository", "o/r"]
    refused = run_cli(argv, env=_env(), stdout_is_terminal=True)
    assert refused.code == 2
    assert "terminal" in refused.stderr
    written = run_cli([*argv, "--write", str(tmp_path / "t"), "--lifetime", "60"], env=_env())
    assert written.code == 0, written.stderr
    assert (tmp_path / "t").stat().st_mode & 0o777 == 0o600
    peeked = tokens.peek((tmp_path / "t").read_text())
    assert peeked.time_claim("exp") == (peeked.time_claim("iat") or 0) + 60
    none = run_cli(
        [
            "local",
            "token",
            "--state",
            str(tmp_path / "none"),
            "--ci",
            "github",
            "--repository",
            "o/r",
        ],
        env=_env(),
    )
    assert none.code == 2
    assert "no local stack runs from" in none.stderr


def test_scope_flags_of_another_ci_are_refused(served: Served) -> None:
    result = local(served, "token", "--ci", "github", "--repository", "o/r", "--workspace", "x")
    assert result.code == 2
    assert "--workspace is a bitbucket and terraform flag" in result.stderr


# --- local run -----------------------------------------------------------------------------------


def test_keyless_token_takes_the_real_github_path_against_the_emulated_endpoint(
    served: Served,
) -> None:
    result = local(
        served,
        "run",
        "--ci",
        "github",
        "--repository",
        "acme/site",
        "--environment",
        "prod",
        "--",
        KEYLESS,
        "token",
        "--ci",
        "github",
        "--json",
    )
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["source"] == "ACTIONS_ID_TOKEN_REQUEST_URL"
    claims = document["claims"]
    assert claims["sub"] == "repo:acme/site:environment:prod"
    assert claims["aud"] == "sts.amazonaws.com"  # keyless asked for it
    assert claims["iss"] == served.info.servers["github"]
    assert claims["exp"] - claims["iat"] == 300


def test_keyless_token_shows_the_bitbucket_claims_in_a_step(served: Served) -> None:
    result = local(
        served,
        "run",
        *BITBUCKET,
        "--repository-uuid",
        REPO_A,
        "--deployment",
        "production",
        "--",
        KEYLESS,
        "token",
        "--show-claims",
    )
    assert result.code == 0, result.stderr
    assert "provider: bitbucket (Bitbucket Pipelines)" in result.stdout
    assert "source:   BITBUCKET_STEP_OIDC_TOKEN" in result.stdout
    lines = dict(
        line.split(None, 1) for line in result.stdout.splitlines() if line.startswith("  ")
    )
    assert lines["sub"].startswith("{" + REPO_A + "}:{")
    assert lines["sub"].count(":") == 2  # a deployment step: repository, environment, step
    assert lines["aud"] == f"ari:cloud:bitbucket::workspace/{WORKSPACE_UUID}"
    assert lines["repositoryUuid"] == "{" + REPO_A + "}"
    assert lines["workspaceUuid"] == "{" + WORKSPACE_UUID + "}"
    assert lines["branchName"] == "main"
    assert "deploymentEnvironmentUuid" in lines


@pytest.mark.prints_secrets("stdout")  # the token is the command's (or the job's) output
def test_the_job_gets_no_aws_key_and_its_own_aws_config(served: Served) -> None:
    admin = served.stack.admin.access_key_id
    result = local(
        served,
        "run",
        "--ci",
        "gitlab",
        "--project",
        "g/p",
        "--",
        sys.executable,
        "-c",
        "import json, os; print(json.dumps(dict(os.environ)))",
        env=_env(
            AWS_ACCESS_KEY_ID=admin,
            AWS_PROFILE="personal",
            GITHUB_ACTIONS="true",
            KEYLESS_TOKEN_FILE="/tmp/x",
        ),
    )
    assert result.code == 0, result.stderr
    env = json.loads(result.stdout)
    assert admin not in result.stdout
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"} & set(env)
    assert not {"GITHUB_ACTIONS", "KEYLESS_TOKEN_FILE"} & set(env)
    assert env["AWS_ENDPOINT_URL"] == served.info.endpoint_url
    assert env["GITLAB_CI"] == "true"
    assert env["KEYLESS_LOCAL_STATE"] == str(served.info.state_dir)
    config = Path(env["AWS_CONFIG_FILE"])
    assert not config.exists()  # a private folder, removed after the command
    assert not str(config).startswith(str(Path.home() / ".aws"))
    assert env["KEYLESS_LOCAL_CA_BUNDLE"] == str(served.info.ca_bundle)
    assert Path(env["SSL_CERT_FILE"]).parent == config.parent.parent  # the private folder


def test_the_commands_exit_code_is_passed_on(served: Served) -> None:
    argv = ["--ci", "github", "--repository", "o/r", "--"]
    assert local(served, "run", *argv, "sh", "-c", "exit 7").code == 7
    assert local(served, "run", *argv, "sh", "-c", "kill -TERM $$").code == 128 + 15
    missing = local(served, "run", *argv, "no-such-command-anywhere")
    assert missing.code == 2
    assert "command not found: no-such-command-anywhere" in missing.stderr
    assert local(served, "run", "--ci", "github", "--repository", "o/r").code == 2


@pytest.mark.prints_secrets("stdout")  # the token is the command's (or the job's) output
def test_buildkite_agent_on_path_asks_the_stack(served: Served) -> None:
    result = local(
        served,
        "run",
        "--ci",
        "buildkite",
        "--organization",
        "acme",
        "--pipeline",
        "site",
        "--branch",
        "main",
        "--",
        "sh",
        "-c",
        "command -v buildkite-agent >&2 && keyless_out=$(buildkite-agent oidc request-token"
        ' --audience sts.amazonaws.com) && printf %s "$keyless_out"',
    )
    assert result.code == 0, result.stderr
    token = tokens.peek(result.stdout.strip())
    assert token.subject is not None
    assert token.subject.startswith("organization:acme:pipeline:site:ref:refs/heads/main:commit:")
    assert token.audience == ("sts.amazonaws.com",)


# --- the real AWS CLI through its web identity provider ----------------------------------------

_ASSUME = (
    '{keyless} token --write "$WORK/token" && '
    'AWS_WEB_IDENTITY_TOKEN_FILE="$WORK/token" AWS_ROLE_ARN="$ROLE" '
    "AWS_ROLE_SESSION_NAME=pipeline {aws} sts get-caller-identity"
)


def _aws_in_step(served: Served, repository: str, work: Path) -> Result:
    script = _ASSUME.format(keyless=KEYLESS, aws=AWS)
    return local(
        served,
        "run",
        *BITBUCKET,
        "--repository-uuid",
        repository,
        "--",
        "sh",
        "-c",
        script,
        env=_env(WORK=str(work), ROLE=served.role_arn, HOME=str(work), AWS_PAGER=""),
    )


def test_aws_cli_assumes_the_role_with_the_token_of_the_trusted_repository(
    served: Served, tmp_path: Path
) -> None:
    result = _aws_in_step(served, REPO_A, tmp_path)
    assert result.code == 0, result.stderr
    identity = json.loads(result.stdout)
    assert identity["Arn"] == (
        f"arn:aws:sts::{served.stack.account_id}:assumed-role/{ROLE_NAME}/pipeline"
    )


def test_aws_cli_is_denied_with_the_token_of_another_repository(
    served: Served, tmp_path: Path
) -> None:
    result = _aws_in_step(served, REPO_B, tmp_path)
    assert result.code != 0
    assert (
        "(AccessDenied) when calling the AssumeRoleWithWebIdentity operation:"
        " Not authorized to perform sts:AssumeRoleWithWebIdentity"
    ) in result.stderr
    token = (tmp_path / "token").read_text()
    assert token not in result.stderr + result.stdout


def test_a_job_the_ci_would_not_run_is_refused_before_any_stack_starts(tmp_path: Path) -> None:
    scope = ["--ci", "github", "--repository", "o/r", "--audience", "sts.amazonaws.com"]
    result = run_cli(["local", "run", "--state", str(tmp_path), *scope, "--", "true"], env=_env())
    assert result.code == 2
    assert "asks for its audience when it requests a token" in result.stderr
    assert "temporary" not in result.stderr


def test_without_a_running_stack_a_temporary_one_serves_the_command(tmp_path: Path) -> None:
    result = run_cli(
        [
            "local",
            "run",
            "--state",
            str(tmp_path / "no-stack-here"),
            "--ci",
            "circleci",
            "--org-id",
            "6c1e3a3e-2f2a-4f6e-9d3c-2f9a8f1b7c11",
            "--project-id",
            "1c1e3a3e-2f2a-4f6e-9d3c-2f9a8f1b7c22",
            "--",
            KEYLESS,
            "token",
            "--json",
        ],
        env=_env(),
    )
    assert result.code == 0, result.stderr
    assert "starting a temporary one" in result.stderr
    claims = json.loads(result.stdout)["claims"]
    assert claims["aud"] == "6c1e3a3e-2f2a-4f6e-9d3c-2f9a8f1b7c11"
    assert "/vcs-origin/" in claims["sub"]
    assert not (tmp_path / "no-stack-here").exists()


# --- the scope printed by local pipeline pastes everywhere ---------------------------------------

_PIPELINE = """\
pipelines:
  default:
    - step:
        name: Deploy
        deployment: production
        oidc: true
        script:
          - echo deploy
"""


def test_print_scope_pastes_into_every_command_that_takes_a_scope(
    served: Served, tmp_path: Path
) -> None:
    pipeline = tmp_path / "site" / "bitbucket-pipelines.yml"
    pipeline.parent.mkdir()
    pipeline.write_text(_PIPELINE, encoding="utf-8")
    printed = local(
        served, "pipeline", str(pipeline), "--deployment", "production", "--print-scope"
    )
    assert printed.code == 0, printed.stderr
    scope = shlex.split(printed.stdout)
    issuer = scope[scope.index("--issuer") + 1]

    built = run_cli(["trust", "build", *scope, "--account-id", "123456789012"], env=_env())
    assert built.code == 0, built.stderr
    statement = json.loads(built.stdout)["Statement"][0]
    assert statement["Principal"]["Federated"].endswith(f":oidc-provider/{issuer_prefix(issuer)}")

    written = local(served, "token", *scope, "--write", str(tmp_path / "t.jwt"))
    assert written.code == 0, written.stderr
    assert tokens.peek((tmp_path / "t.jwt").read_text()).issuer == issuer

    ran = local(served, "run", *scope, "--", KEYLESS, "token", "--json")
    assert ran.code == 0, ran.stderr
    assert json.loads(ran.stdout)["claims"]["iss"] == issuer


def test_an_issuer_the_stack_does_not_sign_with_is_refused(served: Served, tmp_path: Path) -> None:
    scope = [*BITBUCKET, "--repository-uuid", REPO_A, "--issuer", "https://127.0.0.1:9/other"]
    for command in (
        ["token", *scope, "--write", str(tmp_path / "t")],
        ["run", *scope, "--", "true"],
    ):
        result = local(served, *command)
        assert result.code == 2
        assert "--issuer https://127.0.0.1:9/other is not the issuer of this scope" in result.stderr
        assert "/2.0/workspaces/acme/pipelines-config/identity/oidc" in result.stderr
    assert not (tmp_path / "t").exists()


def test_keyless_in_the_job_recognises_the_local_issuers(served: Served, tmp_path: Path) -> None:
    # `keyless claims` on a file, inside the job: the issuer is the stack's GitHub, so GitHub's
    # safe claims (repository, environment) are shown, not redacted.
    github = ["--ci", "github", "--repository", "acme/site", "--environment", "prod"]
    written = local(served, "token", *github, "--write", str(tmp_path / "gh.jwt"))
    assert written.code == 0, written.stderr
    ran = local(served, "run", *github, "--", KEYLESS, "claims", str(tmp_path / "gh.jwt"), "--json")
    assert ran.code == 0, ran.stderr
    document = json.loads(ran.stdout)
    assert document["provider"] == "github"
    assert document["claims"]["repository"] == "acme/site"
    assert document["claims"]["environment"] == "prod"


def test_a_local_token_with_the_wrong_audience_names_the_command_that_fixes_it(
    served: Served, tmp_path: Path
) -> None:
    github = ["--ci", "github", "--repository", "acme/site", "--environment", "prod"]
    token_file = str(tmp_path / "gh.jwt")
    assert local(served, "token", *github, "--write", token_file).code == 0  # aud github.com/acme
    served.stack.register_provider(served.info.servers["github"], client_ids=["sts.amazonaws.com"])
    env = _env(
        AWS_ENDPOINT_URL=served.info.endpoint_url,
        AWS_DEFAULT_REGION=served.info.region,
        KEYLESS_LOCAL_GITHUB_ISSUER=served.info.servers["github"],
    )
    fix = (
        "keyless local token --ci github <the same scope flags> --audience sts.amazonaws.com"
        f" --write {token_file}"
    )
    assume = ["assume", "--role-arn", served.role_arn, "--token-file", token_file]
    refused = run_cli(assume, env=env)  # STS: Incorrect token audience
    assert refused.code == 2
    assert "Incorrect token audience" in refused.stderr
    assert fix in refused.stderr
    asked = run_cli([*assume, "--audience", "sts.amazonaws.com"], env=env)  # keyless refuses
    assert asked.code == 2
    assert "has audience 'https://github.com/acme'" in asked.stderr
    assert fix in asked.stderr


def test_local_run_home_must_be_an_existing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-home"
    scope = ["--ci", "github", "--repository", "acme/site"]
    result = run_cli(["local", "run", *scope, "--home", str(missing), "--", "true"])
    assert result.code == 2
    assert f"--home {missing} is not an existing folder" in result.stderr
    assert "Traceback" not in result.stderr
