"""Depth and size limits on every JSON document keyless parses: at the limit it parses, one past
it is a one-line error naming the limit, never a RecursionError."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyless import tokens
from keyless.errors import PolicyError, TokenVerificationError
from keyless.jsonlimits import JsonLimitError, check_json_limits, json_depth, loads_bounded
from keyless.limits import (
    DOCUMENT_MAX_CHARS,
    JSON_MAX_DEPTH,
    POLICY_MAX_STATEMENTS,
    POLICY_MAX_VALUES,
    POLICY_VALUE_MAX_CHARS,
)
from keyless.trust.model import loads_policy


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [{"b": "[[[["}]}', 3),  # brackets inside strings do not count
        ('["\\"[[["]', 1),  # nor after an escaped quote
        ('["unterminated [[[', 1),
    ],
)
def test_depth_counts_brackets_outside_strings(text: str, depth: int) -> None:
    assert json_depth(text) == depth


def _reference_depth(text: str) -> int:
    """Character by character: the definition json_depth implements faster."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


@given(st.text(alphabet='[]{}"\\a\n', max_size=60))
def test_depth_equals_the_character_by_character_definition(text: str) -> None:
    assert json_depth(text) == _reference_depth(text)


def test_at_the_depth_limit_it_parses_and_one_more_is_refused() -> None:
    assert loads_bounded(nested(JSON_MAX_DEPTH)) is not None
    with pytest.raises(JsonLimitError, match=f"more than {JSON_MAX_DEPTH} levels"):
        loads_bounded(nested(JSON_MAX_DEPTH + 1))


def test_a_document_over_the_size_limit_is_refused() -> None:
    check_json_limits(" " * DOCUMENT_MAX_CHARS)
    with pytest.raises(JsonLimitError, match=str(DOCUMENT_MAX_CHARS)):
        check_json_limits(" " * (DOCUMENT_MAX_CHARS + 1))


def _policy(statements: list[object]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _statement(values: object = "x", action: object = "sts:AssumeRoleWithWebIdentity") -> object:
    return {
        "Effect": "Allow",
        "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/example.com"},
        "Action": action,
        "Condition": {"StringLike": {"example.com:sub": values}},
    }


def test_a_100k_deep_policy_is_a_policy_error_naming_the_limit() -> None:
    with pytest.raises(PolicyError, match=f"more than {JSON_MAX_DEPTH} levels") as caught:
        loads_policy(nested(100_000))
    assert "\n" not in caught.value.message


def test_a_policy_at_the_depth_limit_parses_as_json() -> None:
    # Deep but within the limit: json parses it, and the grammar check names the problem.
    with pytest.raises(PolicyError, match="must be a JSON object"):
        loads_policy(nested(JSON_MAX_DEPTH))


def test_statement_value_and_length_limits() -> None:
    loads_policy(_policy([_statement()] * POLICY_MAX_STATEMENTS))
    with pytest.raises(PolicyError, match=f"more than the {POLICY_MAX_STATEMENTS}"):
        loads_policy(_policy([_statement()] * (POLICY_MAX_STATEMENTS + 1)))
    loads_policy(_policy([_statement(["v"] * POLICY_MAX_VALUES)]))
    with pytest.raises(PolicyError, match=f"more than the {POLICY_MAX_VALUES}"):
        loads_policy(_policy([_statement(["v"] * (POLICY_MAX_VALUES + 1))]))
    loads_policy(_policy([_statement("*" * POLICY_VALUE_MAX_CHARS)]))
    with pytest.raises(PolicyError, match=rf"Condition.*more than the {POLICY_VALUE_MAX_CHARS}"):
        loads_policy(_policy([_statement("*" * (POLICY_VALUE_MAX_CHARS + 1))]))
    with pytest.raises(PolicyError, match=r"Action.*more than"):
        loads_policy(_policy([_statement(action="*" * (POLICY_VALUE_MAX_CHARS + 1))]))


def test_an_integer_python_will_not_convert_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="not valid JSON"):
        loads_policy('{"Version": ' + "1" * 5000 + "}")


def _b64(data: str) -> str:
    return base64.urlsafe_b64encode(data.encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("depth", [JSON_MAX_DEPTH + 1, 900, 5000])
def test_a_deep_token_payload_is_a_token_error(depth: int) -> None:
    # 900 levels parse under Python's recursion limit, and freezing them then overflowed it.
    raw = ".".join((_b64('{"alg":"RS256"}'), _b64('{"a":' + nested(depth) + "}"), _b64("s")))
    with pytest.raises(TokenVerificationError, match=f"more than {JSON_MAX_DEPTH} levels"):
        tokens.peek(raw)


def test_a_token_payload_at_the_depth_limit_is_read() -> None:
    payload = '{"a":' + nested(JSON_MAX_DEPTH - 1) + "}"
    raw = ".".join((_b64('{"alg":"RS256"}'), _b64(payload), _b64("s")))
    assert "a" in tokens.peek(raw).claims
