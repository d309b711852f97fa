"""HCP Terraform end to end on the served local stack: `keyless provision --ci terraform` creates a
role for the apply runs of one workspace (its trust lints clean, so no --allow-risky); an apply run
of that workspace (`keyless local run --ci terraform`: the token in TFC_WORKLOAD_IDENTITY_TOKEN, as
HCP Terraform delivers it) assumes it, while a plan run of the same workspace and an apply run of a
sibling workspace are refused by STS. Then the real AWS CLI's `aws iam list-roles` is piped into
`keyless trust lint - --ci terraform`, which names the one broad role of the account."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keyless.ci import terraform
from keyless.ci.terraform import TerraformScope
from keyless.cli.seams import Seams
from keyless.local.served import StackInfo, served_stack
from keyless.local.stack import RunningStack
from keyless.trust.web_identity import issuer_prefix
from tests.cli.helpers import Result, run_cli
from tests.integration.local.provisioning import (
    AWS,
    BUCKET,
    KEYLESS,
    TIMEOUT_SECONDS,
    create_bucket,
    program_env,
)

pytestmark = pytest.mark.integration

ORGANIZATION = "acme"
PROJECT = "Default Project"
SCOPE = TerraformScope(organization=ORGANIZATION, project=PROJECT, workspace="prod")
ROLE = "tf-prod-apply"
BROAD_ROLE = "tf-any-run"


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    stack: RunningStack
    info: StackInfo
    role_arn: str
    provision_stderr: str


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Account]:
    with served_stack(state_dir=tmp_path_factory.mktemp("state")) as (stack, info):
        create_bucket(stack)
        with pytest.MonkeyPatch.context() as monkeypatch:
            result = _provision(stack, monkeypatch)
        assert result.code == 0, result.stderr
        role_arn = result.stdout.strip()
        assert re.fullmatch(rf"arn:aws:iam::\d{{12}}:role/{ROLE}", role_arn), result.stdout
        yield Account(stack=stack, info=info, role_arn=role_arn, provision_stderr=result.stderr)


def _provision(stack: RunningStack, monkeypatch: pytest.MonkeyPatch) -> Result:
    assert stack.ci is not None
    issuer = stack.ci.issuer_for(terraform.PROVIDER, SCOPE)
    for name, value in stack.environment(admin=True).items():
        monkeypatch.setenv(name, value)
    argv = [
        "provision",
        "--ci",
        "terraform",
        "--organization",
        ORGANIZATION,
        "--project",
        PROJECT,
        "--workspace",
        "prod",
        "--role-name",
        ROLE,
        "--s3-deploy",
        f"{BUCKET}/tf",
        "--issuer",
        issuer,
        "--ca-bundle",
        str(stack.ca_bundle),
    ]
    return run_cli(argv, seams=Seams(admin_session=lambda region: stack.admin_session()))


def run(
    account: Account, scope: Sequence[str], script: str, home: Path
) -> subprocess.CompletedProcess[str]:
    """``script`` as a run of ``scope`` (``keyless local run --ci terraform``)."""
    home.mkdir(parents=True, exist_ok=True)
    argv = [
        str(KEYLESS),
        "local",
        "run",
        "--state",
        str(account.info.state_dir),
        "--ci",
        "terraform",
    ]
    return subprocess.run(  # noqa: S603 - fixed programs; the token travels in env only
        [*argv, *scope, "--", "bash", "-e", "-c", script],
        env=program_env(HOME=str(home), ROLE_ARN=account.role_arn),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def workspace(name: str, *, phase: str = "apply") -> list[str]:
    return [
        "--organization",
        ORGANIZATION,
        "--project",
        PROJECT,
        "--workspace",
        name,
        "--run-phase",
        phase,
    ]


ASSUME = (
    'test -n "$TFC_WORKLOAD_IDENTITY_TOKEN"\n'
    'test "$TFC_WORKLOAD_IDENTITY_AUDIENCE" = aws.workload.identity\n'
    'keyless exec --role-arn "$ROLE_ARN" -- aws sts get-caller-identity --output json\n'
)


def test_provision_pins_the_workspace_apply_runs_and_lints_clean(account: Account) -> None:
    assert "Only apply runs of the workspace 'prod'" in account.provision_stderr
    assert "Lint [" not in account.provision_stderr  # no finding at all for the exact pin
    role = account.stack.iam().get_role(RoleName=ROLE)["Role"]
    trust: Any = role["AssumeRolePolicyDocument"]  # botocore decodes it; the stubs say str
    (statement,) = trust["Statement"]
    assert account.stack.ci is not None
    prefix = issuer_prefix(account.stack.ci.issuer_for(terraform.PROVIDER, SCOPE))
    assert statement["Condition"] == {
        "StringEquals": {
            f"{prefix}:aud": "aws.workload.identity",
            f"{prefix}:sub": SCOPE.subject(),
        }
    }


def test_an_apply_run_of_the_workspace_assumes_the_role(account: Account, tmp_path: Path) -> None:
    done = run(account, workspace("prod"), ASSUME, tmp_path / "apply")
    assert done.returncode == 0, done.stderr
    identity = json.loads(done.stdout)
    assert identity["Arn"].startswith(
        f"arn:aws:sts::{account.stack.account_id}:assumed-role/{ROLE}/terraform-prod-"
    )


@pytest.mark.parametrize(
    ("scope", "who"),
    [
        (workspace("prod", phase="plan"), "a plan run of the same workspace"),
        (workspace("staging"), "an apply run of a sibling workspace"),
    ],
)
def test_other_runs_are_refused_by_sts(
    account: Account, tmp_path: Path, scope: list[str], who: str
) -> None:
    done = run(account, scope, ASSUME, tmp_path / "run")
    assert done.returncode == 2, f"{who}: {done.stdout}"
    assert "AccessDenied" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_list_roles_from_the_aws_cli_is_linted_role_by_role(
    account: Account, tmp_path: Path
) -> None:
    stack = account.stack
    assert stack.ci is not None
    prefix = issuer_prefix(stack.ci.issuer_for(terraform.PROVIDER, SCOPE))
    broad = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {
                    "Federated": f"arn:aws:iam::{stack.account_id}:oidc-provider/{prefix}"
                },
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{prefix}:aud": "aws.workload.identity"},
                    "StringLike": {
                        f"{prefix}:sub": SCOPE.subject().replace(":run_phase:apply", ":run_phase:*")
                    },
                },
            }
        ],
    }
    stack.iam().create_role(RoleName=BROAD_ROLE, AssumeRolePolicyDocument=json.dumps(broad))
    env = program_env(HOME=str(tmp_path), **stack.environment(admin=True))
    listed = subprocess.run(  # noqa: S603 - fixed programs
        [str(AWS), "iam", "list-roles", "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=True,
    )
    linted = subprocess.run(  # noqa: S603 - fixed programs
        # The local issuer, like a Terraform Enterprise host, does not name its CI: --ci does.
        [str(KEYLESS), "trust", "lint", "-", "--ci", "terraform", "--format", "json"],
        input=listed.stdout,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    assert linted.returncode == 1, linted.stderr
    findings = json.loads(linted.stdout)
    serious = {f["role"] for f in findings if f["severity"] in ("high", "critical")}
    assert serious == {BROAD_ROLE}
    assert not [f for f in findings if f["role"] == ROLE]
    rules = {f["rule"] for f in findings if f["role"] == BROAD_ROLE}
    assert "terraform-plan-can-assume" in rules, rules
