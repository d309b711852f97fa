"""The keyless GitHub Action: action.yml, docs/github-action.md and the command agree on every
input and output (and cover every input of configure-aws-credentials); actionlint accepts a
workflow that uses it; its steps, run as the runner would inside ``keyless local run --ci github``
against the local stack, export masked credentials and set the outputs."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from keyless.action import INPUTS, OUTPUTS, env_name
from keyless.local.served import StackInfo, served_stack
from keyless.local.stack import RunningStack
from keyless.trust.web_identity import issuer_prefix
from tests.cli.helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
DOC = (ROOT / "docs" / "github-action.md").read_text(encoding="utf-8")

#: The inputs of aws-actions/configure-aws-credentials' action.yml (at bcd4089, 2026-08-18).
CONFIGURE_AWS_CREDENTIALS_INPUTS = [
    "aws-region",
    "aws-profile",
    "overwrite-aws-profile",
    "role-to-assume",
    "aws-access-key-id",
    "aws-secret-access-key",
    "aws-session-token",
    "web-identity-token-file",
    "role-chaining",
    "audience",
    "http-proxy",
    "no-proxy",
    "mask-aws-account-id",
    "role-duration-seconds",
    "role-external-id",
    "role-session-name",
    "role-skip-session-tagging",
    "transitive-tag-keys",
    "inline-session-policy",
    "managed-session-policies",
    "output-credentials",
    "output-env-credentials",
    "unset-current-credentials",
    "disable-retry",
    "retry-max-attempts",
    "special-characters-workaround",
    "use-existing-credentials",
    "allowed-account-ids",
    "force-skip-oidc",
    "action-timeout-s",
    "custom-tags",
    "sts-endpoint",
]
CONFIGURE_AWS_CREDENTIALS_OUTPUTS = [
    "aws-account-id",
    "authenticated-arn",
    "aws-access-key-id",
    "aws-secret-access-key",
    "aws-session-token",
    "aws-expiration",
]


def _table(heading: str) -> list[list[str]]:
    section = DOC.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in rows]


# --- the contract --------------------------------------------------------------------------------


def test_the_documented_inputs_are_the_action_inputs_and_the_command_inputs() -> None:
    documented = {row[0]: (row[1], row[2]) for row in _table("Inputs")}
    assert list(documented) == list(ACTION["inputs"]) == [spec.name for spec in INPUTS]
    for spec in INPUTS:
        status = "keyless only" if spec.keyless_only else "refused" if spec.refused else "accepted"
        assert documented[spec.name] == (status, spec.default), spec.name
        assert str(ACTION["inputs"][spec.name].get("default", "")) == spec.default, spec.name


def test_every_configure_aws_credentials_input_and_output_is_covered() -> None:
    ours = {spec.name: spec for spec in INPUTS}
    assert set(CONFIGURE_AWS_CREDENTIALS_INPUTS) <= set(ours)
    assert {n for n, s in ours.items() if not s.keyless_only} == set(
        CONFIGURE_AWS_CREDENTIALS_INPUTS
    )
    assert [row[0] for row in _table("Outputs")] == list(OUTPUTS) == list(ACTION["outputs"])
    assert list(OUTPUTS) == CONFIGURE_AWS_CREDENTIALS_OUTPUTS


def test_every_input_reaches_the_command_by_environment_not_argv() -> None:
    steps = ACTION["runs"]["steps"]
    assert ACTION["runs"]["using"] == "composite"
    configure = next(step for step in steps if step.get("id") == "configure")
    assert configure["env"] == {
        env_name(spec.name): f"${{{{ inputs.{spec.name} }}}}" for spec in INPUTS
    }
    assert "${{" not in configure["run"]
    for output in OUTPUTS:
        assert ACTION["outputs"][output]["value"] == (
            f"${{{{ steps.configure.outputs.{output} }}}}"
        )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("aws-access-key-id", "AKIAEXAMPLE", "never uses stored AWS keys"),
        ("aws-profile", "deploy", "keyless assume --profile"),
        ("special-characters-workaround", "true", "verbatim"),
        ("action-timeout-s", "60", "timeout-minutes"),
        ("http-proxy", "http://proxy:3128", "HTTPS_PROXY"),
    ],
)
def test_a_refused_input_fails_with_its_reason(name: str, value: str, message: str) -> None:
    env = {**os.environ, "INPUT_AWS_REGION": "eu-west-1", env_name(name): value}
    result = run_cli(["action", "configure-aws-credentials"], env=env)
    assert result.code == 2
    assert f"input {name} is not supported by keyless" in result.stderr
    assert message in result.stderr
    assert value not in result.stderr or name != "aws-access-key-id"


def test_session_tags_are_refused_for_a_web_identity_exchange(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "INPUT_AWS_REGION": "eu-west-1",
        "INPUT_ROLE_TO_ASSUME": "arn:aws:iam::123456789012:role/deploy",
        "INPUT_CUSTOM_TAGS": '{"team": "web"}',
        "INPUT_DOCTOR_ON_FAILURE": "false",
    }
    result = run_cli(["action", "configure-aws-credentials"], env=env)
    assert result.code == 2
    assert "input custom-tags applies to AssumeRole only" in result.stderr


# --- actionlint ---------------------------------------------------------------------------------

WORKFLOW = """\
on: push
permissions:
  id-token: write
  contents: read
jobs:
  deploy:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v5
      - id: aws
        uses: ./
        with:
          aws-region: eu-west-1
          role-to-assume: arn:aws:iam::123456789012:role/site-deploy
          {extra}
      - run: echo "${{{{ steps.aws.outputs.aws-account-id }}}}"
"""


def _actionlint(tmp_path: Path, extra: str) -> subprocess.CompletedProcess[str]:
    # actionlint finds the project (and so `uses: ./`) by its .git folder.
    (tmp_path / ".git").mkdir()
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / "action.yml").write_bytes((ROOT / "action.yml").read_bytes())
    workflow = tmp_path / ".github" / "workflows" / "deploy.yml"
    workflow.write_text(WORKFLOW.format(extra=extra), encoding="utf-8")
    return subprocess.run(  # noqa: S603 - the locked actionlint
        [str(BIN / "actionlint"), "-no-color", str(workflow)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_actionlint_accepts_a_workflow_using_the_action(tmp_path: Path) -> None:
    done = _actionlint(tmp_path, "deploy-source: site")
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_reads_the_action_inputs(tmp_path: Path) -> None:
    done = _actionlint(tmp_path, "no-such-input: x")
    assert done.returncode == 1
    assert "no-such-input" in done.stdout


# --- the steps, run as the runner runs them, on the local stack ----------------------------------

SUBJECT = "repo:acme/site:environment:prod"


@pytest.fixture(scope="module")
def github_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StackInfo, str]]:
    with served_stack(state_dir=tmp_path_factory.mktemp("state")) as (stack, info):
        yield info, _github_role(stack, info)


def _github_role(stack: RunningStack, info: StackInfo) -> str:
    issuer = info.servers["github"]
    provider_arn = stack.register_provider(issuer, client_ids=["sts.amazonaws.com"])
    prefix = issuer_prefix(issuer)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{prefix}:aud": "sts.amazonaws.com", f"{prefix}:sub": SUBJECT}
                },
            }
        ],
    }
    role = stack.iam().create_role(
        RoleName="site-deploy", AssumeRolePolicyDocument=json.dumps(trust)
    )
    return str(role["Role"]["Arn"])


def _substitute(text: str, inputs: dict[str, str]) -> str:
    """``${{ inputs.NAME }}`` as the runner substitutes it (the input, else its default)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return inputs.get(name, str(ACTION["inputs"][name].get("default", "")))

    return re.sub(r"\$\{\{ inputs\.([a-z0-9-]+) \}\}", value, text)


def _script(inputs: dict[str, str], work: Path) -> str:
    """Every step of action.yml as one bash script, with the runner's files and variables."""
    lines = ["set -euo pipefail"]
    for name, value in {
        "GITHUB_ENV": work / "env",
        "GITHUB_OUTPUT": work / "output",
        "RUNNER_TEMP": work / "temp",
        "GITHUB_ACTION_PATH": ROOT,
    }.items():
        lines.append(f"export {name}={shlex.quote(str(value))}")
    for step in ACTION["runs"]["steps"]:
        assert step["shell"] == "bash"
        env = {key: _substitute(str(val), inputs) for key, val in step.get("env", {}).items()}
        exports = " ".join(f"{key}={shlex.quote(val)}" for key, val in env.items())
        lines.append(f"( export {exports} true; {step['run']} )" if env else f"( {step['run']} )")
    return "\n".join(lines) + "\n"


def _runner_files(work: Path) -> None:
    """The runner's empty files, and the venv the install step made (this test's own keyless:
    installing the checkout again is what tests/dist does)."""
    (work / "env").write_text("")
    (work / "output").write_text("")
    venv = work / "temp" / "keyless-action-venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "keyless").symlink_to(BIN / "keyless")
    (venv / ".installed-from").write_text(str(ROOT))


def _run_action(
    info: StackInfo, inputs: dict[str, str], work: Path
) -> subprocess.CompletedProcess[str]:
    _runner_files(work)
    script = work / "action.sh"
    script.write_text(_script(inputs, work), encoding="utf-8")
    argv = [str(BIN / "keyless"), "local", "run", "--state", str(info.state_dir), "--ci", "github"]
    argv += ["--repository", "acme/site", "--environment", "prod", "--", "bash", str(script)]
    return subprocess.run(  # noqa: S603 - this keyless
        argv,
        cwd=work,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.integration
def test_the_action_exports_masked_credentials_and_sets_the_outputs(
    github_stack: tuple[StackInfo, str], tmp_path: Path
) -> None:
    info, role_arn = github_stack
    inputs = {"aws-region": "eu-west-1", "role-to-assume": role_arn, "output-credentials": "true"}
    done = _run_action(info, inputs, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    exported = dict(
        line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines() if line
    )
    assert exported["AWS_REGION"] == exported["AWS_DEFAULT_REGION"] == "eu-west-1"
    key, secret, token = (
        exported["AWS_ACCESS_KEY_ID"],
        exported["AWS_SECRET_ACCESS_KEY"],
        exported["AWS_SESSION_TOKEN"],
    )
    masks = [line for line in done.stdout.splitlines() if line.startswith("::add-mask::")]
    # Masked before any other output of the step, and each value at least once.
    assert done.stdout.startswith("::add-mask::")
    assert {f"::add-mask::{v}" for v in (key, secret, token)} <= set(masks)

    outputs = _outputs((tmp_path / "output").read_text())
    assert outputs["aws-account-id"] == info.account_id
    assert outputs["authenticated-arn"].startswith(
        f"arn:aws:sts::{info.account_id}:assumed-role/site-deploy/GitHubActions"
    )
    assert (outputs["aws-access-key-id"], outputs["aws-secret-access-key"]) == (key, secret)
    assert outputs["aws-session-token"] == token
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", outputs["aws-expiration"])
    # The account is not masked unless asked (configure-aws-credentials' default now).
    assert f"::add-mask::{info.account_id}" not in masks
    assert secret not in done.stderr
    assert token not in done.stderr


@pytest.mark.integration
def test_the_action_without_output_credentials_masks_the_account_when_asked(
    github_stack: tuple[StackInfo, str], tmp_path: Path
) -> None:
    info, role_arn = github_stack
    inputs = {"aws-region": "eu-west-1", "role-to-assume": role_arn, "mask-aws-account-id": "true"}
    inputs["allowed-account-ids"] = f"111111111111, {info.account_id}"
    done = _run_action(info, inputs, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = _outputs((tmp_path / "output").read_text())
    assert sorted(outputs) == ["authenticated-arn", "aws-account-id"]
    assert f"::add-mask::{info.account_id}" in done.stdout.splitlines()


@pytest.mark.integration
def test_the_action_refuses_an_account_not_allowed_and_exports_nothing(
    github_stack: tuple[StackInfo, str], tmp_path: Path
) -> None:
    info, role_arn = github_stack
    inputs = {"aws-region": "eu-west-1", "role-to-assume": role_arn}
    inputs["allowed-account-ids"] = "111111111111"
    done = _run_action(info, inputs, tmp_path)
    assert done.returncode == 2
    assert "not one of the allowed-account-ids 111111111111" in done.stderr
    assert (tmp_path / "env").read_text() == ""
    assert (tmp_path / "output").read_text() == ""


def _outputs(text: str) -> dict[str, Any]:
    found = re.findall(r"^([\w-]+)<<(ghadelimiter_[0-9a-f]+)\n(.*?)\n\2$", text, re.M | re.S)
    return {name: value for name, _, value in found}
