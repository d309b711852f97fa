"""``keyless trust lint`` on CloudFormation templates (YAML with short-form intrinsics, JSON),
Terraform configurations (``jsonencode``, ``aws_iam_policy_document``) and ``terraform show
-json`` plans: findings on the line of the statement or condition, unresolved template values
reported as unknown, one-line errors naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyless.audit import terraform
from keyless.trust.lint import lint
from keyless.trust.lint_rules import RULES
from keyless.trust.lint_rules.templates import template_value_unresolved, unresolved_value
from keyless.trust.model import parse_policy
from tests.cli.helpers import run_cli

GH = "token.actions.githubusercontent.com"
PINNED_SUB = "repo:acme/web:environment:prod"

CFN_YAML = f"""\
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  GitHubOrg:
    Type: String
Resources:
  GithubOidc:
    Type: AWS::IAM::OIDCProvider
    Properties:
      Url: https://{GH}
      ClientIdList: [sts.amazonaws.com]
  Deploy:
    Type: AWS::IAM::Role
    Properties:
      RoleName: deploy
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal:
              Federated: !Ref GithubOidc
            Action: sts:AssumeRoleWithWebIdentity
            Condition:
              StringEquals:
                {GH}:aud: sts.amazonaws.com
              StringLike:
                {GH}:sub: !Sub "repo:${{GitHubOrg}}/*"
  Pinned:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal:
              Federated: !GetAtt GithubOidc.Arn
            Action: sts:AssumeRoleWithWebIdentity
            Condition:
              StringEquals:
                {GH}:aud: sts.amazonaws.com
                {GH}:sub: {PINNED_SUB}
"""

TERRAFORM = f"""\
resource "aws_iam_openid_connect_provider" "github" {{
  url            = "https://{GH}"
  client_id_list = ["sts.amazonaws.com"]
}}

resource "aws_iam_role" "deploy" {{
  name = "deploy"
  assume_role_policy = jsonencode({{
    Version = "2012-10-17"
    Statement = [{{
      Effect    = "Allow"
      Principal = {{ Federated = aws_iam_openid_connect_provider.github.arn }}
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {{
        StringEquals = {{ "{GH}:aud" = "sts.amazonaws.com" }}
        StringLike   = {{ "{GH}:sub" = "repo:acme/*" }}
      }}
    }}]
  }})
}}

data "aws_iam_policy_document" "trust" {{
  statement {{
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {{
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.github.arn]
    }}
    condition {{
      test     = "StringEquals"
      variable = "{GH}:aud"
      values   = ["sts.amazonaws.com"]
    }}
    condition {{
      test     = "StringEquals"
      variable = "{GH}:sub"
      values   = ["{PINNED_SUB}"]
    }}
  }}
}}

resource "aws_iam_role" "web" {{
  name               = "web"
  assume_role_policy = data.aws_iam_policy_document.trust.json
}}
"""


def _trust(sub: str, operator: str = "StringLike") -> dict[str, object]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{GH}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{GH}:aud": "sts.amazonaws.com"},
                    operator: {f"{GH}:sub": sub},
                },
            }
        ],
    }


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def _lint_json(path: str) -> list[dict[str, object]]:
    result = run_cli(["trust", "lint", "--format", "json", "--fail-on", "critical", path])
    assert result.code in {0, 1}, result.stderr  # 1 only for a critical finding
    findings: list[dict[str, object]] = json.loads(result.stdout)
    return findings


# --- CloudFormation ------------------------------------------------------------------------------


def test_a_yaml_template_is_linted_role_by_role_on_the_condition_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "stack.yaml", CFN_YAML)
    result = run_cli(["trust", "lint", path])
    assert result.code == 1, result.stderr
    sub_line = _line_of(CFN_YAML, f'{GH}:sub: !Sub "repo:')
    pinned_line = _line_of(CFN_YAML, f"{GH}:sub: {PINNED_SUB}")
    assert f"stack.yaml:{sub_line}: high [subject-org-wide] role deploy:" in result.stdout
    # The pinned role is only graded for naming the repository by name, on its own sub line.
    assert f"stack.yaml:{pinned_line}: low [github-name-only-subject] role Pinned:" in result.stdout
    assert "(2 role(s))" in result.stderr


def test_an_unresolved_parameter_is_reported_as_unknown_not_judged(tmp_path: Path) -> None:
    findings = _lint_json(_write(tmp_path, "stack.yaml", CFN_YAML))
    unknown = [f for f in findings if f["rule"] == "template-value-unresolved"]
    assert len(unknown) == 1
    assert unknown[0]["role"] == "deploy"
    assert unknown[0]["severity"] == "info"
    assert "Fn::Sub ${GitHubOrg}" in str(unknown[0]["message"])
    assert unknown[0]["line"] == _line_of(CFN_YAML, f'{GH}:sub: !Sub "repo:')
    assert unknown[0]["location"] == (
        "Resources.Deploy.Properties.AssumeRolePolicyDocument.Statement[0].Condition"
        f'.StringLike["{GH}:sub"]'
    )


def test_a_json_template_points_at_the_statement_of_each_role(tmp_path: Path) -> None:
    template = {
        "Resources": {
            "Wide": {
                "Type": "AWS::IAM::Role",
                "Properties": {"AssumeRolePolicyDocument": _trust("repo:acme/*")},
            },
            "Narrow": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": _trust(
                        "repo:acme/web:environment:prod", "StringEquals"
                    )
                },
            },
        }
    }
    text = json.dumps(template, indent=2)
    findings = _lint_json(_write(tmp_path, "stack.json", text))
    wide = [f for f in findings if f["rule"] == "subject-org-wide"]
    assert [f["role"] for f in wide] == ["Wide"]
    assert wide[0]["line"] == _line_of(text, f'"{GH}:sub": "repo:acme/*"')
    assert not [f for f in findings if f["role"] == "Narrow" and f["severity"] == "high"]


def test_one_role_of_a_template_is_checked_against_claims(tmp_path: Path) -> None:
    template = {
        "Resources": {
            "Only": {
                "Type": "AWS::IAM::Role",
                "Properties": {"AssumeRolePolicyDocument": _trust("repo:acme/web:*")},
            }
        }
    }
    policy = _write(tmp_path, "stack.json", json.dumps(template))
    claims = _write(
        tmp_path,
        "claims.json",
        json.dumps(
            {
                "iss": f"https://{GH}",
                "aud": "sts.amazonaws.com",
                "sub": "repo:acme/web:ref:refs/heads/main",
            }
        ),
    )
    result = run_cli(
        [
            "trust",
            "check",
            "--policy",
            policy,
            "--claims",
            claims,
            "--provider-arn",
            f"arn:aws:iam::123456789012:oidc-provider/{GH}",
        ]
    )
    assert result.code == 0, result.stderr


# --- Terraform -----------------------------------------------------------------------------------


def test_terraform_jsonencode_and_policy_documents_are_linted(tmp_path: Path) -> None:
    path = _write(tmp_path, "main.tf", TERRAFORM)
    findings = _lint_json(path)
    wide = [f for f in findings if f["rule"] == "subject-org-wide"]
    assert [(f["role"], f["line"]) for f in wide] == [
        ("deploy", _line_of(TERRAFORM, f'"{GH}:sub" = "repo:acme/*"'))
    ]
    # The policy document pins one environment: no high finding for role web, and its
    # findings point at the role's resource block (the document is defined elsewhere).
    web = [f for f in findings if f["role"] == "web"]
    assert web
    assert all(f["severity"] in {"low", "info"} for f in web), web
    assert {f["line"] for f in web} <= {_line_of(TERRAFORM, 'resource "aws_iam_role" "web"')}


def test_a_terraform_plan_is_linted(tmp_path: Path) -> None:
    plan = {
        "format_version": "1.2",
        "planned_values": {
            "root_module": {
                "resources": [
                    {
                        "address": "aws_iam_role.deploy",
                        "type": "aws_iam_role",
                        "values": {
                            "name": "deploy",
                            "assume_role_policy": json.dumps(_trust("repo:acme/*")),
                        },
                    }
                ],
                "child_modules": [
                    {
                        "resources": [
                            {
                                "address": "module.ci.aws_iam_role.pinned",
                                "type": "aws_iam_role",
                                "values": {
                                    "name": "pinned",
                                    "assume_role_policy": json.dumps(
                                        _trust(PINNED_SUB, "StringEquals")
                                    ),
                                },
                            }
                        ]
                    }
                ],
            }
        },
    }
    findings = _lint_json(_write(tmp_path, "plan.json", json.dumps(plan)))
    assert {f["role"] for f in findings if f["severity"] == "high"} == {"deploy"}
    assert "pinned" in {f["role"] for f in findings}


def test_sarif_of_a_template_has_the_condition_line_and_the_rule(tmp_path: Path) -> None:
    path = _write(tmp_path, "stack.yaml", CFN_YAML)
    result = run_cli(["trust", "lint", "--format", "sarif", "--fail-on", "critical", path])
    assert result.code == 0, result.stderr
    run = json.loads(result.stdout)["runs"][0]
    rules = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    sub_line = _line_of(CFN_YAML, f'{GH}:sub: !Sub "repo:')
    regions = {
        (r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"])
        for r in run["results"]
    }
    assert ("template-value-unresolved", sub_line) in regions
    assert ("subject-org-wide", sub_line) in regions
    for result_ in run["results"]:
        assert rules[result_["ruleIndex"]] == result_["ruleId"]


# --- errors --------------------------------------------------------------------------------------


def test_invalid_terraform_is_one_line_naming_the_policy_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.tf", 'resource "aws_iam_role" "x" {\n  name = \n')
    result = run_cli(["trust", "lint", path])
    assert result.code == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"policy file {path} is not valid Terraform HCL" in result.stderr
    assert "audit input" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_yaml_file_that_is_no_template_keeps_the_policy_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "notes.yaml", "just: some\nyaml: here\n")
    result = run_cli(["trust", "lint", path])
    assert result.code == 2
    assert result.stderr.startswith(f"error: policy file {path}:"), result.stderr
    assert "Traceback" not in result.stderr


def test_terraform_at_its_size_limit_is_read_and_one_past_it_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(terraform, "AUDIT_HCL_MAX_CHARS", len(TERRAFORM))
    assert _lint_json(_write(tmp_path, "main.tf", TERRAFORM))
    longer = _write(tmp_path, "longer.tf", TERRAFORM + "\n")
    result = run_cli(["trust", "lint", longer])
    assert result.code == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"policy file {longer}" in result.stderr


# --- the rule ------------------------------------------------------------------------------------


def test_the_rule_is_declared_and_reads_placeholders_with_braces_inside() -> None:
    assert template_value_unresolved in RULES
    value = "repo:" + unresolved_value("Fn::Sub ${Org}") + "/" + unresolved_value("Ref Repo")
    policy = parse_policy(_trust(value))
    messages = [f.message for f in lint(policy) if f.rule == template_value_unresolved.id]
    assert len(messages) == 2
    assert "Fn::Sub ${Org}" in messages[0]
    assert "Ref Repo" in messages[1]


def test_an_unterminated_placeholder_ends_the_scan_in_one_pass() -> None:
    # Many openings and no closing brace: read once, nothing reported as an expression.
    value = ("{unresolved:" + "{" * 50) * 150
    policy = parse_policy(_trust(value[:10_000]))
    assert [f for f in lint(policy) if f.rule == template_value_unresolved.id] == []
