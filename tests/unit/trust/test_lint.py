"""Lint rules: for each rule a policy that triggers it and a close one that does not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keyless.trust.lint import (
    RULES,
    Finding,
    LintContext,
    LintedFile,
    Severity,
    line_of,
    lint,
    sarif,
)
from keyless.trust.model import dumps_policy, parse_policy

GH = "token.actions.githubusercontent.com"
BB = "api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
GL = "gitlab.com"
ORG = "11111111-1111-4111-8111-111111111111"
PROJECT = "22222222-2222-4222-8222-222222222222"
CC = f"oidc.circleci.com/org/{ORG}"
BK = "agent.buildkite.com"
OTHER = "auth.example.com"
TF = "app.terraform.io"
TF_AUD = "aws.workload.identity"
REPO = "{33333333-3333-4333-8333-333333333333}"
ENV = "{44444444-4444-4444-8444-444444444444}"
STEP = "{55555555-5555-4555-8555-555555555555}"
WIF = "sts:AssumeRoleWithWebIdentity"
GOOD_GH_SUB = "repo:acme@1/app@2:environment:prod"


def arn(prefix: str) -> str:
    return f"arn:aws:iam::123456789012:oidc-provider/{prefix}"


def stmt(prefix: str = GH, condition: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Federated": arn(prefix)},
        "Action": WIF,
    }
    if condition is not None:
        result["Condition"] = condition
    result.update(extra)
    return result


def doc(*statements: dict[str, Any], version: str | None = "2012-10-17") -> dict[str, Any]:
    document: dict[str, Any] = {"Statement": list(statements)}
    if version:
        document["Version"] = version
    return document


def gh(sub: Any = GOOD_GH_SUB, operator: str = "StringEquals", **more: Any) -> dict[str, Any]:
    condition: dict[str, Any] = {"StringEquals": {f"{GH}:aud": "sts.amazonaws.com"}}
    condition.setdefault(operator, {})[f"{GH}:sub"] = sub
    for key, value in more.items():
        condition.setdefault("StringEquals", {})[f"{GH}:{key}"] = value
    return doc(stmt(GH, condition))


def on(
    prefix: str, sub: Any, operator: str = "StringLike", aud: str | None = "x"
) -> dict[str, Any]:
    condition: dict[str, Any] = {operator: {f"{prefix}:sub": sub}}
    if aud is not None:
        condition.setdefault("StringEquals", {})[f"{prefix}:aud"] = aud
    return doc(stmt(prefix, condition))


TRIGGER_AND_CLOSE: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "principal-wildcard": (
        doc({"Effect": "Allow", "Principal": "*", "Action": WIF}),
        doc({"Effect": "Deny", "Principal": "*", "Action": WIF}),
    ),
    "not-principal": (
        doc({"Effect": "Deny", "NotPrincipal": {"Federated": arn(GH)}, "Action": WIF}),
        doc({"Effect": "Deny", "Principal": {"Federated": arn(GH)}, "Action": WIF}),
    ),
    "subject-missing": (
        doc(stmt(GH, {"StringEquals": {f"{GH}:aud": "sts.amazonaws.com"}})),
        gh(),
    ),
    "subject-negated-only": (
        gh("repo:evil/*", "StringNotLike"),
        doc(
            stmt(GH, {"StringEquals": {f"{GH}:aud": "a"}}),
            {
                "Effect": "Deny",
                "Principal": {"Federated": arn(GH)},
                "Action": WIF,
                "Condition": {"StringNotLike": {f"{GH}:sub": "repo:acme/app:*"}},
            },
        ),
    ),
    "subject-scoped-to-all": (gh("repo:*", "StringLike"), gh("repo:acme/*", "StringLike")),
    "subject-wildcard-tenant": (gh("repo:acme*", "StringLike"), gh("repo:acme/*", "StringLike")),
    "subject-org-wide": (gh("repo:acme/*", "StringLike"), gh("repo:acme/app:*", "StringLike")),
    "subject-mutable-prefix": (
        gh("repo:acme/app:ref:refs/heads/release*", "StringLike"),
        gh("repo:acme/app:ref:refs/heads/*", "StringLike"),
    ),
    "subject-field-boundary-wildcard": (
        on(GL, "project_path:acme/app:ref_type:*:ref:main"),
        on(GL, "project_path:acme/app:ref_type:branch:ref:main", "StringEquals"),
    ),
    "subject-repo-wide": (
        gh("repo:acme/app:*", "StringLike"),
        gh("repo:acme/app:environment:prod"),
    ),
    "subject-loose-value-in-list": (
        gh(["repo:acme/app:environment:prod", "repo:acme/*"], "StringLike"),
        gh(["repo:acme/app:environment:prod", "repo:acme/app:environment:staging"]),
    ),
    "subject-unrecognised": (gh("repository_owner:acme"), gh("repo:acme/app:environment:x")),
    "github-pull-request": (
        gh("repo:acme/app:pull_request"),
        gh("repo:acme/app:ref:refs/heads/main"),
    ),
    "github-job-workflow-ref-only": (
        doc(
            stmt(
                GH,
                {
                    "StringEquals": {
                        f"{GH}:aud": "sts.amazonaws.com",
                        f"{GH}:job_workflow_ref": "acme/wf/.github/workflows/d.yml@refs/tags/v1",
                    }
                },
            )
        ),
        gh(job_workflow_ref="acme/wf/.github/workflows/d.yml@refs/tags/v1"),
    ),
    "github-floating-workflow-ref": (
        gh(job_workflow_ref="acme/wf/.github/workflows/d.yml@refs/heads/main"),
        gh(job_workflow_ref="acme/wf/.github/workflows/d.yml@refs/tags/v1"),
    ),
    "github-name-only-subject": (gh("repo:acme/app:environment:prod"), gh(GOOD_GH_SUB)),
    "github-branch-without-environment": (
        gh("repo:acme@1/app@2:ref:refs/heads/main"),
        gh("repo:acme@1/app@2:environment:main"),
    ),
    "github-environment-colon": (
        gh("repo:acme@1/app@2:environment:prod%3Av1"),
        gh("repo:acme@1/app@2:environment:prod-v1"),
    ),
    "github-custom-subject-job-chosen": (
        gh("environment:prod"),
        gh("repository_owner_id:1:repository_id:2:environment:prod"),
    ),
    "gitlab-path-only-subject": (
        on(GL, "project_path:acme/app:ref_type:branch:ref:main", "StringEquals"),
        on(GL, "project_path:acme/app:ref_type:branch:ref:main-*"),
    ),
    "terraform-plan-can-assume": (
        on(TF, "organization:acme:project:p:workspace:prod:run_phase:*", aud=TF_AUD),
        on(
            TF,
            "organization:acme:project:p:workspace:prod:run_phase:apply",
            "StringEquals",
            aud=TF_AUD,
        ),
    ),
    "aud-missing": (
        doc(stmt(GH, {"StringEquals": {f"{GH}:sub": GOOD_GH_SUB}})),
        gh(),
    ),
    "aud-loose": (
        doc(
            stmt(GH, {"StringEquals": {f"{GH}:sub": GOOD_GH_SUB}, "StringLike": {f"{GH}:aud": "*"}})
        ),
        doc(
            stmt(
                GH,
                {
                    "StringEquals": {f"{GH}:sub": GOOD_GH_SUB},
                    "StringLike": {f"{GH}:aud": "sts.amazonaws.com"},
                },
            )
        ),
    ),
    "condition-does-nothing": (
        doc(
            stmt(
                BB,
                {
                    "StringEquals": {f"{BB}:aud": "x"},
                    "StringLike": {f"{BB}:sub": f"{REPO}:*"},
                    "StringNotEquals": {f"{BB}:branchName": "feature"},
                },
            )
        ),
        on(BB, f"{REPO}:*"),
    ),
    "condition-never-matches": (
        doc(
            stmt(
                BB,
                {
                    "StringEquals": {f"{BB}:aud": "x", f"{BB}:branchName": "main"},
                    "StringLike": {f"{BB}:sub": f"{REPO}:*"},
                },
            )
        ),
        doc(
            stmt(
                BB,
                {
                    "StringEquals": {f"{BB}:aud": "x", f"{BB}:sub": f"{REPO}:{ENV}:{STEP}"},
                },
            )
        ),
    ),
    "condition-unconfirmed-claim": (
        doc(
            stmt(
                CC,
                {
                    "StringEquals": {
                        f"{CC}:aud": ORG,
                        f"{CC}:oidc.circleci.com/project-id": PROJECT,
                    },
                    "StringLike": {f"{CC}:sub": f"org/{ORG}/project/{PROJECT}/user/*"},
                },
            )
        ),
        on(CC, f"org/{ORG}/project/{PROJECT}/user/*", aud=ORG),
    ),
    "forallvalues-in-allow": (
        gh(GOOD_GH_SUB, "ForAllValues:StringEquals"),
        gh(GOOD_GH_SUB, "ForAnyValue:StringEquals"),
    ),
    "bitbucket-step-pinned": (
        on(BB, f"{REPO}:{STEP}", "StringEquals"),
        on(BB, f"{REPO}:*", "StringLike"),
    ),
    "bitbucket-environment-name": (on(BB, f"{REPO}:production:*"), on(BB, f"{REPO}:{ENV}:*")),
    "bitbucket-uuid-braces": (on(BB, f"{REPO.strip('{}')}:*"), on(BB, f"{REPO}:*")),
    "tag-session-missing": (
        doc(
            stmt(
                BK,
                {
                    "StringEquals": {
                        f"{BK}:aud": "sts.amazonaws.com",
                        "aws:RequestTag/organization_slug": "acme",
                    },
                    "StringLike": {f"{BK}:sub": "organization:acme:pipeline:app:*"},
                },
            )
        ),
        doc(
            stmt(
                BK,
                {
                    "StringEquals": {
                        f"{BK}:aud": "sts.amazonaws.com",
                        "aws:RequestTag/organization_slug": "acme",
                    },
                    "StringLike": {f"{BK}:sub": "organization:acme:pipeline:app:*"},
                },
                Action=[WIF, "sts:TagSession"],
            )
        ),
    ),
    "allow-not-action": (
        doc(
            {
                **stmt(GH, gh()["Statement"][0]["Condition"]),
                "NotAction": "sts:TagSession",
                "Action": None,
            }
        ),
        gh(),
    ),
    "action-mismatch": (
        doc(stmt(GH, gh()["Statement"][0]["Condition"], Action="sts:AssumeRole")),
        gh(),
    ),
    "resource-in-trust-policy": (
        doc(stmt(GH, gh()["Statement"][0]["Condition"], Resource="*")),
        gh(),
    ),
    "variables-ignored": (
        doc(stmt(GH, {"StringEquals": {f"{GH}:aud": "a", f"{GH}:sub": "repo:${x}"}}), version=None),
        doc(stmt(GH, {"StringEquals": {f"{GH}:aud": "a", f"{GH}:sub": "repo:${x}"}})),
    ),
    "unknown-issuer": (
        on(OTHER, "user:42", "StringEquals"),
        on(GL, "project_path:g/p:ref_type:branch:ref:main", "StringEquals"),
    ),
    "template-value-unresolved": (
        gh("repo:{unresolved:Ref GitHubOrg}/web:environment:prod"),
        gh(),
    ),
}


def clean(document: dict[str, Any]) -> dict[str, Any]:
    statements = [{k: v for k, v in s.items() if v is not None} for s in document["Statement"]]
    return {**document, "Statement": statements}


def _rules(document: dict[str, Any]) -> list[Finding]:
    return lint(parse_policy(clean(document)))


@pytest.mark.parametrize("rule_id", sorted(TRIGGER_AND_CLOSE))
def test_rule_triggers_and_close_policy_does_not(rule_id: str) -> None:
    trigger, close = TRIGGER_AND_CLOSE[rule_id]
    fired = _rules(trigger)
    assert rule_id in {f.rule for f in fired}, [f.rule for f in fired]
    assert rule_id not in {f.rule for f in _rules(close)}


def test_every_rule_has_a_trigger_and_a_close_policy() -> None:
    assert {rule.id for rule in RULES} == set(TRIGGER_AND_CLOSE)


def test_rule_ids_are_unique_and_described() -> None:
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))
    for rule in RULES:
        assert rule.title
        assert rule.help.endswith(".")


@pytest.mark.parametrize(
    ("prefix", "sub", "operator", "rule", "severity"),
    [
        # Shared issuers: the whole platform; per-tenant issuers: one workspace or org.
        (GH, "repo:*", "StringLike", "subject-scoped-to-all", Severity.CRITICAL),
        (GL, "project_path:*", "StringLike", "subject-scoped-to-all", Severity.CRITICAL),
        (BK, "organization:*", "StringLike", "subject-scoped-to-all", Severity.CRITICAL),
        (BB, "{*}:*", "StringLike", "subject-scoped-to-all", Severity.HIGH),
        (CC, "org/*", "StringLike", "subject-scoped-to-all", Severity.HIGH),
        (OTHER, "*", "StringLike", "subject-scoped-to-all", Severity.CRITICAL),
        (GH, "*acme/app*", "StringLike", "subject-wildcard-tenant", Severity.CRITICAL),
        (GH, "repo:ac?e/app:*", "StringLike", "subject-wildcard-tenant", Severity.CRITICAL),
        (GL, "project_path:grp*", "StringLike", "subject-wildcard-tenant", Severity.CRITICAL),
        (GL, "project_path:group/*", "StringLike", "subject-org-wide", Severity.HIGH),
        (GL, "project_path:g/proj*", "StringLike", "subject-org-wide", Severity.HIGH),
        (CC, f"org/{ORG}/project/*", "StringLike", "subject-org-wide", Severity.HIGH),
        (BK, "organization:acme:pipeline:*", "StringLike", "subject-org-wide", Severity.HIGH),
        (
            GH,
            "repo:acme/app:environment:prod*",
            "StringLike",
            "subject-mutable-prefix",
            Severity.MEDIUM,
        ),
        (
            GL,
            "project_path:g/p:ref_type:*:ref:main",
            "StringLike",
            "subject-field-boundary-wildcard",
            Severity.HIGH,
        ),
        (
            GL,
            "project_path:g/p:ref_type:branch:ref:rel*",
            "StringLike",
            "subject-mutable-prefix",
            Severity.MEDIUM,
        ),
        (
            CC,
            f"org/{ORG}/project/{PROJECT}/user/*/vcs-origin/*/vcs-ref/refs/heads/rel*",
            "StringLike",
            "subject-mutable-prefix",
            Severity.MEDIUM,
        ),
        (
            BK,
            "organization:acme:pipeline:app:ref:refs/heads/rel*",
            "StringLike",
            "subject-mutable-prefix",
            Severity.MEDIUM,
        ),
        (
            GL,
            "project_path:g/p:ref_type:branch:ref:*",
            "StringLike",
            "subject-repo-wide",
            Severity.HIGH,
        ),
        (BB, f"{REPO}:*", "StringLike", "subject-repo-wide", Severity.HIGH),
        (BK, "organization:acme:pipeline:app:*", "StringLike", "subject-repo-wide", Severity.HIGH),
        (GH, "repo:acme/*", "StringNotLike", "subject-negated-only", Severity.CRITICAL),
        (BB, f"{REPO}:*", "StringNotLike", "subject-negated-only", Severity.HIGH),
    ],
)
def test_subject_breadth_and_severity_per_ci(
    prefix: str, sub: str, operator: str, rule: str, severity: Severity
) -> None:
    findings = [f for f in _rules(on(prefix, sub, operator)) if f.rule == rule]
    assert findings, [f.rule for f in _rules(on(prefix, sub, operator))]
    assert findings[0].severity is severity


@pytest.mark.parametrize(
    ("prefix", "sub", "operator"),
    [
        (GH, GOOD_GH_SUB, "StringEquals"),
        (GH, "repo:*", "StringEquals"),  # a literal star never matches: fail-closed, not broad
        (BB, f"{REPO}:{ENV}:*", "StringLike"),
        (GL, "project_path:g/p:ref_type:branch:ref:main", "StringEquals"),
        (CC, f"org/{ORG}/project/{PROJECT}/user/*", "StringLike"),
        (CC, f"org/*/project/{PROJECT}/user/*", "StringLike"),  # the issuer pins the org
        (BK, "organization:acme:pipeline:app:ref:refs/heads/main:*", "StringLike"),
    ],
)
def test_least_privilege_subjects_have_no_finding_of_medium_or_more(
    prefix: str, sub: str, operator: str
) -> None:
    findings = _rules(on(prefix, sub, operator))
    assert all(f.severity.rank < Severity.MEDIUM.rank for f in findings), findings


def test_deny_guard_counts_as_the_subject_control() -> None:
    guarded = doc(
        stmt(GH, {"StringEquals": {f"{GH}:aud": "sts.amazonaws.com"}}),
        {
            "Effect": "Deny",
            "Principal": {"Federated": arn(GH)},
            "Action": WIF,
            "Condition": {"StringNotLike": {f"{GH}:sub": "repo:acme/*"}},
        },
    )
    rules = {f.rule for f in _rules(guarded)}
    assert "subject-missing" not in rules
    assert "subject-org-wide" in rules


def test_narrowest_of_two_anded_conditions_decides() -> None:
    both = doc(
        stmt(
            GH,
            {
                "StringEquals": {f"{GH}:aud": "sts.amazonaws.com", f"{GH}:sub": GOOD_GH_SUB},
                "StringLike": {f"{GH}:sub": "repo:*"},
            },
        )
    )
    assert not [f for f in _rules(both) if f.severity.rank >= Severity.MEDIUM.rank]


def test_buildkite_session_tag_pin_is_a_subject_control() -> None:
    tags = doc(
        stmt(
            BK,
            {
                "StringEquals": {
                    f"{BK}:aud": "sts.amazonaws.com",
                    "aws:RequestTag/organization_slug": "acme",
                    "aws:RequestTag/pipeline_slug": "app",
                }
            },
            Action=[WIF, "sts:TagSession"],
        )
    )
    assert "subject-missing" not in {f.rule for f in _rules(tags)}


def test_finding_names_statement_value_and_fix() -> None:
    (finding,) = [f for f in _rules(gh("repo:acme*", "StringLike")) if f.severity.rank >= 3]
    assert finding.statement == 0
    assert finding.message.startswith("Statement[0]: ")
    assert "'repo:acme*'" in finding.message
    assert finding.location == f'Statement[0].Condition.StringLike["{GH}:sub"]'
    assert "keyless trust build --ci github" in finding.fix
    data = finding.to_json()
    assert {"rule", "severity", "message", "statement", "fix"} <= set(data)


def test_findings_are_sorted_by_statement_then_severity() -> None:
    findings = _rules(doc(stmt(GH), stmt(BB, {"StringLike": {f"{BB}:sub": f"{REPO}:*"}})))
    keys = [(f.statement, -f.severity.rank) for f in findings]
    assert keys == sorted(keys)


# --- SARIF ---------------------------------------------------------------------------------


def test_sarif_has_the_shape_github_code_scanning_reads() -> None:
    policy = parse_policy(gh("repo:acme*", "StringLike"))
    text = dumps_policy(policy)
    findings = tuple(lint(policy))
    log = sarif([LintedFile(path="iam/trust.json", text=text, findings=findings)], tool_version="1")
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "keyless"
    rule_ids = [rule["id"] for rule in driver["rules"]]
    assert rule_ids == [rule.id for rule in RULES]
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"]
        assert float(rule["properties"]["security-severity"]) > 0
        assert rule["defaultConfiguration"]["level"] in ("note", "warning", "error")
    result = run["results"][0]
    assert result["ruleId"] == "subject-wildcard-tenant"
    assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
    assert result["level"] == "error"
    assert result["message"]["text"]
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "iam/trust.json"
    line = location["region"]["startLine"]
    assert f'"{GH}:sub"' in text.splitlines()[line - 1]
    json.dumps(log)  # serializable as is


def test_line_of_points_at_the_member_in_its_statement() -> None:
    text = (
        "{\n"
        '  "Statement": [\n'
        '    {"Effect": "Allow", "Action": "x",\n'
        '     "Condition": {"StringLike": {"k:sub": "a"}}},\n'
        '    {"Condition": {"StringLike": {"k:sub": "b"}},\n'
        '     "Effect": "Allow", "Action": "x"}\n'
        "  ]\n"
        "}\n"
    )

    def at(statement: int | None, element: str | None) -> int:
        finding = Finding(
            rule="r",
            severity=Severity.LOW,
            message="m",
            statement=statement,
            location="",
            fix="f",
            element=element,
        )
        return line_of(text, finding)

    assert at(0, "k:sub") == 4
    assert at(1, "k:sub") == 5
    assert at(1, None) == 6
    assert at(None, None) == 1


# --- an issuer whose URL does not name its CI ------------------------------------------------


TFE = "tfe.corp.example"
OPEN_PHASE = "organization:acme:project:Default Project:workspace:prod:run_phase:*"


def test_a_terraform_enterprise_host_is_graded_by_terraform_when_named_with_ci() -> None:
    policy = parse_policy(on(TFE, OPEN_PHASE, aud=TF_AUD))
    unnamed = lint(policy)
    assert [(f.rule, f.severity) for f in unnamed if f.rule == "unknown-issuer"] == [
        ("unknown-issuer", Severity.INFO)
    ]
    assert "HCP Terraform" in next(f for f in unnamed if f.rule == "unknown-issuer").message
    named = lint(policy, context=LintContext(ci="terraform"))
    assert "unknown-issuer" not in {f.rule for f in named}
    assert ("terraform-plan-can-assume", Severity.HIGH) in {(f.rule, f.severity) for f in named}
    exact = parse_policy(on(TFE, OPEN_PHASE.replace(":*", ":apply"), "StringEquals", aud=TF_AUD))
    assert lint(exact, context=LintContext(ci="terraform")) == []


def test_an_issuer_that_names_its_ci_keeps_it_whatever_ci_says() -> None:
    policy = parse_policy(on(TF, OPEN_PHASE, aud=TF_AUD))
    rules = {f.rule for f in lint(policy, context=LintContext(ci="github"))}
    assert "terraform-plan-can-assume" in rules
