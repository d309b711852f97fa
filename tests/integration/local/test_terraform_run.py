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
from collections.abc import Iterator, Mapping, Sequence
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
    account: Account,
    scope: Sequence[str],
    script: str,
    home: Path,
    settings: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``script`` as a run of ``scope`` (``keyless local run --ci terraform``) of a workspace
    whose variables are ``settings``."""
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
        env=program_env(HOME=str(home), ROLE_ARN=account.role_arn, **(settings or {})),
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


# The native AWS integration: the workspace sets TFC_AWS_PROVIDER_AUTH and a role, and the run's
# own AWS CLI (as the AWS provider would) assumes it with no keyless in the run.
NATIVE = (
    'test "$(stat -c %a "$AWS_CONFIG_FILE")" = 600\n'
    "python3 -c 'import json, os; e = os.environ;"
    ' v = json.loads(e["TF_VAR_tfc_aws_dynamic_credentials"]);'
    ' assert v["default"]["shared_config_file"] == e["AWS_CONFIG_FILE"]\'\n'
    "aws sts get-caller-identity --output json\n"
)
ALIAS = (
    "AWS_CONFIG_FILE=\"$(python3 -c 'import json, os; print(json.loads(os.environ["
    '"TF_VAR_tfc_aws_dynamic_credentials"])["aliases"]["DEPLOY"]["shared_config_file"])\')"'
    " aws sts get-caller-identity --output json\n"
)


def _assumed(done: subprocess.CompletedProcess[str], account: Account) -> str:
    assert done.returncode == 0, done.stderr
    arn: str = json.loads(done.stdout)["Arn"]
    assert arn.startswith(f"arn:aws:sts::{account.stack.account_id}:assumed-role/{ROLE}/"), arn
    return arn


def test_the_native_aws_integration_assumes_the_run_role_with_the_aws_cli_alone(
    account: Account, tmp_path: Path
) -> None:
    settings = {"TFC_AWS_PROVIDER_AUTH": "true", "TFC_AWS_RUN_ROLE_ARN": account.role_arn}
    done = run(account, workspace("prod"), NATIVE, tmp_path / "apply", settings)
    _assumed(done, account)
    assert "the job gets AWS_CONFIG_FILE, TF_VAR_tfc_aws_dynamic_credentials" in done.stderr


def test_a_plan_run_uses_the_plan_role_and_is_refused_the_apply_role(
    account: Account, tmp_path: Path
) -> None:
    settings = {
        "TFC_AWS_PROVIDER_AUTH": "true",
        "TFC_AWS_PLAN_ROLE_ARN": account.role_arn,
        "TFC_AWS_APPLY_ROLE_ARN": account.role_arn.replace(ROLE, "not-used"),
    }
    done = run(account, workspace("prod", phase="plan"), NATIVE, tmp_path / "plan", settings)
    assert done.returncode != 0
    assert "AccessDenied" in done.stderr, done.stderr
    assert "AssumeRoleWithWebIdentity" in done.stderr, done.stderr


def test_a_tagged_configuration_has_its_own_file_and_audience(
    account: Account, tmp_path: Path
) -> None:
    settings = {
        "TFC_AWS_PROVIDER_AUTH_DEPLOY": "true",
        "TFC_AWS_RUN_ROLE_ARN_DEPLOY": account.role_arn,
    }
    _assumed(run(account, workspace("prod"), ALIAS, tmp_path / "alias", settings), account)
    # An audience the provider does not list: STS refuses the token, not keyless.
    settings["TFC_AWS_WORKLOAD_IDENTITY_AUDIENCE_DEPLOY"] = "sts.amazonaws.com"
    done = run(account, workspace("prod"), ALIAS, tmp_path / "other", settings)
    assert done.returncode != 0
    assert "AssumeRoleWithWebIdentity" in done.stderr, done.stderr


def test_an_integration_without_a_role_is_refused_naming_the_variable_to_set(
    account: Account, tmp_path: Path
) -> None:
    done = run(
        account, workspace("prod"), "true", tmp_path / "none", {"TFC_AWS_PROVIDER_AUTH": "true"}
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: TFC_AWS_PROVIDER_AUTH is true but no role is set for apply runs:"
        " set TFC_AWS_RUN_ROLE_ARN (or TFC_AWS_APPLY_ROLE_ARN)"
    ], done.stderr


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
