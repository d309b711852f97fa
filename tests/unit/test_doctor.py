"""keyless.doctor: the named cause of a `sub` that does not match; the steps that need no AWS."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from keyless.arn import RoleArn
from keyless.doctor import Cause, DoctorRequest, Status, classify_subject, diagnose
from keyless.errors import NetworkError
from keyless.http import HttpResponse
from keyless.testing import NO_HTTP
from keyless.trust.glob import compile_glob
from tests.sts_stub import ROLE_ARN, stubbed_sts

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
        ("repo:acme/other:ref:refs/heads/main", ["repo:acme/site:*"], Cause.REPOSITORY),
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
        ("{00000000-0000-4000-8000-000000000000}:" + BB_STEP, [f"{BB_REPO}:*"], Cause.REPOSITORY),
    ],
)
def test_bitbucket_subjects(actual: str, patterns: list[str], cause: Cause) -> None:
    found, _fix = classify_subject("bitbucket", actual, patterns)
    assert found is cause


# --- the first differing component of each CI's subject grammar names the cause ---------------
# One trust per CI for one scope; each token differs from it in exactly one component.

GH_ROLE = "repo:octo-org/site:environment:production"
GL_ROLE = "project_path:acme/site:ref_type:branch:ref:main"
CC_ORG, CC_PROJECT, CC_USER = (f"0000000{n}-0000-4000-8000-000000000000" for n in (1, 2, 3))
CC_OTHER = "0000000f-0000-4000-8000-000000000000"
CC_ROLE = f"org/{CC_ORG}/project/{CC_PROJECT}/user/*/vcs-origin/*/vcs-ref/refs/heads/main"
CC_SUB = f"org/{CC_ORG}/project/{CC_PROJECT}/user/{CC_USER}/vcs-origin/github.com/a/b/vcs-ref/"
BK_ROLE = "organization:acme:pipeline:site:ref:refs/heads/main:*"
BK_RUN = ":commit:" + "a" * 40 + ":step:deploy"
ONE_COMPONENT = [
    # GitHub: owner, repository, then the context (environment / ref / pull request)
    ("github", "repo:evil-org/site:environment:production", GH_ROLE, Cause.ORGANIZATION),
    ("github", "repo:octo-org/other:environment:production", GH_ROLE, Cause.REPOSITORY),
    ("github", "repo:octo-org/site:environment:staging", GH_ROLE, Cause.DEPLOYMENT_ENVIRONMENT),
    (
        "github",
        "repo:evil-org/site:ref:refs/heads/main",
        "repo:octo-org/site:*",
        Cause.ORGANIZATION,
    ),
    ("github", "repo:octo-org/other:ref:refs/heads/main", "repo:octo-org/*", None),
    (
        "github",
        "repo:octo-org/site:ref:refs/heads/dev",
        "repo:octo-org/site:ref:refs/heads/main",
        Cause.REF,
    ),
    # Bitbucket: {repository}:{environment}:{step} (the workspace is in the issuer)
    (
        "bitbucket",
        "{00000000-0000-4000-8000-0000000000ff}:" + f"{BB_PROD}:{BB_STEP}",
        f"{BB_REPO}:{BB_PROD}:*",
        Cause.REPOSITORY,
    ),
    (
        "bitbucket",
        f"{BB_REPO}:{BB_STAGING}:{BB_STEP}",
        f"{BB_REPO}:{BB_PROD}:*",
        Cause.DEPLOYMENT_ENVIRONMENT,
    ),
    # GitLab: project_path (top-level group, then project), ref_type, ref
    ("gitlab", "project_path:evil/site:ref_type:branch:ref:main", GL_ROLE, Cause.ORGANIZATION),
    ("gitlab", "project_path:acme/other:ref_type:branch:ref:main", GL_ROLE, Cause.REPOSITORY),
    ("gitlab", "project_path:acme/site:ref_type:tag:ref:main", GL_ROLE, Cause.REF),
    ("gitlab", "project_path:acme/site:ref_type:branch:ref:dev", GL_ROLE, Cause.REF),
    # CircleCI: org/ID/project/ID/user/ID/vcs-origin/.../vcs-ref/...
    ("circleci", CC_SUB.replace(CC_ORG, CC_OTHER) + "refs/heads/main", CC_ROLE, Cause.ORGANIZATION),
    (
        "circleci",
        CC_SUB.replace(CC_PROJECT, CC_OTHER) + "refs/heads/main",
        CC_ROLE,
        Cause.REPOSITORY,
    ),
    ("circleci", CC_SUB + "refs/heads/dev", CC_ROLE, Cause.REF),
    # Buildkite: organization, pipeline, ref, commit, step
    (
        "buildkite",
        "organization:evil:pipeline:site:ref:refs/heads/main" + BK_RUN,
        BK_ROLE,
        Cause.ORGANIZATION,
    ),
    (
        "buildkite",
        "organization:acme:pipeline:other:ref:refs/heads/main" + BK_RUN,
        BK_ROLE,
        Cause.REPOSITORY,
    ),
    (
        "buildkite",
        "organization:acme:pipeline:site:ref:refs/heads/dev" + BK_RUN,
        BK_ROLE,
        Cause.REF,
    ),
]


@pytest.mark.parametrize(
    ("ci", "actual", "pattern", "cause"),
    ONE_COMPONENT,
    ids=[f"{row[0]}-{row[3] or 'match'}-{n}" for n, row in enumerate(ONE_COMPONENT)],
)
def test_the_first_differing_component_names_the_cause(
    ci: str, actual: str, pattern: str, cause: Cause | None
) -> None:
    if cause is None:  # the control: the pattern admits the subject, nothing to classify
        assert compile_glob(pattern).match(actual)
        return
    assert not compile_glob(pattern).match(actual)
    found, fix = classify_subject(ci, actual, [pattern])
    assert found is cause, fix
    assert actual in fix or cause is Cause.DEPLOYMENT_ENVIRONMENT


def test_the_closest_pattern_decides() -> None:
    # Two patterns: the one with the same repository is the closest, so the ref is the cause.
    patterns = ["repo:other-org/x:*", "repo:octo-org/site:ref:refs/heads/main"]
    found, _fix = classify_subject("github", "repo:octo-org/site:ref:refs/heads/dev", patterns)
    assert found is Cause.REF


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("*", "", True),
        ("a*b?c", "axxbyc", True),
        ("a*b?c", "axxbc", False),
        ("*" * 5000 + "b", "a" * 5000, False),  # bounded: no backtracking blow-up
        ("repo:*:ref:*", "repo:a/b:ref:refs/heads/x", True),
    ],
)
def testcompile_glob(pattern: str, text: str, matches: bool) -> None:
    assert compile_glob(pattern).match(text) is matches


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


def test_doctor_detects_as_obtain_token_does_with_ci_flag_and_token_file(tmp_path: Path) -> None:
    # `--ci github` wins over KEYLESS_TOKEN_FILE, in doctor's ci step as in obtain_token.
    token_file = tmp_path / "token"
    token_file.write_text("unused")
    env = {"GITHUB_ACTIONS": "true", "KEYLESS_TOKEN_FILE": str(token_file)}
    with stubbed_sts() as stub:
        report = diagnose(
            DoctorRequest(env=env, ci="github"), http=NO_HTTP, sts=stub.sts, iam=_no_iam
        )
    ci = report.steps[0]
    assert (ci.name, ci.status, ci.summary) == ("ci", Status.OK, "GitHub Actions (--ci github)")
    assert report.causes == (Cause.OIDC_NOT_ENABLED,)


def test_a_local_stack_token_file_shows_its_cis_claims(tmp_path: Path) -> None:
    from keyless.errors import NetworkError
    from tests.jwt_factory import make_token

    issuer = "https://127.0.0.1:45002"
    token_file = tmp_path / "gh.jwt"
    token_file.write_text(make_token({"repository": "octo-org/site"}, issuer=issuer))

    class Unreachable:
        def get(self, url: str, **_: object) -> HttpResponse:
            raise NetworkError(f"cannot reach {url}")

    def claims(env: dict[str, str]) -> tuple[str, ...]:
        with stubbed_sts() as stub:
            report = diagnose(
                DoctorRequest(env=env, token_file=str(token_file)),
                http=Unreachable(),
                sts=stub.sts,
                iam=_no_iam,
            )
        return next(step for step in report.steps if step.name == "claims").details

    assert "repository = octo-org/site" not in claims({})
    assert "repository = octo-org/site" in claims({"KEYLESS_LOCAL_GITHUB_ISSUER": issuer})


# --- the exchange step is assume's exchange (keyless.exchange.obtain_credentials) ---------------

_NOW = 1_900_000_000.0


class _Unreachable:
    """The issuer's keys cannot be fetched: the signature step fails, the exchange still runs."""

    def get(self, url: str, **_: object) -> HttpResponse:
        raise NetworkError(f"cannot reach {url}")


def _cause_id(cause: Cause | None) -> str | None:
    return None if cause is None else cause.value


def _exchange_steps(
    tmp_path: Path, *, lifetime: int = 300, identity_fails: bool = False
) -> tuple[dict[str, Status], dict[str, str | None], list[str]]:
    from tests.jwt_factory import make_token
    from tests.sts_stub import identity_response, web_identity_response

    token = make_token(now=int(_NOW) - 600 if lifetime < 0 else int(_NOW), lifetime=abs(lifetime))
    token_file = tmp_path / "token"
    token_file.write_text(token)
    with stubbed_sts() as stub:
        if lifetime > 0:
            stub.stubber.add_response(
                "assume_role_with_web_identity",
                web_identity_response(session=f"keyless-{int(_NOW)}"),
                # The session name assume derives for a token file, and the token as read.
                {
                    "RoleArn": ROLE_ARN,
                    "RoleSessionName": f"keyless-{int(_NOW)}",
                    "WebIdentityToken": token,
                },
            )
            if identity_fails:
                stub.stubber.add_client_error("get_caller_identity", "InternalFailure", "boom")
            else:
                stub.stubber.add_response("get_caller_identity", identity_response())
        report = diagnose(
            DoctorRequest(env={}, token_file=str(token_file), role_arn=RoleArn(ROLE_ARN)),
            http=_Unreachable(),
            sts=stub.sts,
            iam=_no_iam,
            clock=lambda: _NOW,
        )
    steps = {step.name: step for step in report.steps}
    names = ("exchange", "identity")
    return (
        {name: steps[name].status for name in names},
        {name: _cause_id(steps[name].cause) for name in names},
        [steps[name].summary for name in names],
    )


def test_doctor_exchanges_as_assume_does_then_asks_who_the_credentials_are(
    tmp_path: Path,
) -> None:
    statuses, causes, summaries = _exchange_steps(tmp_path)
    assert statuses == {"exchange": Status.OK, "identity": Status.OK}
    assert causes == {"exchange": None, "identity": None}
    assert summaries[0].startswith("STS issued credentials for arn:aws:sts::123456789012:")
    assert summaries[1].startswith("account 123456789012, ")


def test_a_failed_get_caller_identity_is_the_identity_steps_problem(tmp_path: Path) -> None:
    statuses, causes, _ = _exchange_steps(tmp_path, identity_fails=True)
    assert statuses == {"exchange": Status.OK, "identity": Status.PROBLEM}
    assert causes == {"exchange": None, "identity": "exchange"}


def test_an_expired_token_is_refused_before_sts_as_assume_refuses_it(tmp_path: Path) -> None:
    # No STS answer is queued: a call would fail the stub.
    statuses, causes, summaries = _exchange_steps(tmp_path, lifetime=-300)
    assert statuses == {"exchange": Status.PROBLEM, "identity": Status.SKIPPED}
    assert causes == {"exchange": "token-expired", "identity": None}
    assert "expired" in summaries[0]
