"""The local stack's GitHub job: the claims of its ID token and the variables it runs with.

Facts: docs/ci-tokens.md#github.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from keyless.ci.base import JobClaims, JobRun, JobTokens, stable_number
from keyless.ci.github.subjects import encode_environment
from keyless.ci.github.token_request import REQUEST_BEARER_VARIABLE, REQUEST_URL_VARIABLE
from keyless.errors import UsageError

if TYPE_CHECKING:
    from keyless.ci.github.provider import GitHubScope

#: `exp - iat` of every GitHub ID token; no parameter changes it (docs/ci-tokens.md#github-issuer).
TOKEN_LIFETIME_SECONDS = 300
#: The emulated job's actor and workflow file (a workflow named after its file).
_ACTOR = "keyless-local"
_WORKFLOW = "deploy"


def _ids(scope: GitHubScope) -> tuple[str, str]:
    """Owner and repository ids: the scope's, else ids that the names always map to."""
    if scope.owner_id is not None and scope.repository_id is not None:
        return scope.owner_id, scope.repository_id
    return (
        stable_number(f"github owner {scope.owner}", digits=8),
        stable_number(f"github repository {scope.repository}", digits=9),
    )


def _job_ref(scope: GitHubScope, run: JobRun) -> tuple[str, str, str]:
    """``(ref, ref_type, ref name)``; a pull_request run gets the PR's merge ref."""
    if run.event == "pull_request":
        number = str(run.build_number)
        return f"refs/pull/{number}/merge", "branch", f"{number}/merge"
    pinned = None if scope.environment is not None else scope.full_ref
    if pinned is not None and not pinned.startswith(("refs/heads/", "refs/tags/")):
        return pinned, "branch", pinned.removeprefix("refs/")
    kind, name = run.ref(pinned)
    prefix = "refs/tags/" if kind == "tag" else "refs/heads/"
    return prefix + name, kind, name


def job_claims(scope: GitHubScope, run: JobRun, *, audiences: Sequence[str] = ()) -> JobClaims:
    """The claims of a job's ID token: `sub` by GitHub's precedence (environment, then
    pull_request, then the ref), in the immutable form when the scope has the ids; ids are
    strings (docs/ci-tokens.md#github-sub)."""
    if len(audiences) > 1:
        raise UsageError("GitHub: an ID token has exactly one audience")
    owner = scope.owner
    owner_id, repository_id = _ids(scope)
    ref, ref_type, _ = _job_ref(scope, run)
    if scope.environment is not None:
        context = f"environment:{encode_environment(scope.environment)}"
    elif run.event == "pull_request":
        context = "pull_request"
    else:
        context = f"ref:{ref}"
    workflow_ref = f"{scope.repository}/.github/workflows/{_WORKFLOW}.yml@{ref}"
    pull = run.event == "pull_request"
    claims: dict[str, object] = {
        "jti": run.uuid("jti"),
        "sub": f"{scope.subject_prefix()}:{context}",
        "aud": audiences[0] if audiences else f"https://github.com/{owner}",
        "ref": ref,
        "sha": run.sha,
        "repository": scope.repository,
        "repository_owner": owner,
        "repository_owner_id": owner_id,
        "run_id": run.number("run id"),
        "run_number": str(run.build_number),
        "run_attempt": "1",
        "repository_visibility": "private",
        "repository_id": repository_id,
        "actor_id": stable_number(f"github user {_ACTOR}", digits=8),
        "actor": _ACTOR,
        "workflow": _WORKFLOW,
        "head_ref": run.ref()[1] if pull else "",
        "base_ref": "main" if pull else "",
        "event_name": run.event,
        "ref_type": ref_type,
        "workflow_ref": workflow_ref,
        "workflow_sha": run.sha,
        "job_workflow_ref": workflow_ref,
        "job_workflow_sha": run.sha,
        "runner_environment": "github-hosted",
    }
    if scope.environment is not None:
        claims["environment"] = scope.environment
    return JobClaims(claims=claims, lifetime=TOKEN_LIFETIME_SECONDS)


def job_environment(
    scope: GitHubScope, run: JobRun, *, tokens: JobTokens, audiences: Sequence[str] = ()
) -> dict[str, str]:
    """The variables of a job with `id-token: write`: no token, but the request URL and the
    bearer request token with which the job asks for one per audience
    (docs/ci-tokens.md#github-delivery)."""
    if audiences:
        raise UsageError(
            "GitHub: a job asks for its audience when it requests a token"
            " (keyless token --audience AUD); it is not part of the job"
        )
    claims = job_claims(scope, run)
    endpoint = tokens.endpoint(claims)
    owner = scope.owner
    owner_id, repository_id = _ids(scope)
    ref, ref_type, ref_name = _job_ref(scope, run)
    pull = run.event == "pull_request"
    workflow_ref = f"{scope.repository}/.github/workflows/{_WORKFLOW}.yml@{ref}"
    return {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": "https://api.github.com",
        "GITHUB_REPOSITORY": scope.repository,
        "GITHUB_REPOSITORY_OWNER": owner,
        "GITHUB_REPOSITORY_OWNER_ID": owner_id,
        "GITHUB_REPOSITORY_ID": repository_id,
        "GITHUB_REF": ref,
        "GITHUB_REF_NAME": ref_name,
        "GITHUB_REF_TYPE": ref_type,
        "GITHUB_HEAD_REF": run.ref()[1] if pull else "",
        "GITHUB_BASE_REF": "main" if pull else "",
        "GITHUB_SHA": run.sha,
        "GITHUB_EVENT_NAME": run.event,
        "GITHUB_WORKFLOW": _WORKFLOW,
        "GITHUB_WORKFLOW_REF": workflow_ref,
        "GITHUB_WORKFLOW_SHA": run.sha,
        "GITHUB_JOB": run.step,
        "GITHUB_RUN_ID": str(claims.claims["run_id"]),
        "GITHUB_RUN_NUMBER": str(run.build_number),
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_ACTOR": _ACTOR,
        "GITHUB_ACTOR_ID": str(claims.claims["actor_id"]),
        "GITHUB_TRIGGERING_ACTOR": _ACTOR,
        "RUNNER_OS": "Linux",
        "RUNNER_ENVIRONMENT": "github-hosted",
        REQUEST_URL_VARIABLE: endpoint.url,
        REQUEST_BEARER_VARIABLE: endpoint.bearer,
    }
