"""Parsing IAM policy JSON: exact error locations, stable serialization."""

from __future__ import annotations

import json

import pytest

from keyless.errors import PolicyError
from keyless.trust.model import (
    Effect,
    PolicyVersion,
    dumps_policy,
    loads_policy,
    parse_policy,
)

GITHUB = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"


def _doc(**statement: object) -> dict[str, object]:
    base: dict[str, object] = {
        "Effect": "Allow",
        "Principal": {"Federated": GITHUB},
        "Action": "sts:AssumeRoleWithWebIdentity",
    }
    base.update(statement)
    return {"Version": "2012-10-17", "Statement": [base]}


def test_parses_statement_object_and_list_alike() -> None:
    as_list = parse_policy(_doc())
    statement = _doc()["Statement"]
    assert isinstance(statement, list)
    as_object = parse_policy({"Version": "2012-10-17", "Statement": statement[0]})
    assert as_list == as_object
    assert as_object.statements[0].location == "Statement"
    assert as_list.statements[0].location == "Statement[0]"
    assert as_list.version is PolicyVersion.V2012_10_17
    assert as_list.statements[0].effect is Effect.ALLOW
    assert as_list.statements[0].federated == (GITHUB,)


def test_round_trip_is_stable() -> None:
    doc = _doc(
        Sid="Deploy",
        Condition={
            "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
            "StringLike": {"token.actions.githubusercontent.com:sub": ["repo:o/r:*", "x"]},
            "Bool": {"aws:SecureTransport": True},
            "NumericLessThan": {"k": 5},
        },
    )
    policy = parse_policy(doc)
    text = dumps_policy(policy)
    assert loads_policy(text) == policy
    assert dumps_policy(loads_policy(text)) == text
    assert json.loads(text)["Statement"][0]["Condition"]["Bool"] == {"aws:SecureTransport": True}
    condition = policy.statements[0].conditions
    assert condition is not None
    assert condition[2].string_values == ("true",)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "policy: must be a JSON object, not a list"),
        ({"Version": "2012-10-17"}, "policy: no Statement element"),
        ({"Version": "2021-01-01", "Statement": []}, "Version: '2021-01-01'"),
        ({"statement": []}, "unknown element 'statement' (element names are case-sensitive"),
        ({"Statement": "x"}, "Statement: must be an object or a list"),
        ({"Statement": [{"Action": "x"}]}, "Statement[0]: no Effect element"),
        ({"Statement": [{"Effect": "allow", "Action": "x"}]}, "Statement[0].Effect: 'allow'"),
        ({"Statement": [{"Effect": "Allow"}]}, "exactly one of Action and NotAction"),
        (
            {"Statement": [{"Effect": "Allow", "Action": "x", "NotAction": "y"}]},
            "exactly one of Action and NotAction",
        ),
        ({"Statement": [{"Effect": "Allow", "Action": []}]}, "Statement[0].Action: an empty list"),
        ({"Statement": [{"Effect": "Allow", "Action": [1]}]}, "Statement[0].Action[0]: must be"),
        (
            {"Statement": [{"Effect": "Allow", "Action": "x", "Principal": "arn:aws:iam::1:root"}]},
            'a string principal must be "*"',
        ),
        (
            {"Statement": [{"Effect": "Allow", "Action": "x", "Principal": {"Fed": "y"}}]},
            "Statement[0].Principal: unknown principal type 'Fed'",
        ),
        (
            {
                "Statement": [
                    {"Effect": "Allow", "Action": "x"},
                    {"Effect": "Allow", "Action": "x", "Condition": {"StringEqual": {"k": "v"}}},
                ]
            },
            "Statement[1].Condition.StringEqual: unknown condition operator 'StringEqual'",
        ),
        (
            {"Statement": [{"Effect": "Allow", "Action": "x", "Condition": {"StringLike": {}}}]},
            "Statement[0].Condition.StringLike: no condition keys",
        ),
        (
            {
                "Statement": [
                    {"Effect": "Allow", "Action": "x", "Condition": {"StringLike": {"k": []}}}
                ]
            },
            'Statement[0].Condition.StringLike["k"]: an empty list of values',
        ),
        (
            {
                "Statement": [
                    {"Effect": "Allow", "Action": "x", "Condition": {"StringLike": {"k": None}}}
                ]
            },
            "a condition value must be a string, number or boolean",
        ),
        (
            {
                "Statement": [
                    {"Effect": "Allow", "Action": "x", "Condition": {"NumericEquals": {"k": "a"}}}
                ]
            },
            "'a' is not a number",
        ),
        (
            {
                "Statement": [
                    {"Effect": "Allow", "Action": "x", "Condition": {"NullIfExists": {"k": "true"}}}
                ]
            },
            "Null takes no qualifiers",
        ),
        (
            {
                "Statement": [
                    {"Sid": "A", "Effect": "Allow", "Action": "x"},
                    {"Sid": "A", "Effect": "Deny", "Action": "x"},
                ]
            },
            "Sid 'A' is used more than once",
        ),
    ],
)
def test_errors_name_the_location(document: object, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(document)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_duplicate_json_keys_are_refused_with_location() -> None:
    text = (
        '{"Statement": [{"Effect": "Allow", "Action": "x", "Condition":'
        ' {"StringLike": {"k": "a"}, "StringLike": {"k": "*"}}}]}'
    )
    with pytest.raises(PolicyError, match=r"Statement\[0\]\.Condition: key 'StringLike' appears"):
        loads_policy(text)


def test_bad_json_names_line_and_column() -> None:
    with pytest.raises(PolicyError, match="line 3, column 1"):
        loads_policy('{\n "Statement": [\n}')


def test_operator_names_are_case_sensitive_with_a_hint() -> None:
    with pytest.raises(PolicyError, match="did you mean 'StringLike'"):
        parse_policy(_doc(Condition={"stringlike": {"k": "v"}}))


def test_empty_condition_block_is_kept_distinct_from_none() -> None:
    assert parse_policy(_doc(Condition={})).statements[0].conditions == ()
    assert parse_policy(_doc()).statements[0].conditions is None


def test_variables_skip_typed_validation_only_where_allowed() -> None:
    parse_policy(_doc(Condition={"StringEquals": {"k": "${aws:username}"}}))
    with pytest.raises(PolicyError):
        parse_policy(_doc(Condition={"NumericEquals": {"k": "${aws:username}"}}))
