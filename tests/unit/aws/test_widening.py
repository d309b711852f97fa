"""A trust change widens who can assume the role when a token the new trust admits is refused by
the current one; the witness shows which."""

from __future__ import annotations

from typing import Any

import pytest

from keyless.aws.widening import find_widening
from keyless.trust.model import Policy, parse_policy

PREFIX = "token.actions.githubusercontent.com"
ARN = f"arn:aws:iam::123456789012:oidc-provider/{PREFIX}"
OTHER_ARN = "arn:aws:iam::123456789012:oidc-provider/gitlab.com"


def trust(
    *conditions: tuple[str, str, Any],
    principal: str = ARN,
    effect: str = "Allow",
    prefix: str = PREFIX,
) -> dict[str, Any]:
    block: dict[str, dict[str, Any]] = {}
    for operator, claim, values in conditions:
        block.setdefault(operator, {})[f"{prefix}:{claim}"] = values
    return {
        "Effect": effect,
        "Principal": {"Federated": principal},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": block,
    }


def policy(*statements: dict[str, Any]) -> Policy:
    return parse_policy({"Version": "2012-10-17", "Statement": list(statements)})


AUD = ("StringEquals", "aud", "sts.amazonaws.com")
MAIN = ("StringEquals", "sub", "repo:acme/site:ref:refs/heads/main")
PROD = ("StringEquals", "sub", "repo:acme/site:environment:prod")
ANY_REF = ("StringLike", "sub", "repo:acme/site:*")
ANY_BRANCH = ("StringLike", "sub", "repo:acme/site:ref:refs/heads/*")


@pytest.mark.parametrize(
    ("current", "new", "witness_sub"),
    [
        (policy(trust(AUD, MAIN)), policy(trust(AUD, ANY_REF)), "repo:acme/site:x"),
        (
            policy(trust(AUD, MAIN)),
            policy(trust(AUD, ANY_BRANCH)),
            "repo:acme/site:ref:refs/heads/x",
        ),
        (policy(trust(AUD, MAIN)), policy(trust(AUD, MAIN), trust(AUD, PROD)), PROD[2]),
        (
            policy(trust(AUD, MAIN)),
            policy(trust(AUD, ("StringEquals", "sub", [MAIN[2], PROD[2]]))),
            PROD[2],
        ),
        (
            policy(trust(AUD, ("StringLike", "sub", "repo:acme/site:ref:*"))),
            policy(trust(AUD, ANY_REF)),
            "repo:acme/site:x",
        ),
    ],
)
def test_wider_subjects_are_found(current: Policy, new: Policy, witness_sub: str) -> None:
    found = find_widening(current, new)
    assert found is not None
    assert found.claims["sub"] == witness_sub
    assert "expects" in found.current_reason


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (policy(trust(AUD, ANY_REF)), policy(trust(AUD, MAIN))),
        (policy(trust(AUD, MAIN)), policy(trust(AUD, MAIN))),
        (policy(trust(AUD, MAIN), trust(AUD, PROD)), policy(trust(AUD, PROD))),
        (
            policy(trust(AUD, ANY_BRANCH)),
            policy(trust(AUD, MAIN, ("StringLike", "sub", "repo:acme/*"))),
        ),
    ],
)
def test_same_or_narrower_is_not_a_widening(current: Policy, new: Policy) -> None:
    assert find_widening(current, new) is None


def test_dropping_the_audience_pin_is_a_widening() -> None:
    found = find_widening(policy(trust(AUD, MAIN)), policy(trust(MAIN)))
    assert found is not None
    assert found.claims["aud"] != "sts.amazonaws.com"


def test_another_issuer_is_a_widening() -> None:
    gitlab = trust(AUD, MAIN, principal=OTHER_ARN, prefix="gitlab.com")
    found = find_widening(policy(trust(AUD, MAIN)), policy(trust(AUD, MAIN), gitlab))
    assert found is not None
    assert found.issuer == "https://gitlab.com"


def test_a_deny_that_is_removed_is_found_through_the_allow_it_limited() -> None:
    deny = trust(("StringEquals", "sub", "repo:acme/site:ref:refs/heads/x"), effect="Deny")
    found = find_widening(policy(trust(AUD, ANY_BRANCH), deny), policy(trust(AUD, ANY_BRANCH)))
    assert found is not None
    assert "explicit" in found.current_reason.lower() or "deny" in found.current_reason.lower()


def test_iam_escapes_are_literal_characters() -> None:
    literal = ("StringLike", "sub", "repo:acme/site:ref:refs/heads/a${*}")
    # The new trust admits exactly the branch named "a*", which the current one also admits.
    assert find_widening(policy(trust(AUD, ANY_BRANCH)), policy(trust(AUD, literal))) is None


def test_the_witness_describes_itself() -> None:
    found = find_widening(policy(trust(AUD, MAIN)), policy(trust(AUD, ANY_REF)))
    assert found is not None
    assert found.describe() == (
        f"a token from https://{PREFIX} with aud='sts.amazonaws.com', sub='repo:acme/site:x'"
    )
    assert found.to_json()["claims"] == {"aud": "sts.amazonaws.com", "sub": "repo:acme/site:x"}
