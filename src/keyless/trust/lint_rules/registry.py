"""One declaration per lint rule: ``@rule(id=..., severity=..., title=..., help=..., fix=...)``
over the function that detects it registers a ``Rule`` in ``REGISTRY``.

The detecting function yields ``Hit``s (where, what, and a fix only when it depends on the policy);
the ``Rule`` turns each into a ``Finding`` with its own id and severity, so a finding cannot name
another rule or disagree with its rule's severity. A rule whose severity depends on the issuer
declares a ``grade`` hook; its ``severity`` is then the highest it reports (and SARIF's default).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from keyless.trust.findings import Finding, Severity
from keyless.trust.lint_rules.targets import Document, Target
from keyless.trust.model import Statement

__all__ = ["REGISTRY", "Hit", "Rule", "rule"]


@dataclass(frozen=True, slots=True)
class Hit:
    """What a rule's detector found; the rule adds its id and severity."""

    #: The target or statement the finding is about, ``None`` for the document as a whole.
    at: Target | Statement | None
    message: str
    #: A fix naming this policy's values; ``None`` for the rule's declared fix.
    fix: str | None = None
    location: str | None = None
    #: The JSON member the finding is about (a condition key, ``Principal``), to find its line.
    element: str | None = None


Detect = Callable[[Document], Iterable[Hit]]
#: Severity per finding, for rules that grade by the issuer (see ``targets.issuer_reach``).
Grade = Callable[[Target], Severity]


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    id: str
    #: Reported severity; for a graded rule the default and the highest ``grade`` returns.
    severity: Severity
    title: str
    #: One-line rationale: why the pattern is a risk (SARIF fullDescription and help).
    help: str
    #: How to fix it, in general; a finding may carry a fix naming the policy's own values.
    fix: str
    detect: Detect
    grade: Grade | None = None

    def check(self, doc: Document) -> Iterator[Finding]:
        return (self.finding(hit) for hit in self.detect(doc))

    def finding(self, hit: Hit) -> Finding:
        at = hit.at
        statement = at.statement if isinstance(at, Target) else at
        where = statement.label if statement else "policy"
        severity = self.severity
        if self.grade is not None and isinstance(at, Target):
            severity = self.grade(at)
        return Finding(
            rule=self.id,
            severity=severity,
            message=f"{where}: {hit.message}",
            statement=statement.index if statement else None,
            location=hit.location or (statement.location if statement else ""),
            fix=hit.fix or self.fix,
            sid=statement.sid if statement else None,
            element=hit.element,
        )


#: Every declared rule, in declaration order (``keyless.trust.lint_rules.RULES`` orders them).
REGISTRY: list[Rule] = []


def rule(
    *, id: str, severity: Severity, title: str, help: str, fix: str, grade: Grade | None = None
) -> Callable[[Detect], Rule]:
    """Declare a rule over its detecting function, and register it."""

    def register(detect: Detect) -> Rule:
        declared = Rule(
            id=id, severity=severity, title=title, help=help, fix=fix, detect=detect, grade=grade
        )
        REGISTRY.append(declared)
        return declared

    return register
