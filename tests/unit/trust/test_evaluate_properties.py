"""Properties of the evaluator that hold for every policy and token (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from keyless.trust.evaluate import evaluate
from keyless.trust.model import parse_policy
from keyless.trust.verdict import Decision, Request

GH = "token.actions.githubusercontent.com"
GH_ARN = f"arn:aws:iam::123456789012:oidc-provider/{GH}"
KEYS = ("sub", "aud", "repository", "environment", "repository_owner")

FAST = settings(max_examples=60, deadline=None)

_TEXT = st.text(alphabet="abAB01:/@{}-._", max_size=10)
_PLAIN = st.text(alphabet="abAB01:/@{}-._", min_size=0, max_size=10)
_PATTERN = st.text(alphabet="abAB01:/@{}-._*?", max_size=10)

POSITIVE = (
    "StringEquals",
    "StringEqualsIgnoreCase",
    "StringLike",
    "ForAnyValue:StringEquals",
    "ForAnyValue:StringLike",
    "ForAllValues:StringEquals",
    "ForAllValues:StringLike",
    "StringEqualsIfExists",
    "StringLikeIfExists",
)
NEGATED = (
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "StringNotLikeIfExists",
    "ForAllValues:StringNotEquals",
)


@st.composite
def claims(draw: st.DrawFn) -> dict[str, Any]:
    result: dict[str, Any] = {
        "iss": f"https://{GH}",
        "sub": draw(_TEXT),
        "aud": draw(st.one_of(_TEXT, st.lists(_TEXT, max_size=3))),
        "repository": draw(_TEXT),
    }
    if draw(st.booleans()):
        result["environment"] = draw(_TEXT)
    return result


@st.composite
def condition_block(
    draw: st.DrawFn, token: dict[str, Any], operators: tuple[str, ...] = POSITIVE + NEGATED
) -> dict[str, dict[str, list[str]]]:
    block: dict[str, dict[str, list[str]]] = {}
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        operator = draw(st.sampled_from(operators))
        key = draw(st.sampled_from(KEYS))
        own = token.get(key)
        candidates = [v for v in (own if isinstance(own, list) else [own]) if isinstance(v, str)]
        value = draw(st.one_of(_PATTERN, st.sampled_from(candidates or [""])))
        block.setdefault(operator, {})[f"{GH}:{key}"] = [value]
    return block


@st.composite
def scenario(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    token = draw(claims())
    statements = [
        {
            "Effect": draw(st.sampled_from(["Allow", "Allow", "Deny"])),
            "Principal": {"Federated": GH_ARN},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": draw(condition_block(token)),
        }
        for _ in range(draw(st.integers(min_value=1, max_value=3)))
    ]
    return {"Version": "2012-10-17", "Statement": statements}, token


def decide(document: dict[str, Any], token: dict[str, Any]) -> Decision:
    request = Request.from_claims(token, provider_arn=GH_ARN)
    return evaluate(parse_policy(document), request).decision


@FAST
@given(subject=_PLAIN, value=_PLAIN)
def test_string_like_without_wildcards_is_string_equals(subject: str, value: str) -> None:
    token = {"iss": f"https://{GH}", "sub": subject, "aud": "a"}

    def with_operator(operator: str) -> Decision:
        statement = {
            "Effect": "Allow",
            "Principal": {"Federated": GH_ARN},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {operator: {f"{GH}:sub": value}},
        }
        return decide({"Version": "2012-10-17", "Statement": [statement]}, token)

    assert with_operator("StringLike") is with_operator("StringEquals")
    assert with_operator("StringNotLike") is with_operator("StringNotEquals")


@FAST
@given(data=scenario(), extra=st.data())
def test_adding_a_deny_never_turns_a_deny_into_an_allow(
    data: tuple[dict[str, Any], dict[str, Any]], extra: st.DataObject
) -> None:
    document, token = data
    before = decide(document, token)
    deny = {
        "Effect": "Deny",
        "Principal": {"Federated": GH_ARN},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": extra.draw(condition_block(token)),
    }
    after = decide({**document, "Statement": [*document["Statement"], deny]}, token)
    if before is not Decision.ALLOW:
        assert after is not Decision.ALLOW


@FAST
@given(data=scenario(), extra=st.data())
def test_adding_a_value_to_an_allow_condition_never_turns_allow_into_deny(
    data: tuple[dict[str, Any], dict[str, Any]], extra: st.DataObject
) -> None:
    # True for the positive operators, where values are ORed; for negated operators a further
    # value is one more thing the request must differ from, so it narrows by design.
    document, token = data
    before = decide(document, token)
    allows = [
        (index, operator, key)
        for index, statement in enumerate(document["Statement"])
        if statement["Effect"] == "Allow"
        for operator, keys in statement["Condition"].items()
        if operator in POSITIVE
        for key in keys
    ]
    if before is not Decision.ALLOW or not allows:
        return
    index, operator, key = extra.draw(st.sampled_from(allows))
    value = extra.draw(_PATTERN)
    statements = [dict(s) for s in document["Statement"]]
    condition = {op: dict(keys) for op, keys in statements[index]["Condition"].items()}
    condition[operator][key] = [*condition[operator][key], value]
    statements[index]["Condition"] = condition
    assert decide({**document, "Statement": statements}, token) is Decision.ALLOW


@FAST
@given(data=scenario())
def test_serialization_round_trip_keeps_the_decision(
    data: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    from keyless.trust.model import dumps_policy, loads_policy

    document, token = data
    policy = parse_policy(document)
    again = loads_policy(dumps_policy(policy))
    assert again == policy
    request = Request.from_claims(token, provider_arn=GH_ARN)
    assert evaluate(again, request).decision is evaluate(policy, request).decision
