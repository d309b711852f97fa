"""Evaluate a role trust policy for one ``AssumeRoleWithWebIdentity`` request, as IAM does.

Sources (IAM User Guide): "Policy evaluation logic", "Principal", "Action", "Condition operators",
"Multivalued context keys", "Policy variables", "Available keys for web identity federation" and
"Passing session tags in AssumeRoleWithWebIdentity". Where AWS documents no outcome the decision is
``indeterminate`` with the reason: keyless never guesses an allow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from keyless.ci import provider_for_issuer
from keyless.compat import StrEnum
from keyless.errors import AccessDeniedError, TokenError
from keyless.trust.glob import compile_glob
from keyless.trust.model import Condition, Effect, Policy, Statement
from keyless.trust.operators import (
    UNKNOWN,
    Chunk,
    ContextValue,
    Expanded,
    Qualifier,
    Truth,
    Unknown,
    all3,
    literal_pattern,
    test_condition,
)

__all__ = [
    "SET_SOURCE_IDENTITY",
    "TAG_SESSION",
    "WEB_IDENTITY_ACTION",
    "ConditionRow",
    "Decision",
    "Evaluation",
    "Exposure",
    "Outcome",
    "Request",
    "StatementResult",
    "evaluate",
    "exposure_for",
    "issuer_prefix",
    "provider_arn_for",
]

WEB_IDENTITY_ACTION = "sts:AssumeRoleWithWebIdentity"
TAG_SESSION = "sts:TagSession"
SET_SOURCE_IDENTITY = "sts:SetSourceIdentity"
#: The token claim that carries session tags (IAM User Guide, "Passing session tags").
TAGS_CLAIM = "https://aws.amazon.com/tags"
#: The token claim that sets a source identity; it needs ``sts:SetSourceIdentity``.
SOURCE_IDENTITY_CLAIM = "https://aws.amazon.com/source_identity"
#: Keys every IAM OIDC provider gets (web identity condition keys).
STANDARD_KEYS = frozenset({"sub", "aud"})


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


def issuer_prefix(issuer: str) -> str:
    """The condition-key prefix for an issuer: the URL without ``https://``, path and trailing
    slash included (``token.actions.githubusercontent.com``)."""
    return issuer.removeprefix("https://")


def provider_arn_for(issuer: str, account_id: str, *, partition: str = "aws") -> str:
    """The IAM OIDC provider ARN that names ``issuer`` in ``account_id``."""
    return f"arn:{partition}:iam::{account_id}:oidc-provider/{issuer_prefix(issuer)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Exposure:
    """Which token claims AWS turns into condition keys for one issuer."""

    claims: frozenset[str]
    #: How messages name the issuer's CI: "Bitbucket Pipelines", or the issuer URL.
    name: str
    #: Claims AWS may or may not expose (its list for the CI is not published): a condition on
    #: one of them is undecidable rather than absent.
    unconfirmed: frozenset[str] = frozenset()


def exposure_for(issuer: str) -> Exposure:
    """The one place keyless answers "which claims can a trust policy see for this issuer": the
    CI provider's ``aws_condition_claims`` plus ``sub`` and ``aud``; only those for unknown
    issuers."""
    provider = provider_for_issuer(issuer)
    if provider is None:
        return Exposure(claims=STANDARD_KEYS, name=f"the issuer {issuer}")
    return Exposure(
        claims=STANDARD_KEYS | provider.aws_condition_claims,
        name=provider.display_name,
        unconfirmed=provider.aws_unconfirmed_claims,
    )


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


# --- the request context -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Resolved:
    actual: ContextValue | Unknown | None
    note: str | None = None
    #: True when the token has the claim but AWS does not expose it.
    hidden: bool = False


def _context_value(value: object) -> ContextValue | Unknown | None:
    """A claim as IAM holds it: strings as they are, numbers and booleans as their JSON text,
    arrays as multivalued keys; objects are not condition values."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list | tuple):
        items = [_context_value(item) for item in value]
        if all(isinstance(item, str) for item in items):
            return tuple(item for item in items if isinstance(item, str))
    return UNKNOWN


class _Context:
    def __init__(self, request: Request, exposure: Exposure) -> None:
        self.request = request
        self.exposure = exposure
        self.prefix = issuer_prefix(request.issuer)
        self._given = {key.lower(): value for key, value in request.context.items()}
        self._exposed = {claim.lower(): claim for claim in exposure.claims}
        self._tags, self._tags_note = _session_tags(request.claims)

    def resolve(self, key: str) -> _Resolved:
        lowered = key.lower()  # condition key names are case-insensitive
        if lowered in self._given:
            return _Resolved(self._given[lowered])
        own = f"{self.prefix.lower()}:"
        if lowered.startswith(own):
            return self._claim(key[len(own) :])
        if lowered.startswith(("aws:", "sts:")):
            return self._global(key, lowered)
        return _Resolved(
            None, f"not a key of this token's issuer ({self.prefix}): absent in the request"
        )

    def _claim(self, claim: str) -> _Resolved:
        canonical = self._exposed.get(claim.lower())
        present = claim in self.request.claims
        if canonical is None and present and claim in self.exposure.unconfirmed:
            return _Resolved(
                UNKNOWN,
                f"whether AWS exposes `{claim}` for {self.exposure.name} is not documented",
            )
        if canonical is None:
            note = (
                f"AWS does not expose `{claim}` as a condition key for {self.exposure.name}:"
                " IAM sees it as absent"
                + (" (the token has the claim, but IAM never reads it)" if present else "")
            )
            return _Resolved(None, note, hidden=present)
        if canonical not in self.request.claims:
            return _Resolved(None, f"the token has no `{canonical}` claim")
        value = _context_value(self.request.claims[canonical])
        if value is UNKNOWN:
            return _Resolved(UNKNOWN, f"`{canonical}` is not a string, number, boolean or list")
        return _Resolved(value)

    def _global(self, key: str, lowered: str) -> _Resolved:
        if self._tags is None:
            tags_unknown = _Resolved(UNKNOWN, self._tags_note)
            if lowered.startswith("aws:requesttag/") or lowered in (
                "aws:tagkeys",
                "sts:transitivetagkeys",
            ):
                return tags_unknown
        else:
            principal_tags, transitive = self._tags
            if lowered.startswith("aws:requesttag/"):
                wanted = key.split("/", 1)[1]
                # Tag keys are case-insensitive in IAM matching of RequestTag keys.
                for tag, value in principal_tags.items():
                    if tag.lower() == wanted.lower():
                        return _Resolved(value)
                return _Resolved(None, f"the token carries no session tag `{wanted}`")
            if lowered == "aws:tagkeys":
                keys = tuple(principal_tags)
                return _Resolved(keys if keys else None)
            if lowered == "sts:transitivetagkeys":
                return _Resolved(transitive if transitive else None)
        return _Resolved(
            UNKNOWN,
            f"keyless cannot know `{key}` offline; give it in the request context to evaluate it",
        )


def _session_tags(
    claims: Mapping[str, Any],
) -> tuple[tuple[dict[str, str], tuple[str, ...]] | None, str | None]:
    """Session tags from the token's tags claim: ``({tag: value}, transitive keys)``."""
    raw = claims.get(TAGS_CLAIM)
    if raw is None:
        return ({}, ()), None
    bad = None, f"the token's `{TAGS_CLAIM}` claim does not have the documented shape"
    if not isinstance(raw, Mapping):
        return bad
    principal_tags = raw.get("principal_tags", {})
    transitive = raw.get("transitive_tag_keys", [])
    if not isinstance(principal_tags, Mapping) or not isinstance(transitive, list | tuple):
        return bad
    tags: dict[str, str] = {}
    for tag, value in principal_tags.items():
        # Documented shape: {"Project": ["Automation"]}, one value per tag.
        if isinstance(value, list | tuple) and len(value) == 1 and isinstance(value[0], str):
            tags[str(tag)] = value[0]
        elif isinstance(value, str):
            tags[str(tag)] = value
        else:
            return bad
    if not all(isinstance(key, str) for key in transitive):
        return bad
    return (tags, tuple(transitive)), None


# --- policy variables ----------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def variable_default(inner: str) -> tuple[str, str] | None:
    """``key, 'default'`` inside ``${...}`` as (key, default), or ``None`` without a default.

    The same reading as the regex ``\\s*([^,]+?)\\s*,\\s*'([^']*)'\\s*`` (a key without
    commas, then one quoted default), done by splitting: that regex backtracks in cubic time
    on a long run of spaces."""
    head, comma, tail = inner.partition(",")
    if not comma or not head:
        return None
    quoted = tail.strip()
    if len(quoted) < 2 or quoted[0] != "'" or quoted[-1] != "'" or "'" in quoted[1:-1]:
        return None
    # An all-space key: the regex's lazy group keeps the last character.
    return head.strip() or head[-1], quoted[1:-1]


def _expand(text: str, ctx: _Context, *, wildcards: bool) -> Expanded:
    """``text`` with ``${...}`` replaced (reference_policies_variables): ``${*}``, ``${?}`` and
    ``${$}`` are the literal characters; ``${key, 'default'}`` falls back to the default; a
    missing key is a null that matches nothing."""
    chunks: list[Chunk] = []
    position = 0
    null = False
    unknown = False
    for match in _VARIABLE.finditer(text):
        if match.start() > position:
            chunks.append(Chunk(text[position : match.start()]))
        position = match.end()
        inner = match.group(1)
        if inner in ("*", "?", "$"):
            chunks.append(Chunk(inner, active=False))
            continue
        default: str | None = None
        with_default = variable_default(inner)
        key = inner.strip()
        if with_default:
            key, default = with_default
        resolved = ctx.resolve(key).actual
        if resolved is None and default is not None:
            resolved = default
        if resolved is None:
            null = True
        elif isinstance(resolved, Unknown | tuple):
            # Multivalued keys cannot be policy variables (multivalued context keys page).
            unknown = True
        elif wildcards and ("*" in resolved or "?" in resolved):
            # Whether a substituted `*` is a wildcard is not documented.
            unknown = True
        else:
            chunks.append(Chunk(resolved, active=False))
    if position < len(text):
        chunks.append(Chunk(text[position:]))
    if null:
        return None
    if unknown:
        return UNKNOWN
    return tuple(chunks) if chunks else literal_pattern("")


# --- statements ----------------------------------------------------------------------------------


def _action_matches(patterns: Sequence[str], action: str) -> bool:
    # Action names are case-insensitive and take `*` and `?` (IAM JSON policy elements: Action).
    return any(compile_glob(pattern.lower()).match(action.lower()) for pattern in patterns)


def _principal(statement: Statement, ctx: _Context) -> tuple[Truth, str | None]:
    principal = statement.principal
    if principal is None:  # refused earlier as an invalid trust policy
        return False, "no Principal"
    undocumented = '"*" as principal: AWS does not document whether it admits a web-identity caller'
    if principal.wildcard or any(
        "*" in value for _, values in principal.entries for value in values
    ):
        return None, undocumented
    federated = principal.values("Federated")
    arn = ctx.request.provider_arn
    for value in federated:
        if arn is not None and value == arn:
            return True, None
        if arn is None and value.partition(":oidc-provider/")[2] == ctx.prefix:
            return True, "the account in the provider ARN was not checked (no provider ARN)"
        if not value.startswith("arn:") and value == ctx.prefix:
            # Built-in identity providers are named by host (accounts.google.com, ...).
            return True, None
    expected = arn or f"arn:aws:iam::<account>:oidc-provider/{ctx.prefix}"
    named = ", ".join(federated) if federated else "no Federated provider"
    return False, f"the principal names {named}; the token arrives through {expected}"


def _row(
    statement: Statement, action: str, condition: Condition, ctx: _Context, policy: Policy
) -> tuple[ConditionRow, Truth]:
    resolved = ctx.resolve(condition.key)
    op = condition.operator
    values: list[Expanded] = []
    for text in condition.string_values:
        if policy.variables_enabled and op.base.supports_variables and "${" in text:
            values.append(_expand(text, ctx, wildcards=op.base.wildcards))
        else:
            values.append(literal_pattern(text))
    truth = test_condition(op, values, resolved.actual)
    note = resolved.note
    if truth is None and note is None:
        if isinstance(resolved.actual, tuple) and op.qualifier is Qualifier.NONE:
            note = (
                f"the token has several values here and {op.name} has no ForAnyValue: or"
                " ForAllValues: qualifier, for which AWS documents no result"
            )
        elif any(value is UNKNOWN for value in values):
            note = "a policy variable in the values cannot be resolved offline"
        else:
            note = f"the request value does not have the type {op.name} compares"
    actual = None if isinstance(resolved.actual, Unknown) else resolved.actual
    row = ConditionRow(
        statement=statement.index,
        action=action,
        operator=op.name,
        key=condition.key,
        values=condition.string_values,
        actual=actual,
        result=Outcome.of(truth),
        note=note,
    )
    return row, truth


def _statement(statement: Statement, action: str, ctx: _Context, policy: Policy) -> StatementResult:
    principal, principal_note = _principal(statement, ctx)
    if statement.action is not None:
        action_matches = _action_matches(statement.action, action)
    else:
        # NotAction matches every action it does not list.
        action_matches = not _action_matches(statement.not_action or (), action)
    rows: list[ConditionRow] = []
    truths: list[Truth] = []
    for condition in statement.conditions or ():
        row, truth = _row(statement, action, condition, ctx, policy)
        rows.append(row)
        truths.append(truth)
    note = None
    if statement.conditions == ():
        # Empty means deny: an explicit empty Condition block is never passed vacuously.
        truths.append(None)
        note = "an empty Condition block: AWS documents no meaning for it; keyless does not pass it"
    applies = all3([principal, action_matches, *truths])
    return StatementResult(
        index=statement.index,
        label=statement.label,
        sid=statement.sid,
        effect=statement.effect,
        action=action,
        principal=Outcome.of(principal),
        principal_note=principal_note,
        action_matches=action_matches,
        conditions=tuple(rows),
        outcome=Outcome.of(applies),
        note=note,
    )


def _invalid_for_trust(policy: Policy) -> str | None:
    """Why IAM would refuse ``policy`` as a role trust policy, or ``None``."""
    for statement in policy.statements:
        if statement.not_principal is not None:
            return f"{statement.label} uses NotPrincipal, which IAM refuses in a role trust policy"
        if statement.principal is None:
            return f"{statement.label} has no Principal, which a role trust policy requires"
        if statement.resource is not None or statement.not_resource is not None:
            return f"{statement.label} has a Resource element, which IAM refuses in a trust policy"
    return None


def _required_actions(claims: Mapping[str, Any]) -> tuple[str, ...]:
    actions = [WEB_IDENTITY_ACTION]
    tags = claims.get(TAGS_CLAIM)
    if isinstance(tags, Mapping) and tags.get("principal_tags"):
        # Session tags in the token need sts:TagSession too, or the call fails (session tags).
        actions.append(TAG_SESSION)
    if claims.get(SOURCE_IDENTITY_CLAIM) is not None:
        actions.append(SET_SOURCE_IDENTITY)
    return tuple(actions)


def _decide(results: Sequence[StatementResult]) -> tuple[Decision, StatementResult | None]:
    # Explicit Deny wins; an undecidable Deny blocks any Allow; no Allow is an implicit deny.
    denies = [r for r in results if r.effect is Effect.DENY]
    allows = [r for r in results if r.effect is Effect.ALLOW]
    for result in denies:
        if result.outcome is Outcome.PASS:
            return Decision.EXPLICIT_DENY, result
    for result in denies:
        if result.outcome is Outcome.UNKNOWN:
            return Decision.INDETERMINATE, result
    for result in allows:
        if result.outcome is Outcome.PASS:
            return Decision.ALLOW, result
    for result in allows:
        if result.outcome is Outcome.UNKNOWN:
            return Decision.INDETERMINATE, result
    return Decision.IMPLICIT_DENY, None


_SEVERITY = {
    Decision.EXPLICIT_DENY: 3,
    Decision.INDETERMINATE: 2,
    Decision.IMPLICIT_DENY: 1,
    Decision.ALLOW: 0,
}


def evaluate(policy: Policy, request: Request, *, exposure: Exposure | None = None) -> Evaluation:
    """Decide ``request`` against ``policy`` as IAM would. ``exposure`` overrides which claims
    AWS exposes for the issuer (default: ``exposure_for(request.issuer)``)."""
    ctx = _Context(request, exposure or exposure_for(request.issuer))
    actions = _required_actions(request.claims)
    invalid = _invalid_for_trust(policy)
    if invalid:
        return _finish(
            Decision.INDETERMINATE,
            f"IAM would refuse this trust policy: {invalid}",
            None,
            (),
            ctx,
            actions,
        )
    if not policy.statements:
        return _finish(
            Decision.IMPLICIT_DENY, "the policy has no statements", None, (), ctx, actions
        )
    all_results: list[StatementResult] = []
    verdict = Decision.ALLOW
    deciding: StatementResult | None = None
    denied_action: str | None = None
    for action in actions:
        results = [_statement(statement, action, ctx, policy) for statement in policy.statements]
        all_results.extend(results)
        decision, decider = _decide(results)
        if _SEVERITY[decision] > _SEVERITY[verdict] or (
            decision is Decision.ALLOW and deciding is None
        ):
            verdict, deciding = decision, decider
            denied_action = action
    reason = _reason(verdict, deciding, all_results, denied_action or WEB_IDENTITY_ACTION)
    return _finish(verdict, reason, deciding, tuple(all_results), ctx, actions)


def _finish(
    decision: Decision,
    reason: str,
    deciding: StatementResult | None,
    results: tuple[StatementResult, ...],
    ctx: _Context,
    actions: tuple[str, ...],
) -> Evaluation:
    return Evaluation(
        decision=decision,
        reason=reason,
        explanation=_explain(decision, reason, results, ctx, actions),
        notes=(*_exposure_sentences(ctx, actions), *_hidden_sentences(results, ctx)),
        deciding_statement=deciding,
        statements=results,
        actions=actions,
        issuer=ctx.request.issuer,
        provider_arn=ctx.request.provider_arn,
    )


def _show(value: ContextValue | None) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, tuple):
        return "[" + ", ".join(f'"{item}"' for item in value) + "]"
    return f'"{value}"'


def _expected(row: ConditionRow) -> str:
    return " or ".join(f'"{value}"' for value in row.values)


def _row_sentence(row: ConditionRow) -> str:
    if row.result is Outcome.UNKNOWN:
        return f"{row.operator} on {row.key}: {row.note}"
    sentence = f"{row.operator} on {row.key} expects {_expected(row)} but the request has"
    sentence += f" {_show(row.actual)}"
    return sentence + (f" ({row.note})" if row.note else "")


def _first(rows: Sequence[ConditionRow], outcome: Outcome) -> ConditionRow | None:
    return next((row for row in rows if row.result is outcome), None)


def _reason(
    decision: Decision,
    deciding: StatementResult | None,
    results: Sequence[StatementResult],
    action: str,
) -> str:
    if decision is Decision.ALLOW and deciding is not None:
        count = len(deciding.conditions)
        held = f"all {count} condition(s) hold" if count else "it has no conditions"
        return f"{deciding.label} allows {action}: {held}"
    if decision is Decision.EXPLICIT_DENY and deciding is not None:
        return f"{deciding.label} explicitly denies {action} (an explicit Deny wins over Allow)"
    if decision is Decision.INDETERMINATE and deciding is not None:
        row = _first(deciding.conditions, Outcome.UNKNOWN)
        why = (
            _row_sentence(row)
            if row
            else (deciding.note or deciding.principal_note or "undocumented behaviour")
        )
        return f"{deciding.label} cannot be decided: {why}"
    relevant = [r for r in results if r.action == action and r.effect is Effect.ALLOW]
    for result in relevant:
        if result.relevant:
            row = _first(result.conditions, Outcome.FAIL)
            if row:
                return f"no statement allows {action}: in {result.label}, {_row_sentence(row)}"
    for result in relevant:
        if result.principal is Outcome.FAIL:
            return f"no statement allows {action}: in {result.label}, {result.principal_note}"
    return f"no statement allows {action} (no Allow statement covers this action)"


def _exposure_sentences(ctx: _Context, actions: Sequence[str]) -> list[str]:
    extra = sorted(ctx.exposure.claims - STANDARD_KEYS)
    sentences = [
        f"The token comes from {ctx.request.issuer} ({ctx.exposure.name}); for it IAM sees the"
        f" condition keys {ctx.prefix}:sub and :aud"
        + (f" (plus :{', :'.join(extra)})" if extra else "")
        + ", and every other claim is absent."
    ]
    if len(actions) > 1:
        sentences.append(
            f"The token carries session tags or a source identity, so {', '.join(actions[1:])}"
            " must be allowed too."
        )
    return sentences


def _hidden_sentences(results: Sequence[StatementResult], ctx: _Context) -> list[str]:
    sentences: list[str] = []
    seen: set[str] = set()
    for row in (r for result in results for r in result.conditions):
        claim = _hidden_claim(row, ctx)
        if claim is None or claim in seen:
            continue
        seen.add(claim)
        if row.result is Outcome.FAIL:
            sentences.append(
                f"The condition on `{claim}` can never match: AWS does not expose it for"
                f" {ctx.exposure.name}."
            )
        elif row.result is Outcome.PASS:
            sentences.append(
                f"The condition on `{claim}` does nothing: AWS does not expose it for"
                f" {ctx.exposure.name}, so {row.operator} sees an absent key and is always true."
            )
    return sentences


def _explain(
    decision: Decision,
    reason: str,
    results: Sequence[StatementResult],
    ctx: _Context,
    actions: Sequence[str],
) -> str:
    sentences = _exposure_sentences(ctx, actions)
    for result in results:
        if not result.relevant or result.action != WEB_IDENTITY_ACTION:
            continue
        kind = result.effect.value
        if result.outcome is Outcome.PASS:
            sentences.append(f"{result.label} ({kind}) matches: every condition holds.")
        elif result.outcome is Outcome.FAIL:
            row = _first(result.conditions, Outcome.FAIL)
            detail = _row_sentence(row) if row else "a condition fails"
            sentences.append(f"{result.label} ({kind}) does not match: {detail}.")
        else:
            row = _first(result.conditions, Outcome.UNKNOWN)
            detail = _row_sentence(row) if row else (result.note or result.principal_note or "")
            sentences.append(f"{result.label} ({kind}) cannot be decided: {detail}.")
    sentences.extend(_hidden_sentences(results, ctx))
    verdicts = {
        Decision.ALLOW: "So IAM allows the call.",
        Decision.EXPLICIT_DENY: "So IAM denies the call: an explicit Deny wins over any Allow.",
        Decision.IMPLICIT_DENY: "So IAM denies the call: nothing allows it (implicit deny).",
        Decision.INDETERMINATE: (
            "So keyless cannot say what IAM does here and treats the call as denied."
        ),
    }
    if not any(r.relevant for r in results):
        sentences.append(reason[0].upper() + reason[1:] + ".")
    sentences.append(verdicts[decision])
    return " ".join(sentences)


def _hidden_claim(row: ConditionRow, ctx: _Context) -> str | None:
    own = f"{ctx.prefix.lower()}:"
    if not row.key.lower().startswith(own):
        return None
    claim = row.key[len(own) :]
    return None if claim.lower() in {c.lower() for c in ctx.exposure.claims} else claim
