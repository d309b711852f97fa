"""The audit as SARIF 2.1.0 (OASIS SARIF v2.1.0 §3): one result per role, its level from the
worst finding, located in the template for IaC inputs and by ARN for live accounts."""

from __future__ import annotations

from typing import Any

from keyless.audit.report import AUDIT_RULES, AuditReport, AuditRule, RoleReport
from keyless.trust.findings import Severity
from keyless.trust.lint_rules import RULES
from keyless.trust.sarif import Declared, rule_descriptor

__all__ = ["render_sarif"]

#: The rule of a role with no finding (its result is a ``pass``).
_CLEAN = AuditRule(
    id="oidc-role",
    severity=Severity.INFO,
    title="A role that trusts an OIDC provider",
    help="Who can assume the role and what it may do, for review; no finding.",
    fix="Nothing to fix.",
)
#: Lint's rules and the audit's own, by id: the catalogue describes each as it is declared.
_DECLARED: dict[str, Declared] = {rule.id: rule for rule in RULES}
_DECLARED.update((rule.id, rule) for rule in (*AUDIT_RULES, _CLEAN))
_CLEAN_RULE = _CLEAN.id


def _result(role: RoleReport, rule_index: dict[str, int]) -> dict[str, Any]:
    worst = role.severity
    rule = role.findings[0].rule if role.findings else _CLEAN_RULE
    who = "; ".join(f"{i.ci_name}: {i.words}" for i in role.who_can_assume) or "unknown"
    text = f"{role.role_name}: who can assume it: {who}. Blast radius: {role.blast_radius.text}."
    if role.findings:
        text += " Findings: " + " ".join(
            f"[{f.severity.value}] {f.rule}: {f.message}. Fix: {f.fix}" for f in role.findings
        )
    location: dict[str, Any] = {"logicalLocations": [{"fullyQualifiedName": role.arn}]}
    if role.source is not None and role.source.file:
        physical: dict[str, Any] = {"artifactLocation": {"uri": role.source.file}}
        if role.source.line:
            physical["region"] = {"startLine": role.source.line}
        location["physicalLocation"] = physical
    result: dict[str, Any] = {
        "ruleId": rule,
        "ruleIndex": rule_index[rule],
        "level": worst.sarif_level if worst else "none",
        "message": {"text": text},
        "locations": [location],
        "properties": {
            "severity": worst.value if worst else None,
            "arn": role.arn,
            "rules": [f.rule for f in role.findings],
        },
    }
    if worst is None:
        result["kind"] = "pass"
    return result


def render_sarif(report: AuditReport, *, tool_version: str) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    for role in report.roles:
        rule = role.findings[0].rule if role.findings else _CLEAN_RULE
        if rule not in rules:
            rules[rule] = rule_descriptor(_DECLARED[rule])
    index = {rule: position for position, rule in enumerate(rules)}
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "keyless-audit",
                        "version": tool_version,
                        "informationUri": "https://github.com/keyless-dev/keyless",
                        "rules": list(rules.values()),
                    }
                },
                "results": [_result(role, index) for role in report.roles],
            }
        ],
    }
