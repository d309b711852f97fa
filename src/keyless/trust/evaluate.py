"""Evaluate a role trust policy for one ``AssumeRoleWithWebIdentity`` request, as IAM does.

Sources (IAM User Guide): "Policy evaluation logic", "Principal", "Action", "Condition operators",
"Multivalued context keys", "Policy variables", "Available keys for web identity federation" and
"Passing session tags in AssumeRoleWithWebIdentity". Where AWS documents no outcome the decision is
``indeterminate`` with the reason: keyless never guesses an allow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from keyless.trust.context import RequestContext, expand_variables
from keyless.trust.explain import explain, exposure_sentences, hidden_sentences, reason_for
from keyless.trust.glob import compile_glob
from keyless.trust.model import Condition, Effect, Policy, Statement
from keyless.trust.operators import (
    UNKNOWN,
    Expanded,
    Qualifier,
    Truth,
    Unknown,
    all3,
    literal_pattern,
    test_condition,
)
from keyless.trust.verdict import (
    ConditionRow,
    Decision,
    Evaluation,
    Outcome,
    Request,
    StatementResult,
)
from keyless.trust.web_identity import (
    SET_SOURCE_IDENTITY,
    SOURCE_IDENTITY_CLAIM,
    TAG_SESSION,
    TAGS_CLAIM,
    WEB_IDENTITY_ACTION,
    Exposure,
    exposure_for,
)

__all__ = ["evaluate"]


# --- statements ----------------------------------------------------------------------------------


def _action_matches(patterns: Sequence[str], action: str) -> bool:
    # Action names are case-insensitive and take `*` and `?` (IAM JSON policy elements: Action).
    return any(compile_glob(pattern.lower()).match(action.lower()) for pattern in patterns)


def _principal(statement: Statement, ctx: RequestContext) -> tuple[Truth, str | None]:
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
    statement: Statement, action: str, condition: Condition, ctx: RequestContext, policy: Policy
) -> tuple[ConditionRow, Truth]:
    resolved = ctx.resolve(condition.key)
    op = condition.operator
    values: list[Expanded] = []
    for text in condition.string_values:
        if policy.variables_enabled and op.base.supports_variables and "${" in text:
            values.append(expand_variables(text, ctx, wildcards=op.base.wildcards))
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


def _statement(
    statement: Statement, action: str, ctx: RequestContext, policy: Policy
) -> StatementResult:
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
    ctx = RequestContext(request, exposure or exposure_for(request.issuer))
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
    reason = reason_for(verdict, deciding, all_results, denied_action or WEB_IDENTITY_ACTION)
    return _finish(verdict, reason, deciding, tuple(all_results), ctx, actions)


def _finish(
    decision: Decision,
    reason: str,
    deciding: StatementResult | None,
    results: tuple[StatementResult, ...],
    ctx: RequestContext,
    actions: tuple[str, ...],
) -> Evaluation:
    return Evaluation(
        decision=decision,
        reason=reason,
        explanation=explain(decision, reason, results, ctx, actions),
        notes=(*exposure_sentences(ctx, actions), *hidden_sentences(results, ctx)),
        deciding_statement=deciding,
        statements=results,
        actions=actions,
        issuer=ctx.request.issuer,
        provider_arn=ctx.request.provider_arn,
    )
