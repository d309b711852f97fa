"""Lint's own pattern analysis stays polynomial on hostile input: the work is counted (glob
steps against their bound, subject shapes per value), never timed."""

from __future__ import annotations

from typing import Any

import pytest

from keyless.trust import work
from keyless.trust.lint import lint
from keyless.trust.model import parse_policy

GH = "token.actions.githubusercontent.com"
GL = "gitlab.com"


def _policy(prefix: str, values: list[str], statements: int = 1) -> dict[str, Any]:
    statement = {
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{prefix}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringLike": {f"{prefix}:sub": values}},
    }
    return {"Version": "2012-10-17", "Statement": [statement] * statements}


HOSTILE = [
    "repo:" + "*?" * 4997,
    "repo:acme/app:" + "a*" * 4993,
    "project_path:" + "?*a" * 3329,
    "*" * 10_000,
    "repo:" + ("a" * 40 + "*") * 243,
]


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: f"{v[:16]}..({len(v)})")
@pytest.mark.parametrize("prefix", [GH, GL])
def test_a_10000_character_value_with_many_wildcards_takes_bounded_work(
    prefix: str, value: str
) -> None:
    assert len(value) >= 9_000
    with work.counted() as counting:
        findings = lint(parse_policy(_policy(prefix, [value])))
    assert findings  # a value this loose is reported
    # The glob runs in at most (tokens + 1) * (text + 1) steps: polynomial, never exponential.
    assert counting.steps <= counting.bound
    # ... against the grammar's probe subject (under 100 characters): linear in the value.
    assert counting.bound <= counting.shapes * (len(value) + 1) * 100
    # Each value is shaped a bounded number of times (once per rule that reads subjects).
    assert counting.shapes <= 16


def test_a_1000_statement_policy_shapes_each_value_a_bounded_number_of_times() -> None:
    with work.counted() as counting:
        findings = lint(parse_policy(_policy(GH, ["repo:acme/app:*"], statements=1000)))
    assert len({f.statement for f in findings}) == 1000
    # Linear in the statements: every rule that reads `sub` shapes each statement's value once.
    assert counting.shapes <= 1000 * 16
