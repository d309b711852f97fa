"""Rules on the audience and on conditions that cannot work as written: claims AWS does not expose
as condition keys, and ForAllValues in an Allow."""

from __future__ import annotations

from collections.abc import Iterator

from keyless.trust.findings import Severity
from keyless.trust.lint_rules.registry import Hit, rule
from keyless.trust.lint_rules.targets import Document, Target, allows, positive_string
from keyless.trust.model import Condition, Effect
from keyless.trust.operators import Qualifier, literal_pattern, test_condition
from keyless.trust.subjects import WILDCARDS


def aud_grade(target: Target) -> Severity:
    """LOW when the provider is known to list one client ID (STS then admits that one audience
    only); MEDIUM when it lists several or the list is unknown: every CI lets the job choose the
    audience it asks for, so any listed audience gets in (docs/lint-severity.md#audience)."""
    ids = target.context.client_ids
    return Severity.LOW if ids is not None and len(ids) <= 1 else Severity.MEDIUM


def _aud_reason(target: Target) -> str:
    ids = target.context.client_ids
    if ids is not None and len(ids) <= 1:
        return (
            "STS admits only the provider's one client ID"
            + (f" ({ids[0]!r})" if ids else "")
            + ", so this is defence in depth"
        )
    if ids is not None:
        return (
            f"the provider lists {len(ids)} client IDs and the job chooses which it asks for,"
            " so tokens minted for any of them are accepted"
        )
    return (
        "any audience registered on the provider is accepted and the job chooses the one it"
        " asks for (pass --client-id with the provider's client IDs to grade it)"
    )


@rule(
    id="aud-missing",
    severity=Severity.MEDIUM,
    grade=aud_grade,
    title="No condition on the audience",
    help="STS checks aud against the provider's client IDs; pinning it in the role matters where"
    " a provider has several, since the job chooses the one it asks for.",
    fix='Add "StringEquals": {"ISSUER:aud": "AUDIENCE"} with the one audience the provider was'
    " registered with.",
)
def aud_missing(doc: Document) -> Iterator[Hit]:
    for target in allows(doc):
        if any(positive_string(c) for c in target.conditions("aud")):
            continue
        if target.conditions("aud"):
            continue  # aud-loose reports negated-only aud conditions
        yield Hit(
            target,
            f"no condition on `{target.prefix}:aud`: " + _aud_reason(target),
            f'Add "StringEquals": {{"{target.prefix}:aud": "AUDIENCE"}} with the one audience'
            " the provider was registered with (keyless trust build writes it).",
            location=f"{target.statement.location}.Condition",
            element="Principal",
        )


@rule(
    id="aud-loose",
    severity=Severity.MEDIUM,
    title="Audience checked loosely",
    help="A pattern or negated operator on aud admits audiences other than the intended one.",
    fix='Use "StringEquals": {"ISSUER:aud": "AUDIENCE"}.',
)
def aud_loose(doc: Document) -> Iterator[Hit]:
    for target in allows(doc):
        conditions = target.conditions("aud")
        positive = [c for c in conditions if positive_string(c)]
        fix = f'Use "StringEquals": {{"{target.prefix}:aud": "AUDIENCE"}}.'
        if conditions and not positive:
            yield Hit(
                target,
                "`aud` is checked only with a negated or ForAllValues operator: any other"
                " audience passes",
                fix,
                location=conditions[0].location,
                element=conditions[0].key,
            )
            continue
        for condition in positive:
            wild = condition.operator.base.wildcards
            for value in condition.string_values:
                if wild and any(ch in value for ch in WILDCARDS):
                    yield Hit(
                        target,
                        f"`aud` value {value!r} is a pattern: audiences other than the"
                        " provider's own pass",
                        fix,
                        location=condition.location,
                        element=condition.key,
                    )


def _hidden_conditions(target: Target) -> Iterator[tuple[Condition, str]]:
    own = f"{target.prefix}:".lower()
    exposed = {claim.lower() for claim in target.exposure.claims}
    for condition in target.statement.conditions or ():
        if not condition.key.lower().startswith(own):
            continue
        claim = condition.key[len(own) :]
        if claim.lower() not in exposed and claim not in target.exposure.unconfirmed:
            yield condition, claim


def _always(condition: Condition) -> bool | None:
    """What the condition yields for a key IAM never has."""
    values = [literal_pattern(v) for v in condition.string_values]
    return test_condition(condition.operator, values, None)


@rule(
    id="condition-does-nothing",
    severity=Severity.MEDIUM,
    title="Condition on a claim AWS does not expose, always true",
    help="IAM sees only sub, aud and a few provider keys; negated, IfExists and ForAllValues"
    " operators on any other claim are always true, so the control silently does nothing.",
    fix="Remove it and express the restriction through `ISSUER:sub`.",
)
def condition_does_nothing(doc: Document) -> Iterator[Hit]:
    for target in doc.targets:
        for condition, claim in _hidden_conditions(target):
            allow = target.statement.effect is Effect.ALLOW
            if _always(condition) is not allow:
                continue
            yield Hit(
                target,
                f"{condition.operator.name} on `{claim}` does nothing: AWS does not expose"
                f" `{claim}` for {target.name}, the key is always absent, and"
                f" {condition.operator.name} is then always " + ("true" if allow else "false"),
                f"Remove it and express the restriction through `{target.prefix}:sub`.",
                location=condition.location,
                element=condition.key,
            )


@rule(
    id="condition-never-matches",
    severity=Severity.LOW,
    title="Condition on a claim AWS does not expose, never true",
    help="A positive operator on a claim IAM never sees is always false: the role never works.",
    fix="Remove it; express the restriction through `ISSUER:sub`.",
)
def condition_never_matches(doc: Document) -> Iterator[Hit]:
    for target in doc.targets:
        for condition, claim in _hidden_conditions(target):
            allow = target.statement.effect is Effect.ALLOW
            outcome = _always(condition)
            if outcome is None or outcome is allow:
                continue
            effect = (
                "the role can never be assumed through this statement"
                if allow
                else "this Deny blocks every token"
            )
            yield Hit(
                target,
                f"{condition.operator.name} on `{claim}`: AWS does not expose `{claim}` as a"
                f" condition key for {target.name}, so the key is always absent and {effect}",
                f"Remove it; express the restriction through `{target.prefix}:sub`.",
                location=condition.location,
                element=condition.key,
            )


@rule(
    id="condition-unconfirmed-claim",
    severity=Severity.INFO,
    title="Condition on a claim AWS may not expose",
    help="AWS has not published which CircleCI claims it exposes as condition keys.",
    fix="Rely on `ISSUER:sub`, which AWS always exposes.",
)
def condition_unconfirmed(doc: Document) -> Iterator[Hit]:
    for target in doc.targets:
        own = f"{target.prefix}:".lower()
        for condition in target.statement.conditions or ():
            claim = condition.key[len(own) :] if condition.key.lower().startswith(own) else ""
            if claim in target.exposure.unconfirmed:
                yield Hit(
                    target,
                    f"condition on `{claim}`: AWS has not published whether it exposes this"
                    f" {target.name} claim, so the condition may be always absent",
                    f"Rely on `{target.prefix}:sub`, which AWS always exposes.",
                    location=condition.location,
                    element=condition.key,
                )


@rule(
    id="forallvalues-in-allow",
    severity=Severity.HIGH,
    title="ForAllValues in an Allow",
    help="ForAllValues is true for an absent or empty key (Access Analyzer: ForAllValues with"
    " single valued key).",
    fix="Use the operator without ForAllValues: (or ForAnyValue: for a multivalued `aud`).",
)
def forallvalues_in_allow(doc: Document) -> Iterator[Hit]:
    for statement in doc.policy.statements:
        if statement.effect is not Effect.ALLOW:
            continue
        for condition in statement.conditions or ():
            if condition.operator.qualifier is Qualifier.FOR_ALL_VALUES:
                yield Hit(
                    statement,
                    f"{condition.operator.name} on `{condition.key}` in an Allow is true when"
                    " the key is absent or empty, so it lets through tokens without it",
                    location=condition.location,
                    element=condition.key,
                )
