"""Who can assume a role, in each CI's own words (``Provider.describe_subject``), and the generic
words for an issuer keyless does not know or a `sub` of another shape."""

from __future__ import annotations

import pytest

from keyless.audit.who import who_can_assume
from keyless.trust.model import parse_policy
from tests.unit.audit.dumps import ACCOUNT, trust

BB = "api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
ORG = "8f7c0e4a-1b2c-4d3e-9f00-0123456789ab"
PROJECT = "3c1d2e3f-4a5b-4c6d-8e7f-0123456789ab"
CC = f"oidc.circleci.com/org/{ORG}"
REPO = "{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0}"
ENVIRONMENT = "{11111111-2222-3333-4444-555555555555}"

CASES = (
    (
        "token.actions.githubusercontent.com",
        "repo:acme/site:ref:refs/tags/v*",
        "tags matching v* of acme/site",
    ),
    (
        "token.actions.githubusercontent.com",
        "repo:acme/*",
        "any workflow run of any repository in org acme",
    ),
    ("gitlab.com", "project_path:acme/site:ref_type:tag:ref:*", "any tag of project acme/site"),
    (
        "gitlab.com",
        "project_path:acme/site:ref_type:*:ref:main",
        "branch or tag main (either ref type) of project acme/site",
    ),
    (BB, f"{REPO}:{ENVIRONMENT}:*", f"deployment environment {ENVIRONMENT} of repository {REPO}"),
    (BB, "*", "any step of any repository of workspace acme"),
    (
        CC,
        f"org/{ORG}/project/{PROJECT}/user/*",
        f"any job of project {PROJECT} of organization {ORG}",
    ),
    (CC, f"org/{ORG}/project/*", f"any job of any project of organization {ORG}"),
    (
        "agent.buildkite.com",
        "organization:acme:pipeline:*",
        "any build of any pipeline of organization acme",
    ),
    ("oidc.example.com", "deploy-*", "subjects matching deploy-* from oidc.example.com"),
    (
        "token.actions.githubusercontent.com",
        "octo",
        "subject octo from token.actions.githubusercontent.com",
    ),
)


@pytest.mark.parametrize(("issuer", "subject", "words"), CASES)
def test_each_ci_states_its_subjects_in_its_own_words(
    issuer: str, subject: str, words: str
) -> None:
    condition = {"StringLike": {f"{issuer}:sub": subject, f"{issuer}:aud": "sts.amazonaws.com"}}
    policy = parse_policy(trust(issuer, condition, account=ACCOUNT))
    assert [identity.words for identity in who_can_assume(policy)] == [words]
