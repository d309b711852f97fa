"""keyless audit on generated offline inputs: every role's words, severities, blast radius,
providers that are missing or unused, IaC formats, renderers and the JSON schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from keyless.audit.live import with_backoff
from keyless.audit.offline import load_text
from keyless.audit.render_html import embedded_json, render_html
from keyless.audit.render_sarif import render_sarif
from keyless.audit.render_text import render_text
from keyless.audit.report import (
    AUDIT_RULES,
    AuditReport,
    baseline_keys,
    build_report,
    new_since,
)
from keyless.errors import AwsError, UsageError
from keyless.trust.lint_rules import RULES
from keyless.trust.sarif import Declared
from tests.unit.audit.dumps import ACCOUNT, GH, KINDS, UNUSED, authorization_details, trust

SCHEMA = json.loads((Path(__file__).parents[3] / "docs" / "audit-schema.json").read_text())


def _report(document: Any, label: str = "dump.json") -> AuditReport:
    return build_report(load_text(label, json.dumps(document)))


def test_every_generated_role_is_reported_with_its_identity_severity_and_blast() -> None:
    dump = authorization_details(per_kind=40, service_roles=60)
    report = _report(dump.document)
    assert report.roles_scanned == 40 * len(KINDS) + 60
    assert len(report.roles) == 40 * len(KINDS)  # service roles are not OIDC roles
    by_name = {role.role_name: role for role in report.roles}
    for name, (kind, words, severity) in dump.expected.items():
        role = by_name[name]
        assert [i.words for i in role.who_can_assume] == [words], name
        assert (role.severity.value if role.severity else None) == severity, name
        assert role.blast_radius.level.value == ("admin-like" if kind == "gh-open" else "writes")
        assert "writes S3 bucket site-bucket" in role.blast_radius.summary
    ranks = [role.rank for role in report.roles]
    assert ranks == sorted(ranks, reverse=True)  # worst first
    missing = set(report.roles_with_missing_provider)
    assert missing == {f"arn:aws:iam::{ACCOUNT}:role/gone-{n:03d}" for n in range(40)}
    assert all(
        any(f.rule == "provider-missing" for f in by_name[f"gone-{n:03d}"].findings)
        for n in range(40)
    )
    assert [p.url for p in report.orphan_providers] == [UNUSED]
    jsonschema.validate(report.to_json(), SCHEMA)


def test_without_a_provider_list_existence_is_unknown_not_missing() -> None:
    document = authorization_details(per_kind=1, service_roles=0).document
    del document["OpenIDConnectProviderList"]
    report = _report(document)
    assert report.roles_with_missing_provider == ()
    assert report.orphan_providers == ()
    assert {p.exists for role in report.roles for p in role.providers} == {None}


def test_list_roles_pages_and_get_role_output_are_read() -> None:
    dump = authorization_details(per_kind=2, service_roles=1).document["RoleDetailList"]
    pages = [{"Roles": dump[:5], "IsTruncated": True}, {"Roles": dump[5:]}]
    report = _report(pages, "pages.json")
    assert len(report.roles) == 2 * len(KINDS)
    assert all(role.blast_radius.level.value == "unknown" for role in report.roles)
    single = _report({"Role": dump[0]}, "role.json")
    assert [r.role_name for r in single.roles] == [dump[0]["RoleName"]]


def test_url_encoded_trust_as_the_raw_api_returns_it() -> None:
    from urllib.parse import quote

    role = authorization_details(per_kind=1, service_roles=0).document["RoleDetailList"][3]
    role["AssumeRolePolicyDocument"] = quote(json.dumps(role["AssumeRolePolicyDocument"]))
    report = _report({"RoleDetailList": [role]})
    assert report.roles[0].who_can_assume[0].words == "any job anywhere on GitHub Actions"


CFN_YAML = f"""\
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Org: {{Type: String}}
Resources:
  GitHubProvider:
    Type: AWS::IAM::OIDCProvider
    Properties:
      Url: https://{GH}
      ClientIdList: [sts.amazonaws.com]
  DeployRole:
    Type: AWS::IAM::Role
    Properties:
      RoleName: deploy
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal:
              Federated: !Ref GitHubProvider
            Action: sts:AssumeRoleWithWebIdentity
            Condition:
              StringLike:
                {GH}:sub: repo:acme/*
  ParamRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Statement:
          - Effect: Allow
            Principal:
              Federated: !Sub arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:oidc-provider/{GH}
            Action: sts:AssumeRoleWithWebIdentity
            Condition:
              StringEquals:
                {GH}:sub: !Sub repo:${{Org}}/site:ref:refs/heads/main
"""


def test_cloudformation_yaml_with_short_intrinsics() -> None:
    report = build_report(load_text("stack.yaml", CFN_YAML))
    roles = {role.role_name: role for role in report.roles}
    deploy = roles["deploy"]
    assert deploy.who_can_assume[0].words == "any workflow run of any repository in org acme"
    assert deploy.source is not None
    assert (deploy.source.file, deploy.source.line) == (
        "stack.yaml",
        10,
    )
    param = roles["ParamRole"]
    assert any(f.rule == "trust-unresolved" and "Org" in f.message for f in param.findings)
    assert "known only once deployed" in param.who_can_assume[0].words


def test_cloudformation_json_is_detected() -> None:
    template = {
        "Resources": {
            "R": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": authorization_details(1, 0).document[
                        "RoleDetailList"
                    ][1]["AssumeRolePolicyDocument"]
                },
            }
        }
    }
    report = _report(template, "t.json")
    assert report.roles[0].who_can_assume[0].words == "any branch of acme/site"
    assert report.roles[0].arn == "cloudformation:t.json#R"


TERRAFORM = f"""\
resource "aws_iam_openid_connect_provider" "gh" {{
  url = "https://{GH}"
}}

resource "aws_iam_role" "encoded" {{
  name = "encoded"
  assume_role_policy = jsonencode({{
    Version = "2012-10-17"
    Statement = [{{
      Effect    = "Allow"
      Action    = "sts:AssumeRoleWithWebIdentity"
      Principal = {{ Federated = aws_iam_openid_connect_provider.gh.arn }}
      Condition = {{ StringLike = {{ "{GH}:sub" = "repo:acme/site:pull_request" }} }}
    }}]
  }})
}}

resource "aws_iam_role" "document" {{
  name               = "document"
  assume_role_policy = data.aws_iam_policy_document.trust.json
}}

data "aws_iam_policy_document" "trust" {{
  statement {{
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {{
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.gh.arn]
    }}
    condition {{
      test     = "StringEquals"
      variable = "{GH}:sub"
      values   = ["repo:acme/site:environment:prod"]
    }}
  }}
}}

resource "aws_iam_role" "heredoc" {{
  name = "heredoc"
  assume_role_policy = <<EOF
{json.dumps(authorization_details(1, 0).document["RoleDetailList"][3]["AssumeRolePolicyDocument"])}
EOF
}}
"""


def test_terraform_hcl_jsonencode_heredoc_and_policy_document() -> None:
    report = build_report(load_text("main.tf", TERRAFORM))
    words = {role.role_name: [i.words for i in role.who_can_assume] for role in report.roles}
    assert words == {
        "encoded": ["pull requests of acme/site"],
        "document": ["deployment environment prod of acme/site"],
        "heredoc": ["any job anywhere on GitHub Actions"],
    }
    lines = {role.role_name: role.source.line for role in report.roles if role.source}
    assert lines == {"encoded": 5, "document": 18, "heredoc": 38}


def test_terraform_plan_json() -> None:
    role = authorization_details(1, 0).document["RoleDetailList"][2]
    plan = {
        "format_version": "1.2",
        "planned_values": {
            "root_module": {
                "child_modules": [
                    {
                        "resources": [
                            {
                                "address": "module.ci.aws_iam_role.this",
                                "type": "aws_iam_role",
                                "values": {
                                    "name": "ci",
                                    "assume_role_policy": json.dumps(
                                        role["AssumeRolePolicyDocument"]
                                    ),
                                },
                            }
                        ]
                    }
                ]
            }
        },
    }
    report = _report(plan, "plan.json")
    assert report.roles[0].who_can_assume[0].words == "pull requests of any repository in org acme"


def test_an_unknown_input_is_refused_in_one_line() -> None:
    with pytest.raises(UsageError, match="not a format keyless audit reads"):
        load_text("notes.txt", "just: some\nyaml: here\n")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_text("x.json", "{not json")


def test_baseline_keeps_only_new_findings() -> None:
    old = _report(authorization_details(per_kind=3, service_roles=0).document)
    keys = baseline_keys(json.loads(json.dumps(old.to_json())), "old.json")
    document = authorization_details(per_kind=3, service_roles=0).document
    document["RoleDetailList"].append(
        {
            **document["RoleDetailList"][9],
            "RoleName": "fresh",
            "Arn": f"arn:aws:iam::{ACCOUNT}:role/fresh",
        }
    )
    fresh = new_since(_report(document), keys, "old.json")
    assert [role.role_name for role in fresh.roles] == ["fresh"]
    with pytest.raises(UsageError, match="schema_version"):
        baseline_keys({"roles": [], "schema_version": 99}, "b.json")


def test_sarif_has_one_result_per_role_located_in_the_template() -> None:
    report = build_report(load_text("main.tf", TERRAFORM))
    log = render_sarif(report, tool_version="0")
    results = log["runs"][0]["results"]
    assert len(results) == len(report.roles)
    rule_ids = [rule["id"] for rule in log["runs"][0]["tool"]["driver"]["rules"]]
    for result, role in zip(results, report.roles, strict=True):
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        physical = result["locations"][0]["physicalLocation"]
        assert physical["artifactLocation"]["uri"] == "main.tf"
        assert role.source is not None
        assert physical["region"]["startLine"] == role.source.line
    assert results[0]["level"] == "error"


def test_sarif_catalogue_describes_each_rule_as_declared() -> None:
    report = _report(authorization_details(per_kind=1, service_roles=0).document)
    log = render_sarif(report, tool_version="0")
    catalogue = {rule["id"]: rule for rule in log["runs"][0]["tool"]["driver"]["rules"]}
    declared: dict[str, Declared] = {rule.id: rule for rule in RULES}
    declared.update((rule.id, rule) for rule in AUDIT_RULES)
    unreadable = {
        "Roles": [
            {
                "RoleName": "r",
                "Arn": "arn:aws:iam::1:role/r",
                "AssumeRolePolicyDocument": ":oidc-provider/ no JSON",
            }
        ]
    }
    odd = render_sarif(_report(unreadable, "roles.json"), tool_version="0")
    catalogue.update((r["id"], r) for r in odd["runs"][0]["tool"]["driver"]["rules"])
    assert "trust-unreadable" in catalogue  # the audit's own rule
    assert len(catalogue) > 2  # lint's rules
    for rule_id, entry in catalogue.items():
        if rule_id == "oidc-role":  # a role with no finding
            continue
        rule = declared[rule_id]
        assert entry["shortDescription"]["text"] == rule.title
        assert entry["help"]["text"] == rule.help
        assert entry["defaultConfiguration"]["level"] == rule.severity.sarif_level


def test_html_escapes_every_value_and_embedded_json_cannot_close_the_script() -> None:
    hostile = "</script><img src=x onerror=alert(1)>\u2028"
    dump = authorization_details(per_kind=1, service_roles=0).document
    dump["RoleDetailList"][0]["RoleName"] = hostile
    dump["RoleDetailList"][0]["AssumeRolePolicyDocument"]["Statement"][0]["Sid"] = hostile
    page = render_html(_report(dump), tool_version="0")
    assert "<img" not in page
    assert page.count("</script>") == 2
    assert "<script src" not in page
    assert "<link" not in page
    assert json.loads(embedded_json({"a": hostile})) == {"a": hostile}


def test_text_table_lists_missing_and_unused_providers() -> None:
    text = render_text(_report(authorization_details(per_kind=1, service_roles=0).document))
    assert text.splitlines()[1].startswith("critical")
    assert f"oidc-provider/{UNUSED}" in text
    assert "Roles trusting an OIDC provider that does not exist" in text
    assert "gone-000" in text


@pytest.mark.parametrize(
    ("operator", "audience", "flagged"),
    [
        ("StringEquals", "sts.amazonaws.com", False),
        ("StringEquals", "https://github.com/acme", True),
        ("StringLike", "sts.*", False),
        ("StringNotEquals", "sts.amazonaws.com", True),  # the one registered id is excluded
    ],
)
def test_an_audience_no_client_id_satisfies_is_a_finding(
    operator: str, audience: str, flagged: bool
) -> None:
    condition = {
        operator: {f"{GH}:aud": audience},
        "StringLike": {f"{GH}:sub": "repo:acme/site:ref:refs/heads/main"},
    }
    document = {
        "RoleDetailList": [
            {
                "RoleName": "r",
                "Arn": f"arn:aws:iam::{ACCOUNT}:role/r",
                "AssumeRolePolicyDocument": trust(GH, condition),
            }
        ],
        "OpenIDConnectProviderList": [
            {
                "Arn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{GH}",
                "ClientIDList": ["sts.amazonaws.com"],
            }
        ],
    }
    (role,) = _report(document).roles
    found = [f for f in role.findings if f.rule == "audience-unregistered"]
    assert bool(found) is flagged
    if flagged:
        assert audience in found[0].message
        assert "sts.amazonaws.com" in found[0].message


def test_text_table_escapes_what_the_input_names() -> None:
    document = authorization_details(per_kind=1, service_roles=0).document
    role = document["RoleDetailList"][0]
    role["RoleName"] = "evil\x1b[2J\n::add-mask::x\u202e"
    text = render_text(_report(document))
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "evil\\x1b[2J\\x0a::add-mask::x\\u202e" in text
    assert not any(line.lstrip().startswith("::") for line in text.splitlines())
    rows = [line for line in text.splitlines() if "evil" in line]
    assert len(rows) == 1


def _throttled(failures: int) -> tuple[Callable[[], str], list[int]]:
    from botocore.exceptions import ClientError

    calls = [0]

    def call() -> str:
        calls[0] += 1
        if calls[0] <= failures:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "slow"}}, "ListRoles")
        return "ok"

    return call, calls


def test_throttling_is_retried_with_growing_waits_then_reported() -> None:
    waits: list[float] = []
    call, calls = _throttled(3)
    assert with_backoff(call, what="iam:ListRoles", sleep=waits.append) == "ok"
    assert calls == [4]
    assert len(waits) == 3
    call, calls = _throttled(100)
    with pytest.raises(AwsError, match="still throttled after 6 attempts"):
        with_backoff(call, what="iam:ListRoles", sleep=waits.append)
    assert calls == [6]
