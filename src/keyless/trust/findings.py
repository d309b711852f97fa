"""What lint reports: a finding's severity scale and the finding value itself.

Findings are values that cross into the CLI, provisioning and SARIF; each is made by the rule it
names (``keyless.trust.lint_rules.registry.Rule.finding``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keyless.compat import StrEnum

__all__ = ["Finding", "Severity"]


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)

    @property
    def sarif_level(self) -> str:
        return {"info": "note", "low": "note", "medium": "warning"}.get(self.value, "error")

    @property
    def security_severity(self) -> str:
        # GitHub code scanning maps this CVSS-like score to its severity labels.
        return {"info": "1.0", "low": "3.0", "medium": "5.5", "high": "8.0", "critical": "9.5"}[
            self.value
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    #: Index of the statement, ``None`` for the document as a whole.
    statement: int | None
    #: Where in the document: ``Statement[1].Condition.StringLike["...:sub"]``.
    location: str
    fix: str
    sid: str | None = None
    #: The JSON member the finding is about (a condition key, ``Principal``), to find its line.
    element: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
            "statement": self.statement,
            "sid": self.sid,
            "location": self.location,
            "fix": self.fix,
        }
