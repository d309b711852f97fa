"""keyless.doctor: the named cause of a `sub` that does not match; the steps that need no AWS."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from keyless.aws.sts import RoleArn
from keyless.doctor import Cause, DoctorRequest, Status, classify_subject, diagnose
from tests.sts_stub import ROLE_ARN, stubbed_sts
from tests.unit.ci._fakes import NO_HTTP

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

BB_REPO = "{7a1e0000-0000-4000-8000-00000000000a}"
BB_PROD = "{e0000000-0000-4000-8000-0000000000e1}"
BB_STAGING = "{e0000000-0000-4000-8000-0000000000e2}"
BB_STEP = "{5e000000-0000-4000-8000-000000000005}"


@pytest.mark.parametrize(
    ("actual", "patterns", "cause"),
    [
        ("repo:acme/site:pull_request", ["repo:acme/site:ref:refs/heads/main"], Cause.PULL_REQUEST),
        (
            "repo:acme/site:environment:production",
            ["repo:acme/site:ref:refs/heads/main"],
            Cause.DEPLOYMENT_ENVIRONMENT,
        ),
        (
            "repo:acme/site:ref:refs/heads/main",
            ["repo:acme/site:environment:production"],
            Cause.DEPLOYMENT_ENVIRONMENT,
        ),
        (
            "repo:acme/site:environment:staging",
            ["repo:acme/site:environment:production"],
            Cause.DEPLOYMENT_ENVIRONMENT,
        ),
        ("repo:acme@1/site@2:ref:refs/heads/main", ["repo:acme/site:*"], Cause.IMMUTABLE_SUBJECT),
        ("repo:acme/site:ref:refs/heads/main", ["repo:acme@1/site@2:*"], Cause.IMMUTABLE_SUBJECT),
        (
            "repo:acme/site:environment:prod:job_workflow_ref:acme/w/.github/workflows/d.yml@main",
            ["repo:acme/site:environment:prod"],
            Cause.CUSTOM_SUBJECT,
        ),
        ("repository_owner_id:1:repo:acme/site", ["repo:acme/site:*"], Cause.CUSTOM_SUBJECT),
        ("repo:acme/other:ref:refs/heads/main", ["repo:acme/site:*"], Cause.SUBJECT),
    ],
)
def test_github_subjects(actual: str, patterns: list[str], cause: Cause) -> None:
    found, fix = classify_subject("github", actual, patterns)
    assert found is cause
    assert fix


@pytest.mark.parametrize(
    ("actual", "patterns", "cause"),
    [
        (
            f"{BB_REPO}:{BB_STAGING}:{BB_STEP}",
            [f"{BB_REPO}:{BB_PROD}:*"],
            Cause.DEPLOYMENT_ENVIRONMENT,
        ),
        (f"{BB_REPO}:{BB_STEP}", [f"{BB_REPO}:{BB_PROD}:*"], Cause.DEPLOYMENT_ENVIRONMENT),
        ("{00000000-0000-4000-8000-000000000000}:" + BB_STEP, [f"{BB_REPO}:*"], Cause.SUBJECT),
    ],
)
def test_bitbucket_subjects(actual: str, patterns: list[str], cause: Cause) -> None:
    found, _fix = classify_subject("bitbucket", actual, patterns)
    assert found is cause


def test_other_cis_get_the_generic_cause() -> None:
    assert classify_subject(None, "x", ["y"])[0] is Cause.SUBJECT


def _no_iam() -> IAMClient | None:
    return None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BITBUCKET_BUILD_NUMBER": "42"}, "oidc: true"),
        ({"GITHUB_ACTIONS": "true"}, "id-token: write"),
    ],
)
def test_a_job_without_oidc_is_the_named_cause(env: dict[str, str], named: str) -> None:
    with stubbed_sts() as stub:
        report = diagnose(
            DoctorRequest(env=env, role_arn=RoleArn(ROLE_ARN)),
            http=NO_HTTP,
            sts=stub.sts,
            iam=_no_iam,
        )
    assert not report.ok
    assert report.causes == (Cause.OIDC_NOT_ENABLED,)
    token = next(step for step in report.steps if step.name == "token")
    assert token.status is Status.PROBLEM
    assert token.fix is not None
    assert named in token.fix
    # Everything after the token is skipped, with the reason; STS is never called.
    assert all(step.status is Status.SKIPPED for step in report.steps[2:])
    assert report.to_json()["cause"] == "oidc-not-enabled"


def test_outside_any_ci_the_cause_is_no_ci() -> None:
    with stubbed_sts() as stub:
        report = diagnose(DoctorRequest(env={}), http=NO_HTTP, sts=stub.sts, iam=_no_iam)
    assert report.causes == (Cause.NO_CI,)
    assert [step.status for step in report.steps].count(Status.PROBLEM) == 1
