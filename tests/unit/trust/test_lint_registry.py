"""The lint rule registry is consistent: every rule declares id, severity, title, help and fix
once; ids are unique; SARIF's rule catalogue is the registry; every finding names a registered
rule and carries its severity (or, for rules graded by the issuer, no more than it)."""

from __future__ import annotations

from typing import Any

import pytest

from keyless.trust.lint import RULES, Severity, lint, sarif
from keyless.trust.lint_rules import REGISTRY, Hit, Rule
from keyless.trust.lint_rules.targets import document
from keyless.trust.model import parse_policy
from tests.unit.trust.test_lint import BB, GH, TRIGGER_AND_CLOSE, clean, on

#: Rules whose severity depends on the issuer (shared: CRITICAL, per-tenant: HIGH), on whether
#: the role writes (repository-wide, pull request, run phase: HIGH or LOW) or on the provider's
#: client IDs (aud-missing: MEDIUM or LOW); docs/lint-severity.md.
GRADED = {
    "subject-missing",
    "subject-negated-only",
    "subject-scoped-to-all",
    "subject-wildcard-tenant",
    "subject-repo-wide",
    "github-pull-request",
    "terraform-plan-can-assume",
    "aud-missing",
}


def _policies() -> list[dict[str, Any]]:
    return [clean(d) for pair in TRIGGER_AND_CLOSE.values() for d in pair]


def test_every_rule_declares_id_severity_title_help_and_fix() -> None:
    assert len(RULES) == 37
    for declared in RULES:
        assert declared.id
        assert isinstance(declared.severity, Severity)
        assert declared.title
        assert declared.fix
        assert declared.help.endswith(".")
        assert "\n" not in declared.help + declared.title + declared.fix


def test_ids_are_unique_and_report_order_covers_the_registry() -> None:
    ids = [declared.id for declared in RULES]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(declared.id for declared in REGISTRY)
    assert len(REGISTRY) == len(RULES)
    # The report order (findings of one statement and severity, SARIF's catalogue) is pinned.
    assert ids == list(TRIGGER_AND_CLOSE)


def test_sarif_rules_are_the_registry() -> None:
    catalogue = sarif([], tool_version="1")["runs"][0]["tool"]["driver"]["rules"]
    assert [entry["id"] for entry in catalogue] == [declared.id for declared in RULES]
    for entry, declared in zip(catalogue, RULES, strict=True):
        assert entry["shortDescription"]["text"] == declared.title
        assert entry["fullDescription"]["text"] == declared.help
        assert entry["help"]["text"] == declared.help
        assert entry["defaultConfiguration"]["level"] == declared.severity.sarif_level
        security = entry["properties"]["security-severity"]
        assert security == declared.severity.security_severity


def test_graded_rules_are_declared_as_such() -> None:
    assert {declared.id for declared in RULES if declared.grade is not None} == GRADED


@pytest.mark.parametrize("index", range(2 * len(TRIGGER_AND_CLOSE)))
def test_every_finding_names_a_rule_and_carries_its_severity(index: int) -> None:
    by_id = {declared.id: declared for declared in REGISTRY}
    for finding in lint(parse_policy(_policies()[index])):
        declared = by_id[finding.rule]
        if declared.grade is None:
            assert finding.severity is declared.severity
        else:
            assert finding.severity.rank <= declared.severity.rank


def test_graded_rule_reports_high_for_a_per_tenant_issuer_and_critical_for_a_shared_one() -> None:
    def severity(prefix: str) -> Severity:
        (finding,) = [f for f in lint(parse_policy(on(prefix, "*"))) if f.rule.endswith("-all")]
        return finding.severity

    assert severity(GH) is Severity.CRITICAL  # every GitHub customer
    assert severity(BB) is Severity.HIGH  # one Bitbucket workspace


def test_a_rule_stamps_its_own_id_severity_and_fix_on_what_it_detects() -> None:
    policy = parse_policy(clean(TRIGGER_AND_CLOSE["not-principal"][0]))
    statement = policy.statements[0]
    declared = Rule(
        id="example",
        severity=Severity.MEDIUM,
        title="t",
        help="h.",
        fix="declared fix",
        detect=lambda doc: [Hit(statement, "m"), Hit(None, "n", "specific fix")],
    )
    first, second = declared.check(document(policy))
    assert (first.rule, first.severity, first.fix) == ("example", Severity.MEDIUM, "declared fix")
    assert first.message == f"{statement.label}: m"
    assert (second.message, second.fix, second.statement) == ("policy: n", "specific fix", None)
