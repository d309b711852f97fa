"""IAM's ``*``/``?`` matcher: the answers of a full-match regex, in work bounded by the product
of the lengths (counted in steps, never timed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from keyless.limits import MATCH_TEXT_MAX_CHARS
from keyless.trust import work
from keyless.trust.evaluate import evaluate
from keyless.trust.glob import compile_glob, glob_of
from keyless.trust.lint import lint
from keyless.trust.model import loads_policy, parse_policy
from keyless.trust.operators import Chunk, pattern_glob
from keyless.trust.verdict import Request
from tests.hang_guard import within_guard

GH = "token.actions.githubusercontent.com"
SUB_405 = "repo:" + "b" * 400  # the 405-character subject of the reproduction


def reference(pattern: str, text: str) -> bool:
    """Whether ``text`` matches, by dynamic programming over every prefix pair (no regex)."""
    rows = [[False] * (len(text) + 1) for _ in range(len(pattern) + 1)]
    rows[0][0] = True
    for i, token in enumerate(pattern, start=1):
        rows[i][0] = rows[i - 1][0] and token == "*"
        for j, char in enumerate(text, start=1):
            if token == "*":
                rows[i][j] = rows[i - 1][j] or rows[i][j - 1]
            else:
                rows[i][j] = rows[i - 1][j - 1] and token in ("?", char)
    return rows[-1][-1]


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("", "", True),
        ("*", "", True),
        ("?", "", False),
        ("repo:acme/*", "repo:acme/app:ref:refs/heads/main", True),
        ("repo:acme/*:ref:*", "repo:acme/app:environment:prod", False),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("*a", "A", False),  # case-sensitive
        ("a*b*c", "a/b:c", True),  # `*` crosses / and :
        ("**", "anything", True),
        ("**", "", True),
        # The first and last segments are anchored and may not overlap.
        ("ab*ba", "aba", False),
        ("ab*ba", "abba", True),
        ("ab*ba", "ababa", True),
        ("a*a", "a", False),
        ("a*a", "aa", True),
        ("?*?", "a", False),
        ("?*?", "ab", True),
        ("a?*?a", "aaa", False),
        ("a?*?a", "aaaa", True),
        # Middle segments in order, each after the previous one.
        ("*ab*ab*", "abab", True),
        ("*ab*ab*", "aab", False),
        ("*ab*ba*", "aba", False),
        ("*ab*ba*", "abba", True),
        ("x*a?c*c?a*y", "xabcbay", False),
        ("x*a?c*c?a*y", "xabccbay", True),
        ("*?b?*", "ab", False),
        ("*?b?*", "abc", True),
        ("*??*", "a", False),
        ("*a??b*", "abba", False),
        ("*a??b*", "aaabb", True),
    ],
)
def test_matches_like_iam(pattern: str, text: str, expected: bool) -> None:
    assert compile_glob(pattern).match(text) is expected
    assert reference(pattern, text) is expected


def test_a_variable_value_is_literal_text() -> None:
    # ${*} and a resolved variable are inactive chunks: their `*` and `?` match only themselves.
    glob = pattern_glob((Chunk("repo:"), Chunk("a*?", active=False), Chunk(":*")))
    assert glob.match("repo:a*?:x")
    assert not glob.match("repo:abc:x")


def test_star_runs_collapse() -> None:
    assert compile_glob("repo:" + "*" * 5000 + "a").tokens == (
        *tuple("repo:"),
        compile_glob("*").tokens[0],
        "a",
    )


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("repo:" + "*" * 5000 + "a", SUB_405),
        ("repo:*****a", SUB_405),
        ("*a*a*a*a*a*a*a*a*b", "a" * 2000),
        ("*" + "a" * 300 + "b", "a" * 2000),  # the greedy algorithm's own worst case
        ("*?" * 50 + "b", "a" * 2000),
    ],
)
def test_hostile_patterns_take_at_most_the_bound(pattern: str, text: str) -> None:
    glob = compile_glob(pattern)
    matched, steps = within_guard(lambda: glob.match_counted(text))
    assert matched is False
    assert steps <= glob.bound(len(text))


def _github_policy(sub: str, operator: str = "StringLike") -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{GH}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{GH}:aud": "sts.amazonaws.com"},
                    operator: {f"{GH}:sub": sub},
                },
            }
        ],
    }


@pytest.fixture
def counted() -> Iterator[list[tuple[int, int]]]:
    """Every match made, as (steps, bound)."""
    with work.counted() as recorded:
        yield recorded.matches


def test_lint_of_5000_stars_is_bounded(counted: list[tuple[int, int]]) -> None:
    policy = parse_policy(_github_policy("repo:" + "*" * 5000 + "a"))
    findings = within_guard(lambda: lint(policy))
    assert any(f.rule == "subject-wildcard-tenant" for f in findings)
    assert counted, "lint matched no pattern"
    assert all(steps <= bound for steps, bound in counted)
    assert sum(steps for steps, _ in counted) < 1000  # the collapsed pattern is `repo:*a`


def test_trust_check_of_five_stars_against_405_characters_is_bounded(
    counted: list[tuple[int, int]],
) -> None:
    policy = parse_policy(_github_policy("repo:*****a"))
    claims = {"iss": f"https://{GH}", "aud": "sts.amazonaws.com", "sub": SUB_405}
    result = within_guard(lambda: evaluate(policy, Request.from_claims(claims)))
    assert not result.allowed
    assert counted
    assert all(steps <= bound for steps, bound in counted)


def test_a_request_value_longer_than_any_token_is_not_knowable() -> None:
    policy = parse_policy(_github_policy("repo:*"))
    claims = {"iss": f"https://{GH}", "aud": "sts.amazonaws.com"}
    claims["sub"] = "repo:" + "a" * MATCH_TEXT_MAX_CHARS
    assert not evaluate(policy, Request.from_claims(claims)).allowed
    claims["sub"] = "repo:" + "a" * (MATCH_TEXT_MAX_CHARS - 5)
    assert evaluate(policy, Request.from_claims(claims)).allowed


def test_a_literal_nul_star_is_not_a_wildcard() -> None:
    # The tokens "\x00" and "*" of a variable's value are two characters, never STAR.
    glob = glob_of((("\x00*", False), ("?", True)))
    assert glob.match("\x00*x")
    assert not glob.match("\x00yx")
    assert not glob.match("\x00*")


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("*" + "a" * 5000 + "b", "a" * 10_000),  # 25 million steps before segments were found
        ("*" + "a" * 5000 + "b*", "a" * 10_000),  # by str.find
        ("a" * 5000 + "*b", "a" * 10_000),
        ("*" + "a" * 2499 + "?" + "a" * 2500 + "b*", "a" * 10_000),  # by its longest run
        ("*a*a*a*a*a*a*a*a*b", "a" * 2000),
    ],
)
def test_segments_without_short_runs_take_linear_steps(pattern: str, text: str) -> None:
    glob = compile_glob(pattern)
    matched, steps = within_guard(lambda: glob.match_counted(text))
    assert matched is False
    assert steps <= 2 * (len(glob.tokens) + len(text) + 1)


def test_a_segment_of_one_character_runs_stays_within_the_bound() -> None:
    # Every `a` is a candidate for `a?a?...b`; each is checked, counted, and the bound holds.
    glob = compile_glob("*" + "a?" * 250 + "b*")
    matched, steps = within_guard(lambda: glob.match_counted("a" * 1000))
    assert matched is False
    assert 250 * 250 < steps <= glob.bound(1000)
    assert glob.match("a" * 600 + "b" + "a" * 10)


def test_glob_of_keeps_inactive_stars() -> None:
    assert glob_of((("*", False), ("*", True))).tokens == ("*", compile_glob("*").tokens[0])


def test_policy_text_round_trip_keeps_matching() -> None:
    text = json.dumps(_github_policy("repo:acme/*:ref:refs/heads/main"))
    claims = {
        "iss": f"https://{GH}",
        "aud": "sts.amazonaws.com",
        "sub": "repo:acme/app:ref:refs/heads/main",
    }
    assert evaluate(loads_policy(text), Request.from_claims(claims)).allowed
