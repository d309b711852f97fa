"""Bitbucket Pipelines: the step's token is in ``BITBUCKET_STEP_OIDC_TOKEN`` when ``oidc: true``.

Facts: docs/ci-tokens.md#bitbucket (Atlassian: "Integrate Pipelines with resource servers using
OIDC").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keyless.causes import Cause
from keyless.ci._claims import require_audience
from keyless.ci.base import (
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
)
from keyless.ci.shared import CiBase
from keyless.ci.subject_words import is_wild, named
from keyless.errors import CredentialError, UsageError
from keyless.limits import (
    BITBUCKET_AUDIENCE_MAX_CHARS,
    BITBUCKET_MAX_AUDIENCES,
)
from keyless.trust.glob import compile_glob

if TYPE_CHECKING:
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
#: in braces (docs/ci-tokens.md#bitbucket-sub). The workspace is the issuer, so the first field is
#: the repository.
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


# --- trust: the scope a role can be pinned to -----------------------------------------------------
# docs/ci-tokens.md#bitbucket-sub, docs/security-model.md#generator-rules

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
        # The default audience names the workspace UUID without braces
        # (docs/ci-tokens.md#bitbucket-audience).
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


# --- the provider -------------------------------------------------------------------------------


class Bitbucket(CiBase[BitbucketScope]):
    name = "bitbucket"
    short_name = "Bitbucket"
    scope_type = BitbucketScope
    display_name = "Bitbucket Pipelines"
    markers: tuple[str, ...] = ("BITBUCKET_BUILD_NUMBER", "BITBUCKET_REPO_UUID", STEP_VARIABLE)
    # Bitbucket is not among the issuers for which STS exposes extra claims
    # (docs/aws-sts-iam.md#condition-keys): only :sub and :aud can be conditioned, so branch or
    # environment pins go through `sub`.
    aws_condition_claims: frozenset[str] = frozenset()
    safe_claims: frozenset[str] = STANDARD_SAFE_CLAIMS | {
        "branchName",
        "deploymentEnvironmentUuid",
        "pipelineRunUuid",
        "pipelineUuid",
        "repositoryUuid",
        "stepUuid",
        "workspaceUuid",
    }

    # One issuer per workspace (docs/ci-tokens.md#bitbucket-issuer): without a `sub` pin, the whole
    # workspace is trusted.
    shared_issuer = False
    issuer_shape = _ISSUER
    subject_grammar = SUBJECT_GRAMMAR

    scope_options: tuple[ScopeOption, ...] = (
        ScopeOption(
            flag="--workspace",
            dest="workspace",
            metavar="SLUG",
            help="workspace slug (in the issuer URL)",
            required=True,
        ),
        ScopeOption(
            flag="--workspace-uuid",
            dest="workspace_uuid",
            metavar="UUID",
            help="workspace UUID (the audience)",
            required=True,
        ),
        ScopeOption(
            flag="--repository-uuid",
            dest="repository_uuid",
            metavar="UUID",
            help="repository UUID",
            required=True,
        ),
        ScopeOption(
            flag="--environment-uuid",
            dest="environment_uuid",
            metavar="UUID",
            help="deployment environment UUID (deploy roles)",
        ),
    )
    scope_usage: tuple[str, ...] = (
        "--workspace SLUG --workspace-uuid UUID --repository-uuid UUID",
        "[--environment-uuid UUID]",
    )

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
        obtained = self.checked(value, source=STEP_VARIABLE)
        # The audience is fixed by the YAML; a different --audience is refused, not ignored.
        return require_audience(
            obtained,
            audience,
            display_name=self.display_name,
            remedy=_audience_remedy(audience or ""),
        )

    def session_name(self, env: Mapping[str, str]) -> str | None:
        # The step UUID (braces are not allowed in a session name) tells steps of a build apart.
        step = env.get("BITBUCKET_STEP_UUID", "").strip("{}")[:8]
        repository = env.get("BITBUCKET_REPO_SLUG") or env.get("BITBUCKET_REPO_UUID", "")
        return compose_session_name(
            "bitbucket", repository.strip("{}"), env.get("BITBUCKET_BUILD_NUMBER"), step
        )

    # --- the local stack (keyless.local): what a step's token and environment look like -------

    #: Bitbucket's API serves the keys at `.../oidc/keys.json` (docs/ci-tokens.md#bitbucket-issuer;
    #: jwks_uri UNCONFIRMED).
    jwks_suffix = "/keys.json"

    def claims_for(
        self, scope: BitbucketScope, run: JobRun, *, audiences: Sequence[str] = ()
    ) -> JobClaims:
        return step_claims(scope, run, audiences=audiences)

    def environment_for(
        self,
        scope: BitbucketScope,
        run: JobRun,
        *,
        tokens: JobTokens,
        audiences: Sequence[str] = (),
    ) -> dict[str, str]:
        return step_environment(scope, run, tokens=tokens, audiences=audiences)

    # --- keyless doctor: the deployment environment in `sub` (docs/ci-tokens.md#bitbucket-sub) --

    def guess_from_subject(self, subject: str) -> bool:
        return subject.startswith("{")

    def oidc_disabled(self, env: Mapping[str, str]) -> bool:
        return not env.get(STEP_VARIABLE)

    def renew_hint(self) -> str | None:
        return (
            "Bitbucket's step token cannot be renewed within the step: re-run the step, and"
            " exchange it early in the step."
        )

    def audience_hint(self) -> str | None:
        return (
            "Bitbucket sets the audience in bitbucket-pipelines.yml (`oidc: {audiences: [...]}`);"
            " its default is the workspace ARI, ari:cloud:bitbucket::workspace/UUID."
        )

    def classify_subject(
        self, actual: str, patterns: Sequence[str], *, differing: SegmentRole | None
    ) -> SubjectFinding | None:
        parts = actual.split(":")
        repository = parts[0]
        if not any(compile_glob(p.split(":")[0]).match(repository) for p in patterns):
            return SubjectFinding(
                cause=Cause.REPOSITORY,
                fix=f"sub {actual!r} names another repository than the role pins"
                f" ({', '.join(patterns)}); each repository needs its own role or pattern.",
            )
        if len(parts) == 3:
            return _finding(Cause.DEPLOYMENT_ENVIRONMENT, _ENVIRONMENT_FIX, actual)
        return _finding(Cause.DEPLOYMENT_ENVIRONMENT, _NO_ENVIRONMENT_FIX, actual)

    def likely_subject_cause(self, subject: str) -> SubjectFinding | None:
        if subject.count(":") == 2:
            return _finding(Cause.DEPLOYMENT_ENVIRONMENT, _ENVIRONMENT_FIX, subject)
        return None

    # --- keyless audit ---------------------------------------------------------------------------

    def describe_subject(self, fields: Mapping[str, str], issuer: str) -> str | None:
        # The issuer names the workspace: api.bitbucket.org/2.0/workspaces/SLUG/pipelines-config/...
        _, marker, after = issuer.partition("/workspaces/")
        workspace = after.split("/", 1)[0] if marker else ""
        tenant = f"workspace {workspace}" if workspace else issuer
        repo = fields.get("repository UUID", "*")
        where = f"any repository of {tenant}" if repo.strip("*") == "" else f"repository {repo}"
        if is_wild(repo) and repo.strip("*"):
            where = f"repositories matching {repo}"
        environment = fields.get("deployment environment UUID")
        if environment is None or environment.strip("*") == "":
            what = "any step"
        else:
            what = named("deployment environment", "deployment environments", environment)
        return f"{what} of {where}"


PROVIDER = Bitbucket()


# --- the local stack: a step's token and environment (docs/ci-tokens.md#bitbucket) ----------------

#: Atlassian states no lifetime (docs/ci-tokens.md#bitbucket-issuer, UNCONFIRMED): an hour, so a
#: long step's token holds.
TOKEN_LIFETIME_SECONDS = 3600


def _braced(value: str, what: str) -> str:
    return "{" + _bare_uuid(value, what) + "}"


def _environment_uuid(scope: BitbucketScope, run: JobRun) -> str | None:
    # A scope without an environment admits every step; a deployment step still has one.
    if scope.environment_uuid is not None:
        return _braced(scope.environment_uuid, "deployment environment UUID")
    if run.deployment is not None:
        return "{" + run.uuid("deployment environment") + "}"
    return None


def _audience(scope: BitbucketScope, audiences: Sequence[str]) -> str | list[str]:
    if not audiences:
        return scope.audience
    if len(audiences) > BITBUCKET_MAX_AUDIENCES:
        raise UsageError(f"Bitbucket: a step has at most {BITBUCKET_MAX_AUDIENCES} audiences")
    for audience in audiences:
        if not audience or len(audience) > BITBUCKET_AUDIENCE_MAX_CHARS:
            raise UsageError(
                f"Bitbucket audience {audience[:40]!r} must have 1 to"
                f" {BITBUCKET_AUDIENCE_MAX_CHARS}"
                " characters"
            )
    # Custom audiences are appended to the workspace's, so `aud` becomes a list (OpenFaaS'
    # reading; Atlassian does not say, docs/ci-tokens.md#bitbucket-audience).
    return list(dict.fromkeys((scope.audience, *audiences)))


def step_claims(scope: BitbucketScope, run: JobRun, *, audiences: Sequence[str] = ()) -> JobClaims:
    """The claims of a step's token: brace-wrapped UUIDs, a 2-part `sub`, or a 3-part one in a
    deployment step (Atlassian's example payload, docs/ci-tokens.md#bitbucket-sub)."""
    repository = _braced(scope.repository_uuid, "repository UUID")
    step = "{" + run.uuid("step") + "}"
    environment = _environment_uuid(scope, run)
    subject = f"{repository}:{environment}:{step}" if environment else f"{repository}:{step}"
    claims: dict[str, object] = {
        "sub": subject,
        "aud": _audience(scope, audiences),
        "stepUuid": step,
        "repositoryUuid": repository,
    }
    kind, name = run.ref()
    if kind == "branch":
        # Whether tag pipelines carry branchName is UNCONFIRMED (docs/ci-tokens.md#bitbucket-sub):
        # left out.
        claims["branchName"] = name
    claims["pipelineUuid"] = "{" + run.uuid("pipeline") + "}"
    claims["workspaceUuid"] = _braced(scope.workspace_uuid, "workspace UUID")
    if environment is not None:
        claims["deploymentEnvironmentUuid"] = environment
    # The example payload has exp and iat, no nbf.
    return JobClaims(claims=claims, lifetime=TOKEN_LIFETIME_SECONDS, not_before=False)


def step_environment(
    scope: BitbucketScope, run: JobRun, *, tokens: JobTokens, audiences: Sequence[str] = ()
) -> dict[str, str]:
    """The variables of a step with `oidc: true`: the token is in the environment from the start."""
    claims = step_claims(scope, run, audiences=audiences)
    repository = _braced(scope.repository_uuid, "repository UUID")
    # The scope knows the repository by UUID only; its slug is made up from it.
    slug = "repo-" + _bare_uuid(scope.repository_uuid, "repository UUID")[:8]
    kind, name = run.ref()
    env = {
        "CI": "true",
        "BITBUCKET_BUILD_NUMBER": str(run.build_number),
        "BITBUCKET_COMMIT": run.sha,
        "BITBUCKET_WORKSPACE": scope.workspace,
        "BITBUCKET_REPO_SLUG": slug,
        "BITBUCKET_REPO_FULL_NAME": f"{scope.workspace}/{slug}",
        "BITBUCKET_REPO_UUID": repository,
        "BITBUCKET_PIPELINE_UUID": "{" + run.uuid("pipeline") + "}",
        "BITBUCKET_STEP_UUID": "{" + run.uuid("step") + "}",
        "BITBUCKET_BRANCH" if kind == "branch" else "BITBUCKET_TAG": name,
    }
    environment = _environment_uuid(scope, run)
    if environment is not None:
        env["BITBUCKET_DEPLOYMENT_ENVIRONMENT_UUID"] = environment
        env["BITBUCKET_DEPLOYMENT_ENVIRONMENT"] = run.deployment or "production"
    env[STEP_VARIABLE] = tokens.sign(claims)
    return env


# --- keyless doctor: why a Bitbucket `sub` does not match ---------------------------------------

_ENVIRONMENT_FIX = (
    "The step's deployment environment is part of sub ({subject}: repository, environment and"
    " step UUIDs), and the trust policy pins another one, or none. Pin the step's environment"
    " (keyless trust build --environment-uuid UUID), or set the step's `deployment:` to the"
    " environment the role expects."
)
_NO_ENVIRONMENT_FIX = (
    "The trust policy pins a deployment environment, and this step has none (sub {subject}:"
    " repository and step UUIDs only). Add `deployment: NAME` to the step."
)


def _finding(cause: Cause, fix: str, subject: str) -> SubjectFinding:
    return SubjectFinding(cause=cause, fix=fix.format(subject=subject))
