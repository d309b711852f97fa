"""Fuzzing policy parsing, evaluation and lint (see ``tests.unit.fuzz`` for the example count):
random documents and hostile ``*``/``?`` patterns up to the limits. Only ``KeylessError``
escapes, every match stays within its counted bound, and the matcher agrees with a brute-force
reference on short inputs."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from keyless.errors import KeylessError
from keyless.limits import JSON_MAX_DEPTH, POLICY_VALUE_MAX_CHARS
from keyless.local.pipeline.branch_patterns import branch_glob
from keyless.trust import work
from keyless.trust.context import variable_default
from keyless.trust.evaluate import evaluate
from keyless.trust.glob import compile_glob
from keyless.trust.lint import lint
from keyless.trust.model import loads_policy
from keyless.trust.operators import OPERATORS
from keyless.trust.verdict import Request
from tests.hang_guard import within_guard
from tests.unit.fuzz import fuzz
from tests.unit.trust.test_glob import reference

GH = "token.actions.githubusercontent.com"
PROVIDER = f"arn:aws:iam::123456789012:oidc-provider/{GH}"

short_pattern = st.text(alphabet="ab*?", max_size=8)
short_text = st.text(alphabet="ab", max_size=10)


@fuzz
@given(short_pattern, short_text)
@example("ab*ba", "aba")  # the first and last segments would overlap
@example("*", "")
@example("a?*?a", "aaa")
@example("*ab*ab*", "aab")  # adjacent segments
def test_matcher_agrees_with_the_reference(pattern: str, text: str) -> None:
    glob = compile_glob(pattern)
    matched, steps = glob.match_counted(text)
    assert matched is reference(pattern, text)
    assert steps <= glob.bound(len(text))


# Patterns built from segments (with and without `?`) and texts built from pieces of them, so
# that segments often occur, overlap, sit next to each other or just fail to fit.
segment = st.text(alphabet="ab?", max_size=4)
segmented_pattern = st.builds(
    lambda parts, head, tail: ("*" if head else "") + "*".join(parts) + ("*" if tail else ""),
    st.lists(segment, max_size=5),
    st.booleans(),
    st.booleans(),
)
piece_text = st.builds(
    "".join, st.lists(st.sampled_from(["", "a", "b", "ab", "ba", "aab"]), max_size=8)
)


@fuzz
@given(segmented_pattern, piece_text)
def test_segmented_patterns_agree_with_the_reference(pattern: str, text: str) -> None:
    glob = compile_glob(pattern)
    matched, steps = glob.match_counted(text)
    assert matched is reference(pattern, text)
    assert steps <= glob.bound(len(text))


hostile_pattern = st.builds(
    lambda parts: "".join(parts)[:POLICY_VALUE_MAX_CHARS],
    st.lists(st.sampled_from(["*", "?", "a", "b", "repo:", ":", "*" * 50, "a" * 50]), max_size=200),
)
hostile_text = st.builds(
    lambda unit, count: (unit * count)[:2000],
    st.sampled_from(["a", "ab", "b", "repo:a"]),
    st.integers(0, 2000),
)


@fuzz
@given(hostile_pattern, hostile_text)
def test_hostile_patterns_stay_within_the_bound(pattern: str, text: str) -> None:
    glob = compile_glob(pattern)
    _, steps = glob.match_counted(text)
    assert steps <= glob.bound(len(text))


json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_value = st.recursive(
    json_scalar,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
operator_name = st.sampled_from(
    [*OPERATORS, "ForAnyValue:StringLike", "StringLikeIfExists", "Nope"]
)
condition_value = st.one_of(hostile_pattern, st.integers(), st.booleans(), json_value)


def _statement(op: str, key: str, value: Any, effect: str, action: Any) -> dict[str, Any]:
    return {
        "Effect": effect,
        "Principal": {"Federated": PROVIDER},
        "Action": action,
        "Condition": {op: {key: value}},
    }


statement = st.builds(
    _statement,
    operator_name,
    st.sampled_from([f"{GH}:sub", f"{GH}:aud", "aws:SourceIp", f"{GH}:ref"]),
    condition_value,
    st.sampled_from(["Allow", "Deny", "Maybe"]),
    st.one_of(st.just("sts:AssumeRoleWithWebIdentity"), hostile_pattern, json_value),
)
document = st.one_of(
    st.builds(
        lambda version, statements: {"Version": version, "Statement": statements},
        st.sampled_from(["2012-10-17", "2008-10-17"]),
        st.lists(statement, min_size=1, max_size=5),
    ),
    json_value,
)
claims = st.fixed_dictionaries(
    {"iss": st.just(f"https://{GH}"), "sub": hostile_text, "aud": st.just("sts.amazonaws.com")},
    optional={"ref": json_value, "sub_list": st.lists(st.text(max_size=5))},
)


@fuzz
@given(document=document, request_claims=claims)
def test_only_keyless_errors_escape_and_work_is_bounded(
    document: Any, request_claims: dict[str, Any]
) -> None:
    text = json.dumps(document)
    with work.counted() as done:
        try:
            policy = loads_policy(text)
            evaluate(policy, Request.from_claims(request_claims))
            lint(policy)
        except KeylessError:
            pass
    assert all(steps <= bound for steps, bound in done.matches)


@fuzz
@given(st.text(alphabet='[]{}"\\,:1 a', max_size=400))
def test_any_text_is_a_policy_or_a_policy_error(text: str) -> None:
    with contextlib.suppress(KeylessError):
        loads_policy(text)


@fuzz
@given(st.integers(0, 3 * JSON_MAX_DEPTH), st.sampled_from("[{"))
def test_any_depth_is_a_policy_or_a_policy_error(depth: int, bracket: str) -> None:
    inner = '{"a":' * depth + "1" + "}" * depth if bracket == "{" else "[" * depth + "]" * depth
    with pytest.raises(KeylessError):
        loads_policy(inner)


_DEFAULT_REGEX = re.compile(r"\s*([^,]+?)\s*,\s*'([^']*)'\s*")


@fuzz
@given(st.text(alphabet=" \t\u2003,'ab", max_size=12))
def test_variable_default_reads_like_the_regex_it_replaces(inner: str) -> None:
    match = _DEFAULT_REGEX.fullmatch(inner)
    assert variable_default(inner) == (match.groups() if match else None)


def test_a_variable_of_5000_spaces_is_read_in_linear_time() -> None:
    # The regex took cubic time here (2,000 spaces: 11 s; 5,000: minutes).
    assert within_guard(lambda: variable_default(" " * 5000 + ", 'x'")) == (" ", "x")
    assert within_guard(lambda: variable_default(" " * 5000)) is None


def _branch_regex(pattern: str) -> re.Pattern[str]:
    """The regex the pipeline runner used for branch globs (reference on short inputs)."""
    out, index = [], 0
    while index < len(pattern):
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        char = pattern[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "{" and "}" in pattern[index:]:
            end = pattern.index("}", index)
            out.append("(?:" + "|".join(map(re.escape, pattern[index + 1 : end].split(","))) + ")")
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out))


branch_pattern = st.lists(
    st.sampled_from(["a", "b", "/", "*", "**", "?", "{a,b}", "{,a/}", "{", "}", ","]), max_size=6
).map("".join)


@fuzz
@given(branch_pattern, st.text(alphabet="ab/", max_size=8))
def test_branch_globs_match_like_the_regex(pattern: str, branch: str) -> None:
    assert branch_glob(pattern).fullmatch(branch) is bool(_branch_regex(pattern).fullmatch(branch))


def test_a_hostile_branch_glob_is_matched_in_bounded_time() -> None:
    # `*a` ten times then `b` against 40 characters: the regex took 39 s.
    assert within_guard(lambda: branch_glob("*a" * 200 + "b").fullmatch("a" * 2000)) is False
