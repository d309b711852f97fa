"""The request an evaluation decides and its verdict, as values: decision, statements, rows.

A denied or undecidable evaluation is a value; ``Evaluation.raise_for_decision()`` turns it into
an ``AccessDeniedError`` on request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from keyless.compat import StrEnum
from keyless.errors import AccessDeniedError, TokenError
from keyless.trust.model import Effect
from keyless.trust.operators import ContextValue, Truth
from keyless.trust.web_identity import WEB_IDENTITY_ACTION


class Decision(StrEnum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit-deny"
    IMPLICIT_DENY = "implicit-deny"
    INDETERMINATE = "indeterminate"


class Outcome(StrEnum):
    """Result of one condition, principal or statement."""

    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    UNKNOWN = "unknown"

    @classmethod
    def of(cls, truth: Truth) -> Outcome:
        return cls.UNKNOWN if truth is None else cls.PASS if truth else cls.FAIL


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One ``AssumeRoleWithWebIdentity`` call: who signed the token, its claims, and the
    provider ARN it arrives through. ``context`` holds global keys the caller knows (for example
    ``aws:SourceIp``); any other ``aws:``/``sts:`` key is unknown offline."""

    issuer: str
    claims: Mapping[str, Any]
    provider_arn: str | None = None
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    @classmethod
    def from_claims(
        cls,
        claims: Mapping[str, Any],
        *,
        issuer: str | None = None,
        provider_arn: str | None = None,
        context: Mapping[str, ContextValue] | None = None,
    ) -> Request:
        """A request for a decoded token; the issuer is the claims' ``iss`` unless given."""
        found = issuer if issuer is not None else claims.get("iss")
        if not isinstance(found, str) or not found:
            raise TokenError(
                "the claims have no string `iss`; give the issuer explicitly",
                remedy="Pass --issuer URL (the token issuer, e.g. https://gitlab.com).",
            )
        return cls(issuer=found, claims=claims, provider_arn=provider_arn, context=context or {})


@dataclass(frozen=True, slots=True, kw_only=True)
class ConditionRow:
    """One condition as evaluated: what the policy expects and what the request had."""

    statement: int
    action: str
    operator: str
    key: str
    values: tuple[str, ...]
    #: The value IAM sees: ``None`` when the key is absent or AWS does not expose the claim.
    actual: ContextValue | None
    result: Outcome
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "action": self.action,
            "operator": self.operator,
            "key": self.key,
            "values": list(self.values),
            "actual": list(self.actual) if isinstance(self.actual, tuple) else self.actual,
            "result": self.result.value,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class StatementResult:
    index: int
    label: str
    sid: str | None
    effect: Effect
    action: str
    principal: Outcome
    principal_note: str | None
    action_matches: bool
    conditions: tuple[ConditionRow, ...]
    #: Whether the statement applies to the request (principal, action and all conditions).
    outcome: Outcome
    note: str | None = None

    @property
    def relevant(self) -> bool:
        """Principal and action match (or might): its conditions decide."""
        return self.action_matches and self.principal is not Outcome.FAIL

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "sid": self.sid,
            "effect": self.effect.value,
            "action": self.action,
            "principal": self.principal.value,
            "principal_note": self.principal_note,
            "action_matches": self.action_matches,
            "outcome": self.outcome.value,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """The verdict, the statement that decided it, every condition row, and why in plain English.

    A denied or undecidable evaluation is a value; ``raise_for_decision()`` turns it into an
    ``AccessDeniedError`` when a caller wants that."""

    decision: Decision
    reason: str
    explanation: str
    #: What the verdict, the reason and the condition rows do not say: which condition keys IAM
    #: sees for the issuer, extra actions, conditions on claims AWS does not expose.
    notes: tuple[str, ...] = ()
    deciding_statement: StatementResult | None
    statements: tuple[StatementResult, ...]
    actions: tuple[str, ...]
    issuer: str
    provider_arn: str | None

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW

    @property
    def conditions(self) -> tuple[ConditionRow, ...]:
        return tuple(row for result in self.statements for row in result.conditions)

    def raise_for_decision(self) -> None:
        if not self.allowed:
            raise AccessDeniedError(
                f"Not authorized to perform {WEB_IDENTITY_ACTION}: {self.reason}",
                remedy=self.explanation,
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": "allow" if self.allowed else "deny",
            "decision_detail": self.decision.value,
            "reason": self.reason,
            "explanation": self.explanation,
            "deciding_statement": (
                self.deciding_statement.index if self.deciding_statement else None
            ),
            "actions": list(self.actions),
            "issuer": self.issuer,
            "provider_arn": self.provider_arn,
            "statements": [result.to_json() for result in self.statements],
            "conditions": [row.to_json() for row in self.conditions],
        }
