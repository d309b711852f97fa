"""GitHub Actions: the job asks the runtime's token endpoint for an ID token with its audience.

Facts: docs/ci-tokens.md#github (GitHub's "OpenID Connect reference", actions/toolkit oidc-utils).
"""

from __future__ import annotations

import json
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keyless.causes import Cause
from keyless.ci.base import (
    DEFAULT_AWS_AUDIENCE,
    STANDARD_SAFE_CLAIMS,
    JobClaims,
    JobRun,
    JobTokens,
    ObtainedToken,
    Runner,
    ScopeOption,
    SegmentRole,
    SubjectFinding,
    SubjectGrammar,
    SubjectSegment,
    TrustCondition,
    TrustSpec,
    compose_session_name,
    env_true,
    iam_literal,
    stable_number,
)
from keyless.ci.shared import CiBase
from keyless.errors import CredentialError, NetworkError, UsageError
from keyless.limits import (
    GITHUB_TOKEN_REQUEST_SECONDS,
    RETRY_BASE_DELAY_SECONDS,
    RETRY_MAX_DELAY_SECONDS,
    RETRY_TOTAL_BUDGET_SECONDS,
    TOKEN_REQUEST_MAX_ATTEMPTS,
)
from keyless.urls import has_userinfo, shown_url

if TYPE_CHECKING:
    from keyless.http import HttpClient, HttpResponse

REQUEST_URL_VARIABLE = "ACTIONS_ID_TOKEN_REQUEST_URL"
REQUEST_BEARER_VARIABLE = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
#: The header GitHub's documented curl sends; the response then carries the token in `value`.
ACCEPT = "application/json; api-version=2.0"

# github.com (optionally with the enterprise slug), GHE.com, and GHES
# (docs/ci-tokens.md#github-issuer).
_ISSUER = re.compile(
    r"https://token\.actions\.githubusercontent\.com(/[A-Za-z0-9_.-]+)?"
    r"|https://token\.actions\.[A-Za-z0-9-]+\.ghe\.com"
    r"|https://[A-Za-z0-9.-]+(:[0-9]+)?/_services/token"
)
# A bearer token may travel over plain HTTP only when it never leaves the machine.
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

_PERMISSIONS_REMEDY = """\
GitHub gives a job the token request variables only with the `id-token: write` permission.
In the workflow (or the job):

  permissions:
    id-token: write
    contents: read

A reusable workflow called from another organization needs the caller to grant it explicitly,
and pull requests from forks never get it.
"""


def _refused_remedy(status: int) -> str:
    if status == 401:
        return (
            f"The runtime refused {REQUEST_BEARER_VARIABLE}. It is valid for about six hours from"
            " the start of the job: re-run the job, and fetch the token right before using it."
        )
    return _PERMISSIONS_REMEDY


ISSUER = "https://token.actions.githubusercontent.com"

#: `repo:OWNER/REPO:CONTEXT` where CONTEXT is `environment:NAME`, `pull_request`,
#: `ref:refs/heads/BRANCH` or `ref:refs/tags/TAG`; owner and repository may carry `@ID` in the
#: immutable form (docs/ci-tokens.md#github-sub).
SUBJECT_GRAMMAR = SubjectGrammar(
    segments=(
        SubjectSegment(
            literal="repo:", field="owner", role=SegmentRole.TENANT, example="zz-probe-owner"
        ),
        SubjectSegment(
            literal="/", field="repository", role=SegmentRole.REPOSITORY, example="zz-probe-repo"
        ),
        SubjectSegment(
            literal=":",
            field="ref or environment",
            role=SegmentRole.CONTEXT,
            example="ref:refs/heads/zz-probe",
            name_prefixes=("ref:refs/heads/", "ref:refs/tags/", "environment:", "ref:"),
        ),
    )
)


# --- trust: the scope a role can be pinned to -----------------------------------------------------
# docs/ci-tokens.md#github-sub, docs/security-model.md#generator-rules

_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_REPOSITORY = re.compile(r"[A-Za-z0-9._-]+")
_ID = re.compile(r"[1-9][0-9]*")


def encode_environment(name: str) -> str:
    """An environment name as GitHub writes it into `sub`: `:` becomes `%3A`
    (docs/ci-tokens.md#github-sub)."""
    return name.replace(":", "%3A")


@dataclass(frozen=True, slots=True, kw_only=True)
class GitHubScope:
    """A repository, optionally one branch/tag (``ref``) or one deployment ``environment``.

    With ``owner_id`` and ``repository_id`` the subject uses the immutable form
    ``repo:OWNER@ID/REPO@ID:...`` that repositories created or renamed after 2026-07-15 get.
    """

    repository: str
    ref: str | None = None
    environment: str | None = None
    owner_id: str | None = None
    repository_id: str | None = None
    issuer: str = ISSUER

    def __post_init__(self) -> None:
        owner, _, name = self.repository.partition("/")
        if not (_OWNER.fullmatch(owner) and _REPOSITORY.fullmatch(name)):
            raise UsageError(f"GitHub repository {self.repository!r} is not OWNER/REPO")
        if self.ref is not None and self.environment is not None:
            raise UsageError(
                "GitHub: give a ref or an environment, not both (the subject holds only one)"
            )
        if self.ref is not None and (not self.ref or ":" in self.ref):
            raise UsageError(f"GitHub ref {self.ref!r} is not a branch, tag or refs/... name")
        if self.environment is not None and not self.environment:
            raise UsageError("GitHub environment name is empty")
        if (self.owner_id is None) != (self.repository_id is None):
            raise UsageError("GitHub: give both the owner id and the repository id, or neither")
        for value in (self.owner_id, self.repository_id):
            if value is not None and not _ID.fullmatch(value):
                raise UsageError(f"GitHub id {value!r} is not a number")
        if not PROVIDER.owns_issuer(self.issuer):
            raise UsageError(f"{self.issuer!r} is not a GitHub Actions issuer URL")

    @property
    def owner(self) -> str:
        return self.repository.partition("/")[0]

    @property
    def full_ref(self) -> str | None:
        """``main`` -> ``refs/heads/main``; ``refs/tags/v1`` stays as it is."""
        if self.ref is None:
            return None
        return self.ref if self.ref.startswith("refs/") else f"refs/heads/{self.ref}"

    def subject_prefix(self) -> str:
        owner, _, name = self.repository.partition("/")
        if self.owner_id is not None and self.repository_id is not None:
            return f"repo:{owner}@{self.owner_id}/{name}@{self.repository_id}"
        return f"repo:{owner}/{name}"

    def context(self) -> str | None:
        """The context part of the subject, or ``None`` for any context of the repository."""
        if self.environment is not None:
            return f"environment:{encode_environment(self.environment)}"
        if self.full_ref is not None:
            return f"ref:{self.full_ref}"
        return None

    def trust_spec(self) -> TrustSpec:
        context = self.context()
        prefix = iam_literal(self.subject_prefix())
        if context is None:
            subject = TrustCondition(operator="StringLike", claim="sub", values=(f"{prefix}:*",))
            who = (
                "Any job of this repository: every branch, tag, pull request and environment."
                " For a deploy role, pin an environment with --environment."
            )
        else:
            subject = TrustCondition(
                operator="StringEquals", claim="sub", values=(f"{prefix}:{iam_literal(context)}",)
            )
            who = (
                f"Only jobs of this repository that deploy to the environment {self.environment!r};"
                " protect it with required reviewers and deployment branch rules."
                if self.environment is not None
                else f"Only jobs of this repository running on {self.full_ref}, including"
                " pull_request_target runs whose base is that branch (they can run fork code);"
                " a protected environment is the stronger gate for deploy roles."
            )
        conditions = [
            TrustCondition(operator="StringEquals", claim="aud", values=(DEFAULT_AWS_AUDIENCE,)),
            subject,
        ]
        if self.repository_id is not None and "repository_id" in PROVIDER.aws_condition_claims:
            # The id survives renames and transfers, so a recycled name cannot match
            # (docs/ci-tokens.md#github-sub).
            conditions.append(
                TrustCondition(
                    operator="StringEquals", claim="repository_id", values=(self.repository_id,)
                )
            )
        return TrustSpec(
            provider=PROVIDER.name, issuer=self.issuer, conditions=tuple(conditions), notes=(who,)
        )


# --- the provider -------------------------------------------------------------------------------


class GitHub(CiBase[GitHubScope]):
    name = "github"
    short_name = "GitHub"
    scope_type = GitHubScope
    display_name = "GitHub Actions"
    markers: tuple[str, ...] = ("GITHUB_ACTIONS", REQUEST_URL_VARIABLE)
    # STS validates these GitHub claims as condition keys since January 2026
    # (docs/aws-sts-iam.md#condition-keys).
    aws_condition_claims: frozenset[str] = frozenset(
        {
            "actor",
            "actor_id",
            "job_workflow_ref",
            "repository",
            "repository_id",
            "workflow",
            "ref",
            "environment",
            "enterprise_id",
        }
    )
    safe_claims: frozenset[str] = STANDARD_SAFE_CLAIMS | {
        "actor",
        "actor_id",
        "base_ref",
        "enterprise",
        "enterprise_id",
        "environment",
        "event_name",
        "head_ref",
        "job_workflow_ref",
        "job_workflow_sha",
        "ref",
        "ref_type",
        "repository",
        "repository_id",
        "repository_owner",
        "repository_owner_id",
        "repository_visibility",
        "run_attempt",
        "run_id",
        "run_number",
        "runner_environment",
        "sha",
        "workflow",
        "workflow_ref",
        "workflow_sha",
    }

    def __init__(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sleep = sleep
        self._random = random
        self._clock = clock

    # token.actions.githubusercontent.com mints tokens for every repository on GitHub.
    shared_issuer = True
    issuer_shape = _ISSUER
    subject_grammar = SUBJECT_GRAMMAR

    scope_options: tuple[ScopeOption, ...] = (
        ScopeOption(
            flag="--repository",
            dest="repository",
            metavar="OWNER/REPO",
            help="the repository",
            required=True,
        ),
        ScopeOption(
            flag="--ref",
            dest="ref",
            metavar="REF",
            help="GitHub: branch or refs/tags/TAG; GitLab: branch or tag name",
        ),
        ScopeOption(
            flag="--environment", dest="environment", metavar="NAME", help="deployment environment"
        ),
        ScopeOption(
            flag="--owner-id",
            dest="owner_id",
            metavar="N",
            help="owner id: use the immutable subject (with --repository-id)",
        ),
        ScopeOption(
            flag="--repository-id",
            dest="repository_id",
            metavar="N",
            help="repository id (with --owner-id)",
        ),
    )
    scope_usage: tuple[str, ...] = (
        "--repository OWNER/REPO [--ref REF | --environment NAME]",
        "[--owner-id N --repository-id N]",
    )

    def in_ci(self, env: Mapping[str, str]) -> bool:
        return env_true(env, "GITHUB_ACTIONS") or bool(env.get(REQUEST_URL_VARIABLE))

    def obtain(
        self,
        env: Mapping[str, str],
        *,
        audience: str | None,
        http: HttpClient,
        runner: Runner | None = None,
    ) -> ObtainedToken | None:
        if not self.in_ci(env):
            return None
        missing = [
            name for name in (REQUEST_URL_VARIABLE, REQUEST_BEARER_VARIABLE) if not env.get(name)
        ]
        if missing:
            raise CredentialError(
                f"{self.display_name}: {' and '.join(missing)} not set in this job"
                " (no `id-token: write` permission)",
                remedy=_PERMISSIONS_REMEDY,
            )
        url = self.request_url(env[REQUEST_URL_VARIABLE], audience or DEFAULT_AWS_AUDIENCE)
        headers = {"Authorization": f"bearer {env[REQUEST_BEARER_VARIABLE]}", "Accept": ACCEPT}
        response = self._fetch(http, url, headers)
        return self.checked(self._value(response, url), source=REQUEST_URL_VARIABLE)

    def session_name(self, env: Mapping[str, str]) -> str | None:
        # configure-aws-credentials uses a constant ("GitHubActions"); the run id and attempt
        # make each session findable in CloudTrail.
        return compose_session_name(
            "github",
            env.get("GITHUB_REPOSITORY"),
            env.get("GITHUB_RUN_ID"),
            env.get("GITHUB_RUN_ATTEMPT"),
        )

    # --- the local stack (keyless.local): what a job's token and environment look like --------

    def claims_for(
        self, scope: GitHubScope, run: JobRun, *, audiences: Sequence[str] = ()
    ) -> JobClaims:
        return job_claims(scope, run, audiences=audiences)

    def environment_for(
        self, scope: GitHubScope, run: JobRun, *, tokens: JobTokens, audiences: Sequence[str] = ()
    ) -> dict[str, str]:
        return job_environment(scope, run, tokens=tokens, audiences=audiences)

    def request_url(self, base: str, audience: str) -> str:
        """``base`` with ``audience`` added to its query (which GitHub's URL already has)."""
        parts = urllib.parse.urlsplit(base)
        local = parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
        if has_userinfo(base):
            raise CredentialError(
                f"{self.display_name}: {REQUEST_URL_VARIABLE} has user info ({_origin(base)});"
                " refusing to send the request token with it"
            )
        if parts.scheme != "https" and not local:
            raise CredentialError(
                f"{self.display_name}: {REQUEST_URL_VARIABLE} is not an https URL"
                f" ({_origin(base)}); refusing to send the request token over it"
            )
        extra = urllib.parse.urlencode({"audience": audience})
        query = parts.query.strip("&")
        return urllib.parse.urlunsplit(parts._replace(query=f"{query}&{extra}" if query else extra))

    # --- keyless doctor: GitHub's subject forms (docs/ci-tokens.md#github-sub) ------------------

    def guess_from_subject(self, subject: str) -> bool:
        return subject.startswith("repo:")

    def oidc_disabled(self, env: Mapping[str, str]) -> bool:
        return not (env.get(REQUEST_URL_VARIABLE) and env.get(REQUEST_BEARER_VARIABLE))

    def audience_hint(self) -> str | None:
        return "GitHub: keyless asks for --audience (default sts.amazonaws.com)."

    def classify_subject(
        self, actual: str, patterns: Sequence[str], *, differing: SegmentRole | None
    ) -> SubjectFinding | None:
        parsed = _default_subject(actual)
        if parsed is None:
            return _custom_subject(actual)
        owner_repo, context = parsed
        repos = [repo for repo in (_pattern_repo(p) for p in patterns) if repo is not None]
        immutable = "@" in owner_repo
        if immutable and repos and not any("@" in repo for repo in repos):
            return _finding(Cause.IMMUTABLE_SUBJECT, _IMMUTABLE_FIX, actual)
        if not immutable and repos and all("@" in repo for repo in repos):
            return _finding(Cause.IMMUTABLE_SUBJECT, _IMMUTABLE_REVERSE_FIX, actual)
        if differing is not None and differing is not SegmentRole.CONTEXT:
            return None  # the owner or the repository differs
        if context == "pull_request":
            return _finding(Cause.PULL_REQUEST, _PULL_REQUEST_FIX, actual)
        pinned_environment = any(":environment:" in pattern for pattern in patterns)
        if context.startswith("environment:") and not pinned_environment:
            return _finding(Cause.DEPLOYMENT_ENVIRONMENT, _ENVIRONMENT_FIX, actual)
        if not context.startswith("environment:") and pinned_environment and patterns:
            return _finding(Cause.DEPLOYMENT_ENVIRONMENT, _NO_ENVIRONMENT_FIX, actual)
        if context.startswith("environment:"):
            return SubjectFinding(
                cause=Cause.DEPLOYMENT_ENVIRONMENT,
                fix=f"The job deploys to another environment than the role pins (sub {actual}).",
            )
        if differing is not None:
            return None  # another branch or tag
        return SubjectFinding(
            cause=Cause.SUBJECT,
            fix=f"sub {actual!r} matches none of {', '.join(patterns)}: the job runs in another"
            " repository or on another branch or tag than the role expects.",
        )

    def likely_subject_cause(self, subject: str) -> SubjectFinding | None:
        parsed = _default_subject(subject)
        if parsed is None:
            return _custom_subject(subject)
        owner_repo, context = parsed
        if "@" in owner_repo:
            return _finding(Cause.IMMUTABLE_SUBJECT, _IMMUTABLE_FIX, subject)
        if context == "pull_request":
            return _finding(Cause.PULL_REQUEST, _PULL_REQUEST_FIX, subject)
        if context.startswith("environment:"):
            return _finding(Cause.DEPLOYMENT_ENVIRONMENT, _ENVIRONMENT_FIX, subject)
        return None

    def _fetch(self, http: HttpClient, url: str, headers: Mapping[str, str]) -> HttpResponse:
        """GET with full-jitter exponential backoff on 5xx, 429 and transport failures only."""
        deadline = self._clock() + RETRY_TOTAL_BUDGET_SECONDS
        last = "no attempt"
        attempts = 0
        floor = 0.0  # from a 429's Retry-After
        while attempts < TOKEN_REQUEST_MAX_ATTEMPTS:
            if attempts:
                ceiling = min(
                    RETRY_MAX_DELAY_SECONDS, RETRY_BASE_DELAY_SECONDS * 2 ** (attempts - 1)
                )
                delay = max(self._random() * ceiling, floor)
                if self._clock() + delay > deadline:
                    break
                self._sleep(delay)
            left = deadline - self._clock()
            if left <= 0:
                break
            attempts += 1
            try:
                # The attempt in flight is inside the budget too: its deadline is what is left.
                timeout = min(GITHUB_TOKEN_REQUEST_SECONDS, left)
                response = http.get(url, headers=headers, timeout=timeout)
            except NetworkError as exc:
                # UrllibClient's message names the URL without its query; never the headers.
                last = exc.message
                floor = 0.0
                continue
            if response.status == 200:
                return response
            if response.status == 429 or response.status >= 500:
                last = f"HTTP {response.status}"
                floor = _retry_after(response)
                continue
            raise CredentialError(
                f"{self.display_name}: the ID token endpoint {_origin(url)}"
                f" answered HTTP {response.status}",
                remedy=_refused_remedy(response.status),
            )
        raise NetworkError(
            f"{self.display_name}: the ID token endpoint {_origin(url)} failed"
            f" {attempts} time(s); last: {last}",
            remedy="GitHub's token service may be degraded; re-run the job in a few minutes.",
        )

    def _value(self, response: HttpResponse, url: str) -> str:
        # The body carries the token: it never goes into a message.
        try:
            document = json.loads(response.body)
        except ValueError:
            document = None
        value = document.get("value") if isinstance(document, dict) else None
        if not isinstance(value, str):
            raise CredentialError(
                f"{self.display_name}: the answer of {_origin(url)} is not JSON with a"
                " string `value`"
            )
        return value


def _retry_after(response: HttpResponse) -> float:
    """A 429's ``Retry-After`` in seconds (integer form only), capped like any other delay."""
    for key, value in response.headers.items():
        if key.lower() == "retry-after" and value.strip().isdigit():
            return min(float(value.strip()), RETRY_MAX_DELAY_SECONDS)
    return 0.0


def _origin(url: str) -> str:
    """``url`` for a message: no query, no user info (either might carry a secret)."""
    return shown_url(url)


PROVIDER = GitHub()


# --- the local stack: a job's token and environment (docs/ci-tokens.md#github) --------------------

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


# --- keyless doctor: why a GitHub `sub` does not match ------------------------------------------

# repo:OWNER[@ID]/REPO[@ID]:CONTEXT with GitHub's default contexts (docs/ci-tokens.md#github-sub); a
# value's `:` is written %3A, so a further `:` means a custom subject template.
_DEFAULT_SUBJECT = re.compile(
    r"repo:(?P<repo>[^/:]+/[^:]+):(?P<context>pull_request|environment:[^:]+|ref:[^:]+)"
)

_IMMUTABLE_FIX = (
    "The token uses GitHub's immutable subject form ({subject}: owner and repository with @ID,"
    " the default for repositories created or renamed after 2026-07-15), and the trust policy"
    " pins the name-only form. Pin repo:OWNER@OWNER_ID/REPO@REPO_ID:... (keyless trust build"
    " --owner-id N --repository-id N), or keep both forms during a migration."
)
_IMMUTABLE_REVERSE_FIX = (
    "The trust policy pins GitHub's immutable subject form (owner and repository with @ID), and"
    " this repository's tokens use the name-only form ({subject}). Pin repo:OWNER/REPO:..., or"
    " opt the repository in to immutable subjects."
)
_PULL_REQUEST_FIX = (
    "The job runs for a pull request, so sub is {subject}; the role pins a branch or an"
    " environment. Do not let pull requests assume a deploy role: run the deploy on push to the"
    " branch, or give pull requests their own read-only role trusting ...:pull_request."
)
_ENVIRONMENT_FIX = (
    "The job has `environment:`, which makes sub {subject} instead of ...:ref:refs/heads/BRANCH."
    " Pin the environment in the trust policy (keyless trust build --environment NAME), or"
    " drop `environment:` from the job."
)
_NO_ENVIRONMENT_FIX = (
    "The trust policy pins a GitHub environment, and this job has none (sub {subject}). Add"
    " `environment: NAME` to the job."
)


def _finding(cause: Cause, fix: str, subject: str) -> SubjectFinding:
    return SubjectFinding(cause=cause, fix=fix.format(subject=subject))


def _default_subject(subject: str) -> tuple[str, str] | None:
    match = _DEFAULT_SUBJECT.fullmatch(subject)
    if match is None:
        return None
    return match["repo"], match["context"]


def _custom_subject(subject: str) -> SubjectFinding:
    return SubjectFinding(
        cause=Cause.CUSTOM_SUBJECT,
        fix=f"sub {subject!r} is not in GitHub's default form repo:OWNER/REPO:CONTEXT: the"
        " organization or repository uses a custom subject template (see GET"
        " /repos/OWNER/REPO/actions/oidc/customization/sub). Write the trust policy for that"
        " template, or reset the repository to the default with use_default: true.",
    )


def _pattern_repo(pattern: str) -> str | None:
    """The OWNER/REPO part of a GitHub subject pattern, or ``None`` for another shape."""
    if not pattern.startswith("repo:"):
        return None
    return pattern[len("repo:") :].split(":", 1)[0]
