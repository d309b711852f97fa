"""GitHub Actions as a provider: detection, the scope a role is pinned to, obtaining the token.

Facts: docs/ci-tokens.md#github (GitHub's "OpenID Connect reference", actions/toolkit oidc-utils).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
    TrustCondition,
    TrustSpec,
    compose_session_name,
    env_true,
    iam_literal,
)
from keyless.ci.github import job, subjects, token_request
from keyless.ci.github.subjects import SUBJECT_GRAMMAR, encode_environment
from keyless.ci.github.token_request import (
    ACCEPT,
    DISPLAY_NAME,
    PERMISSIONS_REMEDY,
    REQUEST_BEARER_VARIABLE,
    REQUEST_URL_VARIABLE,
)
from keyless.ci.shared import CiBase
from keyless.errors import CredentialError, UsageError

if TYPE_CHECKING:
    from keyless.http import HttpClient

# github.com (optionally with the enterprise slug), GHE.com, and GHES
# (docs/ci-tokens.md#github-issuer).
_ISSUER = re.compile(
    r"https://token\.actions\.githubusercontent\.com(/[A-Za-z0-9_.-]+)?"
    r"|https://token\.actions\.[A-Za-z0-9-]+\.ghe\.com"
    r"|https://[A-Za-z0-9.-]+(:[0-9]+)?/_services/token"
)

ISSUER = "https://token.actions.githubusercontent.com"


# --- trust: the scope a role can be pinned to -----------------------------------------------------
# docs/ci-tokens.md#github-sub, docs/security-model.md#generator-rules

_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_REPOSITORY = re.compile(r"[A-Za-z0-9._-]+")
_ID = re.compile(r"[1-9][0-9]*")


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
        if self.repository_id is None:
            # What `trust lint` reports as github-name-only-subject (low), said where it is made.
            who += (
                " By name only: also whoever takes the name after a rename, transfer or deletion;"
                " --owner-id N --repository-id N give the immutable form (the ids:"
                f" gh api repos/{self.repository} --jq '.owner.id, .id')."
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
    display_name = DISPLAY_NAME
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
        random: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sleep = sleep
        # The retry jitter's source, by default the random module's, loaded on first use:
        # importing it costs every command's start-up and only a retry needs it.
        self._random = random or token_request.jitter
        self._clock = clock

    # token.actions.githubusercontent.com mints tokens for every repository on GitHub.
    shared_issuer = True
    issuer_shape = _ISSUER
    aws_audience = DEFAULT_AWS_AUDIENCE
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
                remedy=PERMISSIONS_REMEDY,
            )
        url = self.request_url(env[REQUEST_URL_VARIABLE], audience or DEFAULT_AWS_AUDIENCE)
        headers = {"Authorization": f"bearer {env[REQUEST_BEARER_VARIABLE]}", "Accept": ACCEPT}
        response = token_request.fetch(
            http, url, headers, sleep=self._sleep, random=self._random, clock=self._clock
        )
        return self.checked(token_request.token_value(response, url), source=REQUEST_URL_VARIABLE)

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
        return job.job_claims(scope, run, audiences=audiences)

    def environment_for(
        self, scope: GitHubScope, run: JobRun, *, tokens: JobTokens, audiences: Sequence[str] = ()
    ) -> dict[str, str]:
        return job.job_environment(scope, run, tokens=tokens, audiences=audiences)

    def request_url(self, base: str, audience: str) -> str:
        """``base`` with ``audience`` added to its query (which GitHub's URL already has)."""
        return token_request.request_url(base, audience)

    def guess_from_subject(self, subject: str) -> bool:
        return subject.startswith("repo:")

    def oidc_disabled(self, env: Mapping[str, str]) -> bool:
        return not (env.get(REQUEST_URL_VARIABLE) and env.get(REQUEST_BEARER_VARIABLE))

    def audience_hint(self) -> str | None:
        return "GitHub: keyless asks for --audience (default sts.amazonaws.com)."

    def classify_subject(
        self, actual: str, patterns: Sequence[str], *, differing: SegmentRole | None
    ) -> SubjectFinding | None:
        return subjects.classify_subject(actual, patterns, differing=differing)

    def likely_subject_cause(self, subject: str) -> SubjectFinding | None:
        return subjects.likely_subject_cause(subject)

    # --- keyless audit ---------------------------------------------------------------------------

    def describe_subject(self, fields: Mapping[str, str], issuer: str) -> str | None:
        return subjects.describe_subject(fields)


PROVIDER = GitHub()
