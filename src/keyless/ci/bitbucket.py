"""Bitbucket Pipelines: the step's token is in ``BITBUCKET_STEP_OIDC_TOKEN`` when ``oidc: true``.

Facts: ci-oidc-facts §1 (Atlassian: "Integrate Pipelines with resource servers using OIDC").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from keyless.ci._claims import require_audience
from keyless.ci.base import (
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
)
from keyless.errors import CredentialError, UsageError
from keyless.http import HttpClient

STEP_VARIABLE = "BITBUCKET_STEP_OIDC_TOKEN"

_ISSUER = re.compile(
    r"https://api\.bitbucket\.org/2\.0/workspaces/[A-Za-z0-9_.-]+/pipelines-config/identity/oidc"
)

_OIDC_REMEDY = f"""\
Bitbucket sets {STEP_VARIABLE} only in steps with `oidc: true`. In bitbucket-pipelines.yml:

  pipelines:
    default:
      - step:
          name: Deploy
          oidc: true
          script:
            - keyless assume --role-arn "$AWS_ROLE_ARN"
"""


def _audience_remedy(audience: str) -> str:
    return f"""\
Bitbucket takes a step's audiences from bitbucket-pipelines.yml, not from the command line:

  - step:
      name: Deploy
      oidc:
        audiences:
          - {audience}

Or drop --audience and register the workspace audience (ari:cloud:bitbucket::workspace/UUID)
as the client ID of the IAM OIDC provider.
"""


#: `{REPO_UUID}:{STEP_UUID}`, or `{REPO_UUID}:{ENV_UUID}:{STEP_UUID}` in a deployment step, UUIDs
#: in braces (facts §1.4). The workspace is the issuer, so the first field is the repository.
SUBJECT_GRAMMAR = SubjectGrammar(
    segments=(
        SubjectSegment(
            literal="",
            field="repository UUID",
            role=SegmentRole.REPOSITORY,
            example="{00000000-0000-4000-8000-00000000000a}",
        ),
        SubjectSegment(
            literal=":",
            field="deployment environment UUID",
            role=SegmentRole.CONTEXT,
            example="{00000000-0000-4000-8000-00000000000b}",
        ),
        SubjectSegment(
            literal=":",
            field="step UUID",
            role=SegmentRole.PER_RUN,
            example="{00000000-0000-4000-8000-00000000000c}",
        ),
    )
)


class Bitbucket:
    name = "bitbucket"
    display_name = "Bitbucket Pipelines"
    markers: tuple[str, ...] = ("BITBUCKET_BUILD_NUMBER", "BITBUCKET_REPO_UUID", STEP_VARIABLE)
    # Bitbucket is not among the issuers for which STS exposes extra claims (facts §8): only
    # :sub and :aud can be conditioned, so branch or environment pins go through `sub`.
    aws_condition_claims: frozenset[str] = frozenset()
    aws_unconfirmed_claims: frozenset[str] = frozenset()
    safe_claims: frozenset[str] = STANDARD_SAFE_CLAIMS | {
        "branchName",
        "deploymentEnvironmentUuid",
        "pipelineRunUuid",
        "pipelineUuid",
        "repositoryUuid",
        "stepUuid",
        "workspaceUuid",
    }

    # One issuer per workspace (facts §1.2): without a `sub` pin, the whole workspace is trusted.
    shared_issuer = False
    subject_grammar = SUBJECT_GRAMMAR

    def in_ci(self, env: Mapping[str, str]) -> bool:
        return any(env.get(name) for name in self.markers)

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
        value = env.get(STEP_VARIABLE, "")
        if not value.strip():
            raise CredentialError(
                f"{self.display_name}: {STEP_VARIABLE} is not set in this step"
                " (the step has no `oidc: true`)",
                remedy=_OIDC_REMEDY,
            )
        obtained = checked_token(
            value, provider=self.name, display_name=self.display_name, source=STEP_VARIABLE
        )
        # The audience is fixed by the YAML; a different --audience is refused, not ignored.
        return require_audience(
            obtained,
            audience,
            display_name=self.display_name,
            remedy=_audience_remedy(audience or ""),
        )

    def owns_issuer(self, issuer: str) -> bool:
        return _ISSUER.fullmatch(issuer) is not None

    def session_name(self, env: Mapping[str, str]) -> str | None:
        # The step UUID (braces are not allowed in a session name) tells steps of a build apart.
        step = env.get("BITBUCKET_STEP_UUID", "").strip("{}")[:8]
        repository = env.get("BITBUCKET_REPO_SLUG") or env.get("BITBUCKET_REPO_UUID", "")
        return compose_session_name(
            "bitbucket", repository.strip("{}"), env.get("BITBUCKET_BUILD_NUMBER"), step
        )


PROVIDER = Bitbucket()


# --- trust: the scope a role can be pinned to (facts §1.4-1.5, security §6) ---------------------

_UUID = re.compile(
    r"\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?"
)
_SLUG = re.compile(r"[A-Za-z0-9_.-]+")


def issuer_for(workspace: str) -> str:
    """The workspace's issuer URL (one per workspace, containing its slug)."""
    return f"https://api.bitbucket.org/2.0/workspaces/{workspace}/pipelines-config/identity/oidc"


def _bare_uuid(value: str, what: str) -> str:
    match = _UUID.fullmatch(value.strip())
    if match is None:
        raise UsageError(
            f"Bitbucket {what} {value!r} is not a UUID",
            remedy=(
                "Copy it from Repository settings -> Pipelines -> OpenID Connect"
                " (with or without the braces)."
            ),
        )
    return match.group(1)


@dataclass(frozen=True, slots=True, kw_only=True)
class BitbucketScope:
    """A repository of a workspace, or one of its deployment environments."""

    workspace: str
    workspace_uuid: str
    repository_uuid: str
    environment_uuid: str | None = None

    def __post_init__(self) -> None:
        if not _SLUG.fullmatch(self.workspace):
            raise UsageError(f"Bitbucket workspace slug {self.workspace!r} is not a slug")
        _bare_uuid(self.workspace_uuid, "workspace UUID")
        _bare_uuid(self.repository_uuid, "repository UUID")
        if self.environment_uuid is not None:
            _bare_uuid(self.environment_uuid, "deployment environment UUID")

    @property
    def issuer(self) -> str:
        return issuer_for(self.workspace)

    @property
    def audience(self) -> str:
        # The default audience names the workspace UUID without braces (facts §1.3).
        return f"ari:cloud:bitbucket::workspace/{_bare_uuid(self.workspace_uuid, 'workspace UUID')}"

    def subject_pattern(self) -> str:
        """`{REPO}:*`, or `{REPO}:{ENV}:*`: the step UUID changes every run, so it is the only
        wildcard, and it sits after the fields that decide who may assume the role."""
        repository = "{" + _bare_uuid(self.repository_uuid, "repository UUID") + "}"
        if self.environment_uuid is None:
            return f"{repository}:*"
        environment = "{" + _bare_uuid(self.environment_uuid, "deployment environment UUID") + "}"
        return f"{repository}:{environment}:*"

    def trust_spec(self) -> TrustSpec:
        if self.environment_uuid is None:
            who = (
                "Any step of this repository (any branch, any deployment environment). For a"
                " deploy role, pin a deployment environment with --environment-uuid."
            )
        else:
            who = (
                "Only steps of this repository that deploy to this deployment environment; the"
                " branch is checked by Bitbucket's environment restrictions, not by IAM."
            )
        return TrustSpec(
            provider=PROVIDER.name,
            issuer=self.issuer,
            conditions=(
                TrustCondition(operator="StringEquals", claim="aud", values=(self.audience,)),
                TrustCondition(
                    operator="StringLike", claim="sub", values=(self.subject_pattern(),)
                ),
            ),
            notes=(who,),
        )
