"""--emit terraform|cloudformation: each template passes its format's own checker (python-hcl2
parses the HCL, cfn-lint finds no error or warning) and holds exactly the trust and permission
documents that the apply path writes for the same arguments."""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2.utils import SerializationOptions

from keyless.aws.thumbprint import Thumbprint
from keyless.cli import cmd_provision
from keyless.cli.main import build_parser
from keyless.cli.scope_args import trust_spec_from_args
from keyless.cli.seams import Seams
from keyless.trust.model import to_document
from keyless.trust.web_identity import provider_arn_for
from tests.cli.helpers import run_cli

ACCOUNT = "210987654321"
THUMBPRINT = "9" * 40
WORKSPACE_UUID = "0d9b4a1e-7f3c-4c2a-9b1e-5a6f7c8d9e01"
REPO_UUID = "6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
ENV_UUID = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"

# cfn-lint ships no type information: used through importlib, its results are Any.
cfnlint_api: Any = importlib.import_module("cfnlint.api")
cfnlint_decode: Any = importlib.import_module("cfnlint.decode")

BITBUCKET = ["--ci", "bitbucket", "--workspace", "acme"]
BITBUCKET += ["--workspace-uuid", WORKSPACE_UUID, "--repository-uuid", REPO_UUID]

SCENARIOS: dict[str, list[str]] = {
    "bitbucket-repository": [*BITBUCKET, "--s3-deploy", "site-bucket/www"],
    "bitbucket-environment-delete-cdn-tags": [
        *BITBUCKET,
        "--environment-uuid",
        ENV_UUID,
        "--s3-deploy",
        "site-bucket",
        "--allow-delete",
        "--cloudfront-distribution",
        "E2QWRUHEXAMPLE",
        "--tag",
        "team=web",
        "--tag",
        "cost-center=42",
        "--max-session-duration",
        "7200",
        "--permissions-boundary",
        "arn:aws:iam::210987654321:policy/ci-boundary",
    ],
    "github-environment-immutable": [
        *("--ci", "github", "--repository", "acme/site", "--environment", "prod"),
        *("--owner-id", "1234", "--repository-id", "5678", "--s3-deploy", "b-site/app"),
    ],
    "gitlab-branch-on-another-issuer": [
        *("--ci", "gitlab", "--project", "grp/sub/site", "--ref", "main"),
        *("--issuer", "https://127.0.0.1:8443/gitlab", "--s3-deploy", "site-bucket/www"),
    ],
}

#: A permission policy of the user's, with everything a template must keep literal: an IAM
#: policy variable, IAM's `${*}` escape, a percent-brace, quotes and a backslash.
USER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": [
                "arn:aws:s3:::home/${aws:username}/*",
                'arn:aws:s3:::lit/${*}/%{x}/"q"/back\\slash',
            ],
        }
    ],
}


def argv_for(name: str, tmp_path: Path) -> list[str]:
    if name != "user-policy":
        base = SCENARIOS[name]
    else:
        path = tmp_path / "policy.json"
        path.write_text(json.dumps(USER_POLICY), encoding="utf-8")
        base = [*SCENARIOS["bitbucket-repository"][:-2], "--policy", str(path)]
    return ["provision", *base, "--role-name", "ci-deploy", "--thumbprint", THUMBPRINT]


def applied_documents(argv: list[str]) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Trust and permissions the apply path would write into ACCOUNT, and the provider ARN."""
    args = build_parser().parse_args(argv)
    spec = trust_spec_from_args(args)
    desired = cmd_provision.desired_state(
        args, spec=spec, account=ACCOUNT, partition="aws", prints=()
    )
    return to_document(desired.trust), to_document(desired.permissions), desired.provider_arn


def emitted(argv: list[str], output: str) -> str:
    result = run_cli([*argv, "--emit", output])
    assert result.code == 0, result.stderr
    assert "Who can assume it:" in result.stderr
    return result.stdout


# --- Terraform ----------------------------------------------------------------------------------

_HCL_OPTIONS = SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)


def _hcl_text(value: str, provider_arn: str) -> str:
    """An HCL string as Terraform evaluates it, with the references of this account."""
    for reference, result in (
        ("${data.aws_partition.current.partition}", "aws"),
        ("${data.aws_caller_identity.current.account_id}", ACCOUNT),
        ("${local.oidc_provider_arn}", provider_arn),
    ):
        value = re.sub(r"(?<!\$)" + re.escape(reference), result, value)
    assert not re.search(r"(?<!\$)\$\{", value), f"an unexpected interpolation in {value!r}"
    # python-hcl2 has already undone the backslash escapes; the template escapes stay.
    return value.replace("$${", "${").replace("%%{", "%{")


def _hcl_evaluate(value: Any, provider_arn: str) -> Any:
    if isinstance(value, str):
        return _hcl_text(value, provider_arn)
    if isinstance(value, dict):
        return {
            _hcl_text(key, provider_arn): _hcl_evaluate(item, provider_arn)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_hcl_evaluate(item, provider_arn) for item in value]
    return value


def _merged(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in blocks:
        merged.update(block)
    return merged


@pytest.mark.parametrize("name", [*SCENARIOS, "user-policy"])
def test_terraform_parses_and_holds_the_applied_documents(name: str, tmp_path: Path) -> None:
    argv = argv_for(name, tmp_path)
    text = emitted(argv, "terraform")
    parsed = hcl2.loads(text, serialization_options=_HCL_OPTIONS)
    trust, permissions, provider_arn = applied_documents(argv)

    local = _merged(parsed["locals"])
    assert _hcl_evaluate(local["trust_policy"], provider_arn) == trust
    assert _hcl_evaluate(local["permissions_policy"], provider_arn) == permissions
    assert local["oidc_provider_arn"] == (
        "${(var.create_oidc_provider ? aws_iam_openid_connect_provider.this[0].arn"
        " : data.aws_iam_openid_connect_provider.existing[0].arn)}"
    )

    resources = _merged(parsed["resource"])
    role = resources["aws_iam_role"]["this"]
    assert role["assume_role_policy"] == "${jsonencode(local.trust_policy)}"
    assert resources["aws_iam_role_policy"]["permissions"]["policy"] == (
        "${jsonencode(local.permissions_policy)}"
    )
    issuer = "https://" + provider_arn.split(":oidc-provider/", 1)[1]
    provider = resources["aws_iam_openid_connect_provider"]["this"]
    assert provider["url"] == issuer
    data = _merged(parsed["data"])
    assert data["aws_iam_openid_connect_provider"]["existing"]["url"] == issuer

    variables = _merged(parsed["variable"])
    args = build_parser().parse_args(argv)
    assert variables["oidc_thumbprints"]["default"] == [THUMBPRINT]
    assert variables["role_name"]["default"] == "ci-deploy"
    assert variables["create_oidc_provider"]["default"] is True
    expected_session = int(args.max_session_duration or 3600)
    assert variables["max_session_duration"]["default"] == expected_session
    assert variables["tags"]["default"] == dict(t.split("=", 1) for t in args.tag)
    assert variables["permissions_boundary"]["default"] in (args.permissions_boundary, "null")
    outputs = _merged(parsed["output"])
    assert outputs["role_arn"]["value"] == "${aws_iam_role.this.arn}"


# --- CloudFormation -----------------------------------------------------------------------------


def _cfn_evaluate(value: Any, provider_arn: str, create_provider: bool) -> Any:
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"}:
            text = str(value["Fn::Sub"])
            text = text.replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", ACCOUNT)
            assert "${AWS::" not in text
            return text.replace("${!", "${")
        if set(value) == {"Fn::If"}:
            condition, when_true, when_false = value["Fn::If"]
            assert condition == "CreateProvider"
            chosen = when_true if create_provider else when_false
            return _cfn_evaluate(chosen, provider_arn, create_provider)
        if set(value) == {"Ref"} and value["Ref"] == "OidcProvider":
            return provider_arn  # Ref of AWS::IAM::OIDCProvider is its ARN
        return {
            str(key): _cfn_evaluate(item, provider_arn, create_provider)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_cfn_evaluate(item, provider_arn, create_provider) for item in value]
    return value


@pytest.mark.parametrize("name", [*SCENARIOS, "user-policy"])
def test_cloudformation_lints_clean_and_holds_the_applied_documents(
    name: str, tmp_path: Path
) -> None:
    argv = argv_for(name, tmp_path)
    text = emitted(argv, "cloudformation")
    matches = cfnlint_api.lint_all(text)
    # Errors and warnings both: only cfn-lint's informational suggestions are acceptable.
    problems_found = [str(match) for match in matches if match.rule.id[:1] in ("E", "W")]
    assert problems_found == []

    template, problems = cfnlint_decode.decode_str(text)
    assert not problems
    trust, permissions, provider_arn = applied_documents(argv)
    role = template["Resources"]["Role"]["Properties"]
    for create_provider in (True, False):
        found = _cfn_evaluate(role["AssumeRolePolicyDocument"], provider_arn, create_provider)
        assert found == trust
    (policy,) = role["Policies"]
    assert policy["PolicyName"] == "keyless-permissions"
    assert _cfn_evaluate(policy["PolicyDocument"], provider_arn, True) == permissions

    provider = template["Resources"]["OidcProvider"]
    assert provider["Type"] == "AWS::IAM::OIDCProvider"
    assert provider["Condition"] == "CreateProvider"
    assert provider["Properties"]["Url"] == "https://" + provider_arn.split(":oidc-provider/")[1]
    args = build_parser().parse_args(argv)
    parameters = template["Parameters"]
    assert parameters["OidcThumbprints"]["Default"] == THUMBPRINT
    assert parameters["MaxSessionDuration"]["Default"] == int(args.max_session_duration or 3600)
    assert parameters["PermissionsBoundary"]["Default"] == (args.permissions_boundary or "")
    tags = {tag["Key"]: tag["Value"] for tag in role.get("Tags", [])}
    assert tags == dict(t.split("=", 1) for t in args.tag)
    assert template["Outputs"]["RoleArn"]["Value"] == {"Fn::GetAtt": ["Role", "Arn"]}


def test_the_emitted_principal_is_the_provider_arn_of_the_apply_path() -> None:
    argv = argv_for("bitbucket-repository", Path())
    _, _, provider_arn = applied_documents(argv)
    issuer = "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
    assert provider_arn == provider_arn_for(issuer, ACCOUNT)


@pytest.mark.parametrize("flag", ["--dry-run", "--force", "--allow-risky", "--json"])
def test_emit_refuses_flags_that_apply_to_an_account(flag: str) -> None:
    argv = argv_for("bitbucket-repository", Path())
    result = run_cli([*argv, "--emit", "terraform", flag])
    assert result.code == 2
    assert f"drop {flag}" in result.stderr
    assert result.stdout == ""


# --- offline: no thumbprint unless given -------------------------------------------------------


def _offline_argv() -> list[str]:
    return ["provision", *SCENARIOS["bitbucket-repository"], "--role-name", "ci-deploy"]


@dataclass
class NoNetwork:
    """Seams whose every attempt to read the issuer's certificate is recorded and fails."""

    attempts: list[str] = field(default_factory=list)

    def refuse(self, issuer: str, **_: object) -> Thumbprint:
        self.attempts.append(issuer)
        raise AssertionError("--emit read the issuer's certificate")

    @property
    def seams(self) -> Seams:
        return Seams(thumbprint=self.refuse)


@pytest.fixture
def no_network() -> NoNetwork:
    return NoNetwork()


@pytest.mark.parametrize("output", ["terraform", "cloudformation"])
def test_emit_without_thumbprint_works_offline_and_says_so(
    output: str, no_network: NoNetwork
) -> None:
    result = run_cli([*_offline_argv(), "--emit", output], seams=no_network.seams)
    assert result.code == 0, result.stderr
    assert no_network.attempts == []
    assert "the template has no thumbprint" in result.stderr
    assert "--thumbprint HEX" in result.stderr
    assert "9999" not in result.stdout


def test_terraform_without_thumbprint_leaves_it_to_iam_and_pins_the_provider(
    no_network: NoNetwork,
) -> None:
    result = run_cli([*_offline_argv(), "--emit", "terraform"], seams=no_network.seams)
    parsed = hcl2.loads(result.stdout, serialization_options=_HCL_OPTIONS)
    variables = _merged(parsed["variable"])
    assert variables["oidc_thumbprints"]["default"] is None
    (required,) = _merged(parsed["terraform"])["required_providers"]
    # thumbprint_list became optional in the AWS provider 5.81.0; older ones would refuse null.
    assert required["aws"]["version"] == ">= 5.81.0"


def test_cloudformation_without_thumbprint_has_no_thumbprint_list_and_lints_clean(
    no_network: NoNetwork,
) -> None:
    result = run_cli([*_offline_argv(), "--emit", "cloudformation"], seams=no_network.seams)
    matches = cfnlint_api.lint_all(result.stdout)
    assert [str(m) for m in matches if m.rule.id[:1] in ("E", "W")] == []
    template, problems = cfnlint_decode.decode_str(result.stdout)
    assert not problems
    assert "ThumbprintList" not in template["Resources"]["OidcProvider"]["Properties"]
    assert "OidcThumbprints" not in template["Parameters"]


def test_emit_refuses_a_ca_bundle_since_it_reads_no_certificate(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    result = run_cli([*_offline_argv(), "--emit", "terraform", "--ca-bundle", str(bundle)])
    assert result.code == 2
    assert "drop --ca-bundle" in result.stderr
    assert result.stdout == ""
