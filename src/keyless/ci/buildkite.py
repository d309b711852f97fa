"""Buildkite: the job asks its agent for a token, ``buildkite-agent oidc request-token``.

Facts: ci-oidc-facts §5 (Buildkite "OIDC with AWS", ``buildkite-agent oidc request-token --help``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from keyless.ci.base import (
    DEFAULT_AWS_AUDIENCE,
    STANDARD_SAFE_CLAIMS,
    ObtainedToken,
    Runner,
    SegmentRole,
    SubjectGrammar,
    SubjectSegment,
    TrustCondition,
    TrustSpec,
    checked_token,
    compose_session_name,
    env_true,
    iam_literal,
    run_helper,
)
from keyless.errors import UsageError
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


#: `organization:ORG:pipeline:PIPELINE:ref:REF:commit:SHA:step:STEP_KEY` (facts §5).
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


class Buildkite:
    name = "buildkite"
    display_name = "Buildkite"
    markers: tuple[str, ...] = ("BUILDKITE",)
    # Buildkite is not among the issuers for which STS exposes extra claims (facts §8); its AWS
    # guide pins organization and pipeline through session tags (aws:RequestTag/...) instead.
    aws_condition_claims: frozenset[str] = frozenset()
    aws_unconfirmed_claims: frozenset[str] = frozenset()
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
    subject_grammar = SUBJECT_GRAMMAR

    def in_ci(self, env: Mapping[str, str]) -> bool:
        return env_true(env, "BUILDKITE")

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
        return checked_token(
            output, provider=self.name, display_name=self.display_name, source=" ".join(COMMAND)
        )

    def owns_issuer(self, issuer: str) -> bool:
        return issuer == ISSUER

    def session_name(self, env: Mapping[str, str]) -> str | None:
        # The job id tells the jobs of one build apart; its first 8 characters are enough.
        return compose_session_name(
            "buildkite",
            env.get("BUILDKITE_PIPELINE_SLUG"),
            env.get("BUILDKITE_BUILD_NUMBER"),
            env.get("BUILDKITE_JOB_ID", "")[:8],
        )


PROVIDER = Buildkite()


# --- trust: the scope a role can be pinned to (facts §5, security §6) ---------------------------

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
