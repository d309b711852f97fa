"""An evaluation in plain English: the reason for its verdict and the explanation around it."""

from __future__ import annotations

from collections.abc import Sequence

from keyless.trust.context import RequestContext
from keyless.trust.model import Effect
from keyless.trust.operators import ContextValue
from keyless.trust.verdict import ConditionRow, Decision, Outcome, StatementResult
from keyless.trust.web_identity import STANDARD_KEYS, WEB_IDENTITY_ACTION


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


def reason_for(
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


def exposure_sentences(ctx: RequestContext, actions: Sequence[str]) -> list[str]:
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


def hidden_sentences(results: Sequence[StatementResult], ctx: RequestContext) -> list[str]:
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


def explain(
    decision: Decision,
    reason: str,
    results: Sequence[StatementResult],
    ctx: RequestContext,
    actions: Sequence[str],
) -> str:
    sentences = exposure_sentences(ctx, actions)
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
    sentences.extend(hidden_sentences(results, ctx))
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


def _hidden_claim(row: ConditionRow, ctx: RequestContext) -> str | None:
    own = f"{ctx.prefix.lower()}:"
    if not row.key.lower().startswith(own):
        return None
    claim = row.key[len(own) :]
    return None if claim.lower() in {c.lower() for c in ctx.exposure.claims} else claim
