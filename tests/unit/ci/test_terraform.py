"""HCP Terraform / Terraform Enterprise (docs/ci-tokens.md#terraform): a run's token in
TFC_WORKLOAD_IDENTITY_TOKEN and its tagged variants, the workspace scope and its trust, the claims
and run variables the local stack emulates, and the doctor's hints."""

from __future__ import annotations

import configparser
import json
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from keyless.ci.base import JobClaims, JobRun, RawToken, TokenEndpoint
from keyless.ci.terraform import (
    AUDIENCE_VARIABLE,
    DEFAULT_AUDIENCE,
    TOKEN_VARIABLE,
    TerraformScope,
    aws_provider_auth,
    aws_provider_auth_files,
)
from keyless.ci.terraform import PROVIDER as terraform
from keyless.errors import CredentialError, TokenError, UsageError
from keyless.testing import NO_HTTP
from tests.jwt_factory import make_token

ISSUER = "https://app.terraform.io"
SCOPE = TerraformScope(organization="acme", project="Default Project", workspace="prod")
RUN = JobRun(seed="fixed-seed")


def _token(audience: str = DEFAULT_AUDIENCE) -> str:
    sub = "organization:acme:project:Default Project:workspace:prod:run_phase:apply"
    return make_token({"sub": sub}, issuer=ISSUER, audience=audience)


@dataclass
class Recorder:
    signed: list[JobClaims] = field(default_factory=list)

    def sign(self, claims: JobClaims) -> RawToken:
        self.signed.append(claims)
        return RawToken(f"signed-{len(self.signed)}")

    def endpoint(self, claims: JobClaims) -> TokenEndpoint:
        raise AssertionError("HCP Terraform hands the token over in a variable")


# --- detection and delivery ----------------------------------------------------------------------


def test_not_in_a_run_is_none() -> None:
    assert not terraform.in_ci({"TFC_RUN_ID": "run-1"})
    assert terraform.obtain({"TFC_RUN_ID": "run-1"}, audience=None, http=NO_HTTP) is None


def test_the_default_token_is_used() -> None:
    token = _token()
    obtained = terraform.obtain({TOKEN_VARIABLE: token}, audience=None, http=NO_HTTP)
    assert obtained is not None
    assert (obtained.token, obtained.source) == (token, TOKEN_VARIABLE)


def test_the_audience_picks_the_tagged_token_that_carries_it() -> None:
    default, tagged = _token(), _token("sts.amazonaws.com")
    env = {TOKEN_VARIABLE: default, f"{TOKEN_VARIABLE}_STS": tagged}
    obtained = terraform.obtain(env, audience="sts.amazonaws.com", http=NO_HTTP)
    assert obtained is not None
    assert (obtained.token, obtained.source) == (tagged, f"{TOKEN_VARIABLE}_STS")
    with pytest.raises(CredentialError) as caught:
        terraform.obtain(env, audience="other", http=NO_HTTP)
    assert "no token of this run has the audience 'other'" in caught.value.message
    assert caught.value.remedy is not None
    assert f"{AUDIENCE_VARIABLE}_<TAG>=other" in caught.value.remedy


def test_a_workspace_that_asks_for_a_token_but_gets_none_is_an_error_with_the_fix() -> None:
    with pytest.raises(CredentialError) as caught:
        terraform.obtain({AUDIENCE_VARIABLE: DEFAULT_AUDIENCE}, audience=None, http=NO_HTTP)
    assert caught.value.message == f"HCP Terraform: {TOKEN_VARIABLE} is not set in this run"
    assert caught.value.remedy is not None
    assert "TFC_AWS_PROVIDER_AUTH=true" in caught.value.remedy


def test_a_value_that_is_not_a_token_is_refused_without_echoing_it() -> None:
    with pytest.raises(TokenError) as caught:
        terraform.obtain({TOKEN_VARIABLE: "not-a-jwt-secret"}, audience=None, http=NO_HTTP)
    assert caught.value.message.startswith(f"HCP Terraform: {TOKEN_VARIABLE} does not hold a JWT")
    assert "not-a-jwt-secret" not in caught.value.message


def test_owns_its_hosts_only() -> None:
    assert terraform.owns_issuer("https://app.terraform.io")
    assert terraform.owns_issuer("https://app.eu.terraform.io/")
    assert not terraform.owns_issuer("https://tfe.corp.example")  # Terraform Enterprise: --issuer
    assert not terraform.owns_issuer("https://app.terraform.io.evil.example")


# --- the scope and its trust ---------------------------------------------------------------------


def test_the_trust_pins_the_workspace_and_apply_runs_by_default() -> None:
    spec = SCOPE.trust_spec()
    assert spec.issuer == ISSUER
    conditions = {(c.operator, c.claim): c.values for c in spec.conditions}
    assert conditions == {
        ("StringEquals", "aud"): (DEFAULT_AUDIENCE,),
        ("StringEquals", "sub"): (
            "organization:acme:project:Default Project:workspace:prod:run_phase:apply",
        ),
    }
    plan = TerraformScope(organization="acme", project="p", workspace="w", run_phase="plan")
    assert "read-only" in plan.trust_spec().notes[0]
    enterprise = TerraformScope(
        organization="acme", project="p", workspace="w", url="https://tfe.corp.example/"
    )
    assert enterprise.issuer == "https://tfe.corp.example"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"organization": "ac:me"}, "organization 'ac:me' is not a organization name"),
        ({"workspace": "pr*d"}, "workspace 'pr*d' is not a workspace name"),
        ({"project": "a:b"}, "project 'a:b' is not a project name"),
        ({"run_phase": "destroy"}, "run phase 'destroy': choose plan or apply"),
        ({"url": "http://tfe.corp.example"}, "is not an https host URL"),
        ({"url": "https://tfe.corp.example/app"}, "is not an https host URL"),
    ],
)
def test_bad_scope_values_are_usage_errors(values: dict[str, str], message: str) -> None:
    fields = {"organization": "acme", "project": "p", "workspace": "w", **values}
    with pytest.raises(UsageError, match=message.replace("*", r"\*")):
        TerraformScope(**fields)


# --- what the local stack mints ------------------------------------------------------------------


def test_a_runs_claims_have_hcp_terraforms_shape() -> None:
    job = terraform.job_claims(SCOPE, RUN)
    claims = job.claims
    assert claims["sub"] == SCOPE.subject()
    assert claims["aud"] == DEFAULT_AUDIENCE
    assert claims["terraform_full_workspace"] == (
        "organization:acme:project:Default Project:workspace:prod"
    )
    assert claims["terraform_run_phase"] == "apply"
    for name in ("organization", "project", "workspace"):
        assert isinstance(claims[f"terraform_{name}_id"], str)
    assert str(claims["terraform_workspace_id"]).startswith("ws-")
    assert set(claims) <= terraform.safe_claims | {"sub", "aud"}
    json.dumps(claims)  # plain JSON values only


def test_a_run_gets_a_token_per_audience_in_the_documented_variables() -> None:
    recorder = Recorder()
    env = terraform.job_environment(
        SCOPE, RUN, tokens=recorder, audiences=("aws.workload.identity", "vault")
    )
    assert env[AUDIENCE_VARIABLE] == "aws.workload.identity"
    assert env[f"{AUDIENCE_VARIABLE}_AUD2"] == "vault"
    assert env[TOKEN_VARIABLE] == "signed-1"
    assert env[f"{TOKEN_VARIABLE}_AUD2"] == "signed-2"
    assert [claims.claims["aud"] for claims in recorder.signed] == [
        "aws.workload.identity",
        "vault",
    ]
    assert env["TFC_WORKSPACE_NAME"] == "prod"
    assert env["TFC_RUN_ID"].startswith("run-")
    assert terraform.in_ci(env)
    assert terraform.session_name(env) is not None


# --- keyless doctor ------------------------------------------------------------------------------


def test_doctor_hints() -> None:
    assert terraform.guess_from_subject(SCOPE.subject())
    assert not terraform.guess_from_subject("repo:acme/app:ref:refs/heads/main")
    assert "new run" in (terraform.renew_hint() or "")
    assert AUDIENCE_VARIABLE in (terraform.audience_hint() or "")


# --- the native AWS integration ------------------------------------------------------------------

ROLE = "arn:aws:iam::123456789012:role/tf-apply"
PLAN_ROLE = "arn:aws:iam::123456789012:role/tf-plan"


def _auth(settings: dict[str, str], phase: str = "apply") -> list[tuple[str, str, str]]:
    return [(c.label, c.role_arn, c.audience) for c in aws_provider_auth(settings, run_phase=phase)]


def test_no_integration_without_the_switch() -> None:
    assert _auth({"TFC_AWS_RUN_ROLE_ARN": ROLE}) == []
    assert _auth({"TFC_AWS_PROVIDER_AUTH": "false", "TFC_AWS_RUN_ROLE_ARN": ROLE}) == []


def test_the_run_phase_picks_its_own_role_before_the_run_role() -> None:
    settings = {
        "TFC_AWS_PROVIDER_AUTH": "true",
        "TFC_AWS_RUN_ROLE_ARN": ROLE,
        "TFC_AWS_PLAN_ROLE_ARN": PLAN_ROLE,
    }
    assert _auth(settings, "plan") == [("default", PLAN_ROLE, DEFAULT_AUDIENCE)]
    assert _auth(settings, "apply") == [("default", ROLE, DEFAULT_AUDIENCE)]


def test_tagged_configurations_fall_back_to_the_default_variables() -> None:
    settings = {
        "TFC_AWS_PROVIDER_AUTH": "TRUE",
        "TFC_AWS_RUN_ROLE_ARN": ROLE,
        "TFC_AWS_PROVIDER_AUTH_ECR": "true",
        "TFC_DEFAULT_AWS_RUN_ROLE_ARN": PLAN_ROLE,
        "TFC_AWS_WORKLOAD_IDENTITY_AUDIENCE_ECR": "ecr.example",
        "TFC_DEFAULT_AWS_WORKLOAD_IDENTITY_AUDIENCE": "shared.example",
    }
    assert _auth(settings) == [
        ("default", ROLE, "shared.example"),
        ("ECR", PLAN_ROLE, "ecr.example"),
    ]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"TFC_AWS_PROVIDER_AUTH": "true"},
            "no role is set for apply runs: set TFC_AWS_RUN_ROLE_ARN",
        ),
        (
            {"TFC_AWS_PROVIDER_AUTH_X": "true", "TFC_AWS_RUN_ROLE_ARN": ROLE},
            "set TFC_AWS_RUN_ROLE_ARN_X (or TFC_AWS_APPLY_ROLE_ARN_X)",
        ),
        ({"TFC_AWS_PROVIDER_AUTH": "yes"}, "turns the integration on with true"),
        ({"TFC_AWS_PROVIDER_AUTH_TYPE": "true"}, "the tag 'TYPE' is not usable"),
        ({"TFC_AWS_PROVIDER_AUTH_": "true"}, "the tag '' is not usable"),
        (
            {"TFC_AWS_PROVIDER_AUTH": "true", "TFC_AWS_RUN_ROLE_ARN": "tf-apply"},
            "TFC_AWS_RUN_ROLE_ARN 'tf-apply' is not an IAM role ARN",
        ),
    ],
)
def test_settings_hcp_terraform_would_fail_the_run_on_are_usage_errors(
    settings: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        aws_provider_auth(settings, run_phase="apply")


def test_each_configuration_gets_a_private_token_and_shared_config_file(tmp_path: Path) -> None:
    configs = aws_provider_auth(
        {
            "TFC_AWS_PROVIDER_AUTH": "true",
            "TFC_AWS_PROVIDER_AUTH_ECR": "true",
            "TFC_AWS_RUN_ROLE_ARN": ROLE,
            "TFC_AWS_RUN_ROLE_ARN_ECR": PLAN_ROLE,
            "TFC_AWS_WORKLOAD_IDENTITY_AUDIENCE_ECR": "ecr.example",
        },
        run_phase="apply",
    )
    recorder = Recorder()
    env = aws_provider_auth_files(
        configs, SCOPE, RUN, tokens=recorder, folder=tmp_path, region="eu-west-1"
    )
    assert [c.claims["aud"] for c in recorder.signed] == [DEFAULT_AUDIENCE, "ecr.example"]
    assert {c.claims["sub"] for c in recorder.signed} == {SCOPE.subject()}
    handed = json.loads(env["TF_VAR_tfc_aws_dynamic_credentials"])
    default = Path(handed["default"]["shared_config_file"])
    alias = Path(handed["aliases"]["ECR"]["shared_config_file"])
    assert env["AWS_CONFIG_FILE"] == str(default)
    parser = configparser.ConfigParser()
    parser.read_string(alias.read_text())
    profile = parser["default"]
    assert profile["role_arn"] == PLAN_ROLE
    assert profile["region"] == "eu-west-1"
    token_file = Path(profile["web_identity_token_file"])
    assert token_file.read_text() == "signed-2"
    for path in (default, alias, token_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_without_a_default_configuration_aws_config_file_is_left_alone(tmp_path: Path) -> None:
    configs = aws_provider_auth(
        {"TFC_AWS_PROVIDER_AUTH_ECR": "true", "TFC_AWS_RUN_ROLE_ARN_ECR": ROLE}, run_phase="plan"
    )
    env = terraform.job_files(
        SCOPE, RUN, tokens=Recorder(), settings={}, folder=tmp_path, region="us-east-1"
    )
    assert env == {}  # no setting, no file
    env = aws_provider_auth_files(
        configs, SCOPE, RUN, tokens=Recorder(), folder=tmp_path, region="us-east-1"
    )
    assert "AWS_CONFIG_FILE" not in env
    handed = json.loads(env["TF_VAR_tfc_aws_dynamic_credentials"])
    assert handed["default"] == {"shared_config_file": ""}
    assert list(handed["aliases"]) == ["ECR"]
