"""Buildkite: the job asks its agent for a token, ``buildkite-agent oidc request-token``.

Facts: ci-oidc-facts §5 (Buildkite "OIDC with AWS", ``buildkite-agent oidc request-token --help``).
"""

from __future__ import annotations

from collections.abc import Mapping

from keyless.ci.base import (
    DEFAULT_AWS_AUDIENCE,
    STANDARD_SAFE_CLAIMS,
    ObtainedToken,
    Runner,
    checked_token,
    env_true,
    run_helper,
)
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


PROVIDER = Buildkite()
