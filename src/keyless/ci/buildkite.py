"""Buildkite: the job asks its agent for a token, ``buildkite-agent oidc request-token``.

Facts: docs/ci-tokens.md#buildkite (Buildkite "OIDC with AWS", ``buildkite-agent oidc
request-token --help``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
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
    SubjectGrammar,
    SubjectSegment,
    TrustCondition,
    TrustSpec,
    compose_session_name,
    iam_literal,
    run_helper,
)
from keyless.ci.shared import CiBase
from keyless.errors import UsageError

if TYPE_CHECKING:
    from keyless.http import HttpClient

ISSUER = "https://agent.buildkite.com"
COMMAND = ("buildkite-agent", "oidc", "request-token")

_MISSING_REMEDY = """\
keyless asks the Buildkite agent for the token. Run the step on the agent's host, or give a
container step the agent binary, e.g. with the docker plugin:

  steps:
    - command: keyless assume --role-arn "$AWS_ROLE_ARN"
      plugins:
        - docker#v5.13.0:
            image: python:3.12
            mount-buildkite-agent: true
"""

_FAILURE_REMEDY = """\
`buildkite-agent oidc request-token` works only inside a running job, with the job's
BUILDKITE_AGENT_ACCESS_TOKEN in the environment and Buildkite reachable from the agent.
"""


#: `organization:ORG:pipeline:PIPELINE:ref:REF:commit:SHA:step:STEP_KEY`
#: (docs/ci-tokens.md#buildkite).
SUBJECT_GRAMMAR = SubjectGrammar(
    segments=(
        SubjectSegment(
            literal="organization:",
            field="organization",
            role=SegmentRole.TENANT,
            example="zz-probe-org",
        ),
        SubjectSegment(
            literal=":pipeline:",
            field="pipeline",
            role=SegmentRole.REPOSITORY,
            example="zz-probe-pipeline",
        ),
        SubjectSegment(
            literal=":ref:",
            field="ref",
            role=SegmentRole.CONTEXT,
            example="refs/heads/zz-probe",
            name_prefixes=("refs/heads/", "refs/tags/"),
        ),
        SubjectSegment(
            literal=":commit:", field="commit", role=SegmentRole.PER_RUN, example="0" * 40
        ),
        SubjectSegment(
            literal=":step:", field="step key", role=SegmentRole.PER_RUN, example="zz-probe"
        ),
    )
)


# --- trust: the scope a role can be pinned to -----------------------------------------------------
# docs/ci-tokens.md#buildkite, docs/security-model.md#generator-rules

_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildkiteScope:
    """A pipeline of an organization (both by slug), optionally one branch."""

    organization: str
    pipeline: str
    branch: str | None = None

    def __post_init__(self) -> None:
        for what, value in (("organization", self.organization), ("pipeline", self.pipeline)):
            if not _SLUG.fullmatch(value):
                raise UsageError(f"Buildkite {what} slug {value!r} is not a slug")
        if self.branch is not None and (not self.branch or ":" in self.branch):
            raise UsageError(f"Buildkite branch {self.branch!r} is not a branch name")

    @property
    def issuer(self) -> str:
        return ISSUER

    def trust_spec(self) -> TrustSpec:
        base = f"organization:{self.organization}:pipeline:{self.pipeline}"
        if self.branch is None:
            subject = f"{base}:*"
            who = (
                "Any build of this pipeline: every branch, tag and pull request."
                " For a deploy role, pin a branch with --branch."
            )
        else:
            # Commit and step key change from build to build: the wildcard covers only them.
            branch = self.branch.removeprefix("refs/heads/")
            subject = f"{base}:ref:refs/heads/{iam_literal(branch)}:*"
            who = f"Only builds of this pipeline on the branch {branch!r}."
        return TrustSpec(
            provider=PROVIDER.name,
            issuer=ISSUER,
            conditions=(
                TrustCondition(
                    operator="StringEquals", claim="aud", values=(DEFAULT_AWS_AUDIENCE,)
                ),
                TrustCondition(operator="StringLike", claim="sub", values=(subject,)),
            ),
            notes=(who, "Request the token with --audience sts.amazonaws.com (keyless does)."),
        )


# --- the provider -------------------------------------------------------------------------------


class Buildkite(CiBase[BuildkiteScope]):
    name = "buildkite"
    short_name = "Buildkite"
    scope_type = BuildkiteScope
    display_name = "Buildkite"
    markers: tuple[str, ...] = ("BUILDKITE",)
    # Buildkite is not among the issuers for which STS exposes extra claims
    # (docs/aws-sts-iam.md#condition-keys); its AWS guide pins organization and pipeline through
    # session tags (aws:RequestTag/...) instead.
    aws_condition_claims: frozenset[str] = frozenset()
    safe_claims: frozenset[str] = STANDARD_SAFE_CLAIMS | {
        "agent_id",
        "build_branch",
        "build_commit",
        "build_id",
        "build_number",
        "build_source",
        "build_tag",
        "cluster_id",
        "cluster_name",
        "job_id",
        "organization_id",
        "organization_slug",
        "pipeline_id",
        "pipeline_slug",
        "queue_id",
        "queue_key",
        "runner_environment",
        "step_key",
    }

    # agent.buildkite.com mints tokens for every Buildkite organization.
    shared_issuer = True
    issuer_shape = re.compile(re.escape(ISSUER))
    subject_grammar = SUBJECT_GRAMMAR

    scope_options: tuple[ScopeOption, ...] = (
        ScopeOption(
            flag="--organization",
            dest="organization",
            metavar="SLUG",
            help="organization slug",
            required=True,
        ),
        ScopeOption(
            flag="--pipeline", dest="pipeline", metavar="SLUG", help="pipeline slug", required=True
        ),
        ScopeOption(flag="--branch", dest="branch", metavar="NAME", help="branch"),
    )
    scope_usage: tuple[str, ...] = ("--organization SLUG --pipeline SLUG [--branch NAME]",)

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
        # Buildkite's default audience is the organization URL; AWS wants sts.amazonaws.com.
        argv = [*COMMAND, "--audience", audience or DEFAULT_AWS_AUDIENCE]
        output = run_helper(
            runner,
            argv,
            env=env,
            display_name=self.display_name,
            missing_remedy=_MISSING_REMEDY,
            failure_remedy=_FAILURE_REMEDY,
        )
        return self.checked(output, source=" ".join(COMMAND))

    def session_name(self, env: Mapping[str, str]) -> str | None:
        # The job id tells the jobs of one build apart; its first 8 characters are enough.
        return compose_session_name(
            "buildkite",
            env.get("BUILDKITE_PIPELINE_SLUG"),
            env.get("BUILDKITE_BUILD_NUMBER"),
            env.get("BUILDKITE_JOB_ID", "")[:8],
        )

    # --- the local stack (keyless.local): what a job's token and environment look like --------

    def claims_for(
        self, scope: BuildkiteScope, run: JobRun, *, audiences: Sequence[str] = ()
    ) -> JobClaims:
        return job_claims(scope, run, audiences=audiences)

    def environment_for(
        self,
        scope: BuildkiteScope,
        run: JobRun,
        *,
        tokens: JobTokens,
        audiences: Sequence[str] = (),
    ) -> dict[str, str]:
        return job_environment(scope, run, tokens=tokens, audiences=audiences)


PROVIDER = Buildkite()


# --- the local stack: a job's token and environment (docs/ci-tokens.md#buildkite) -----------------

#: The default `exp - iat`; `--lifetime` changes it (docs/ci-tokens.md#buildkite).
TOKEN_LIFETIME_SECONDS = 300
#: Where the job reaches its agent's API (the agent's default endpoint has this path).
AGENT_API_PATH = "/v3"


def _job_ref(scope: BuildkiteScope, run: JobRun) -> tuple[str, str]:
    pinned = None
    if scope.branch is not None:
        pinned = "refs/heads/" + scope.branch.removeprefix("refs/heads/")
    return run.ref(pinned)


def job_claims(scope: BuildkiteScope, run: JobRun, *, audiences: Sequence[str] = ()) -> JobClaims:
    """The claims of `buildkite-agent oidc request-token`: `organization:O:pipeline:P:ref:R:
    commit:C:step:K` and the build's claims; the default audience names the organization."""
    if len(audiences) > 1:
        raise UsageError("Buildkite: a token has exactly one audience (--audience)")
    kind, name = _job_ref(scope, run)
    ref = f"refs/tags/{name}" if kind == "tag" else f"refs/heads/{name}"
    claims: dict[str, object] = {
        "sub": (
            f"organization:{scope.organization}:pipeline:{scope.pipeline}:ref:{ref}"
            f":commit:{run.sha}:step:{run.step}"
        ),
        "aud": audiences[0] if audiences else f"https://buildkite.com/{scope.organization}",
        "organization_slug": scope.organization,
        "pipeline_slug": scope.pipeline,
        "build_number": run.build_number,
        # A tag build's branch is the tag's name.
        "build_branch": name,
        "build_commit": run.sha,
        "build_source": "webhook",
        "step_key": run.step,
        "job_id": run.uuid("job"),
        "agent_id": run.uuid("agent"),
        "runner_environment": "self-hosted",
    }
    if kind == "tag":
        claims["build_tag"] = name
    return JobClaims(claims=claims, lifetime=TOKEN_LIFETIME_SECONDS)


def job_environment(
    scope: BuildkiteScope, run: JobRun, *, tokens: JobTokens, audiences: Sequence[str] = ()
) -> dict[str, str]:
    """The variables of a job: no token, but the agent's endpoint and access token with which
    `buildkite-agent oidc request-token` asks for one (docs/ci-tokens.md#buildkite)."""
    if audiences:
        raise UsageError(
            "Buildkite: a job asks for its audience when it requests a token"
            " (buildkite-agent oidc request-token --audience AUD); it is not part of the job"
        )
    claims = job_claims(scope, run)
    endpoint = tokens.endpoint(claims)
    kind, name = _job_ref(scope, run)
    env = {
        "CI": "true",
        "BUILDKITE": "true",
        "BUILDKITE_ORGANIZATION_SLUG": scope.organization,
        "BUILDKITE_PIPELINE_SLUG": scope.pipeline,
        "BUILDKITE_BRANCH": name,
        "BUILDKITE_COMMIT": run.sha,
        "BUILDKITE_BUILD_NUMBER": str(run.build_number),
        "BUILDKITE_BUILD_ID": run.uuid("build"),
        "BUILDKITE_JOB_ID": str(claims.claims["job_id"]),
        "BUILDKITE_STEP_KEY": run.step,
        "BUILDKITE_AGENT_ID": str(claims.claims["agent_id"]),
        "BUILDKITE_SOURCE": "webhook",
        "BUILDKITE_AGENT_ENDPOINT": endpoint.url,
        "BUILDKITE_AGENT_ACCESS_TOKEN": endpoint.bearer,
    }
    if kind == "tag":
        env["BUILDKITE_TAG"] = name
    return env
