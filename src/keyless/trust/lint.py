"""Lint role trust policies for over-broad or broken OIDC trust: run every rule over a policy and
order the findings.

The rules cover the misconfigurations of docs/security-model.md#misconfigurations for Bitbucket,
GitHub, GitLab, CircleCI, Buildkite and unknown issuers, and AWS Access Analyzer's trust-policy
checks.
Each rule is one declaration in ``keyless.trust.lint_rules`` (id, severity, title, help, fix);
subject values are graded by ``keyless.trust.subjects``; ``sarif()`` renders findings as SARIF
2.1.0 for GitHub code scanning (``keyless.trust.sarif``).
"""

from __future__ import annotations

from collections.abc import Sequence

from keyless.ci.local_issuers import LOCAL_ISSUERS_NONE, LocalIssuers
from keyless.trust.findings import Finding, Severity
from keyless.trust.lint_rules import RULES, Rule
from keyless.trust.lint_rules.targets import document
from keyless.trust.model import Policy
from keyless.trust.sarif import LintedFile, line_of, sarif

__all__ = [
    "RULES",
    "Finding",
    "LintedFile",
    "Rule",
    "Severity",
    "line_of",
    "lint",
    "sarif",
]


def lint(
    policy: Policy, *, rules: Sequence[Rule] = RULES, local: LocalIssuers = LOCAL_ISSUERS_NONE
) -> list[Finding]:
    """Every finding of every rule, by statement and then by descending severity. ``local``
    names the local stack's issuers, linted as their CI's (``keyless.ci.local_issuers``)."""
    doc = document(policy, local)
    findings = [finding for rule in rules for finding in rule.check(doc)]
    unique = list(dict.fromkeys(findings))
    order = {rule.id: index for index, rule in enumerate(rules)}
    return sorted(
        unique,
        key=lambda f: (
            -1 if f.statement is None else f.statement,
            -f.severity.rank,
            order.get(f.rule, len(order)),
        ),
    )
