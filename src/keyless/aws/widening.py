"""Does a new trust policy let in anyone the current one keeps out? Decided with keyless' own
IAM evaluator on witness requests built from the new policy's conditions.

For each Allow statement of the new policy, keyless builds tokens that satisfy it (wildcards
filled in a few ways, claims it does not pin set to values no policy names) and asks the
evaluator whether the current policy allows them too. One such token the current policy refuses
is a witness that the change widens who can assume the role. The search is a sound refusal (a
witness is a real request the new policy admits and the old one does not) but not a proof of
narrowing: a widening no witness shows is not found.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from keyless.limits import (
    WIDENING_MAX_COMBINATIONS,
)
from keyless.trust.evaluate import evaluate
from keyless.trust.model import Effect, Policy, Statement
from keyless.trust.operators import Qualifier
from keyless.trust.verdict import Request

__all__ = ["Widening", "find_widening"]

#: What a wildcard is replaced with, in turn: a short name, nothing, and a value with the
#: separators CI subjects use (a `*` spans `:` and `/`).
_FILLERS = ("x", "", "x:y/z")
#: Values for claims the new policy does not pin: accepted by it, unknown to any other policy.
_PROBE = "keyless-widening-probe"
_POSITIVE_OPERATORS = ("StringEquals", "StringLike", "StringEqualsIgnoreCase")
_ESCAPES = {"${*}": "*", "${?}": "?", "${$}": "$"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Widening:
    """A request the new trust allows and the current one does not."""

    issuer: str
    claims: Mapping[str, str]
    #: Why the current trust refuses it (the evaluator's reason).
    current_reason: str

    def describe(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in sorted(self.claims.items()))
        return f"a token from {self.issuer} with {shown}"

    def to_json(self) -> dict[str, object]:
        return {
            "issuer": self.issuer,
            "claims": dict(self.claims),
            "current_reason": self.current_reason,
        }


def find_widening(current: Policy, new: Policy) -> Widening | None:
    """A witness that ``new`` admits a web identity the ``current`` trust does not, or ``None``."""
    for request in _witnesses(new):
        if not evaluate(new, request).allowed:
            continue
        verdict = evaluate(current, request)
        if not verdict.allowed:
            claims = {key: str(value) for key, value in request.claims.items() if key != "iss"}
            return Widening(issuer=request.issuer, claims=claims, current_reason=verdict.reason)
    return None


def _witnesses(policy: Policy) -> Iterator[Request]:
    for statement in policy.statements:
        if statement.effect is not Effect.ALLOW:
            continue
        for provider_arn in statement.federated:
            _, marker, path = provider_arn.partition(":oidc-provider/")
            if not marker:
                continue
            issuer = f"https://{path}"
            for filler in _FILLERS:
                candidates = _candidates(statement, path, filler)
                yield from _requests(issuer, provider_arn, candidates)


def _candidates(statement: Statement, prefix: str, filler: str) -> dict[str, list[str]]:
    """Values per claim that satisfy the statement's positive string conditions on ``prefix``."""
    values: dict[str, list[str]] = {"sub": [], "aud": []}
    for condition in statement.conditions or ():
        key_prefix, _, claim = condition.key.rpartition(":")
        if key_prefix.lower() != prefix.lower():
            continue
        if condition.operator.qualifier is Qualifier.FOR_ALL_VALUES:
            continue
        if condition.operator.base.name not in _POSITIVE_OPERATORS:
            continue
        like = condition.operator.base.name == "StringLike"
        found = values.setdefault(claim, [])
        for value in condition.string_values:
            found.append(_instantiate(value, filler, like=like))
    return {
        claim: list(dict.fromkeys(found)) if found else [f"{_PROBE}-{claim}"]
        for claim, found in values.items()
    }


def _instantiate(pattern: str, filler: str, *, like: bool) -> str:
    """A value matching ``pattern``: IAM's ``${*}``-style escapes read as the literal character;
    with ``like``, each ``*`` becomes ``filler`` and each ``?`` one character."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        escape = pattern[index : index + 4]
        if escape in _ESCAPES:
            out.append(_ESCAPES[escape])
            index += 4
            continue
        char = pattern[index]
        if like and char == "*":
            out.append(filler)
        elif like and char == "?":
            out.append("x")
        else:
            out.append(char)
        index += 1
    return "".join(out)


def _requests(
    issuer: str, provider_arn: str, candidates: Mapping[str, Sequence[str]]
) -> Iterator[Request]:
    claims = sorted(candidates)
    combinations = itertools.product(*(candidates[claim] for claim in claims))
    for chosen in itertools.islice(combinations, WIDENING_MAX_COMBINATIONS):
        token_claims = {"iss": issuer, **dict(zip(claims, chosen, strict=True))}
        yield Request(issuer=issuer, claims=token_claims, provider_arn=provider_arn)
