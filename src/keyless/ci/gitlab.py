"""GitLab CI: the job's token is in the variable its ``id_tokens:`` entry names.

Facts: docs/ci-tokens.md#gitlab (GitLab "OpenID Connect (OIDC) Authentication Using ID Tokens").
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keyless.ci._claims import require_audience, token_audiences
from keyless.ci.base import (
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
    stable_number,
)
from keyless.ci.shared import CiBase
from keyless.compat import StrEnum
from keyless.errors import CredentialError, UsageError

if TYPE_CHECKING:
    from keyless.http import HttpClient

#: Names the variable holding the token; ``--token-env NAME`` sets it for one run.
NAME_VARIABLE = "KEYLESS_TOKEN_ENV"
#: Tried in this order when no name is given: keyless' own name first (unambiguous intent), then
#: the name GitLab's documentation uses, then names common in AWS guides, the generic ones last
#: because they are the likeliest to hold a token meant for another service.
DEFAULT_TOKEN_VARIABLES = (
    "KEYLESS_OIDC_TOKEN",
    "GITLAB_OIDC_TOKEN",
    "AWS_OIDC_TOKEN",
    "OIDC_TOKEN",
    "ID_TOKEN",
)
#: Deprecated in GitLab 15.9 and removed in 17.0; their audience cannot be chosen. Refused.
DEPRECATED_VARIABLES = ("CI_JOB_JWT_V2", "CI_JOB_JWT")


def _id_tokens_remedy(env: Mapping[str, str], name: str, audience: str | None) -> str:
    aud = audience or env.get("CI_SERVER_URL") or "https://gitlab.com"
    return f"""\
GitLab puts a job's ID token in the variable its `id_tokens:` entry names. In .gitlab-ci.yml:

  deploy:
    id_tokens:
      {name}:
        aud: {aud}
    script:
      - keyless assume --role-arn "$AWS_ROLE_ARN"

keyless looks for {", ".join(DEFAULT_TOKEN_VARIABLES)}
in that order, or reads the variable named by --token-env NAME (or {NAME_VARIABLE}).
"""


DEFAULT_URL = "https://gitlab.com"

#: `project_path:GROUP/.../PROJECT:ref_type:branch|tag:ref:NAME` (docs/ci-tokens.md#gitlab-sub); the
#: group path may nest, and its first component is the top-level group.
SUBJECT_GRAMMAR = SubjectGrammar(
    segments=(
        SubjectSegment(
            literal="project_path:",
            field="project path",
            role=SegmentRole.PATH,
            example="zz-probe-group/zz-probe-project",
        ),
        SubjectSegment(
            literal=":ref_type:", field="ref type", role=SegmentRole.CONTEXT, example="branch"
        ),
        SubjectSegment(literal=":ref:", field="ref", role=SegmentRole.CONTEXT, example="zz-probe"),
    )
)


# --- trust: the scope a role can be pinned to -----------------------------------------------------
# docs/ci-tokens.md#gitlab-sub, docs/security-model.md#generator-rules

_PROJECT = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+")


class RefType(StrEnum):
    BRANCH = "branch"
    TAG = "tag"


@dataclass(frozen=True, slots=True, kw_only=True)
class GitLabScope:
    """A project (``group/.../project``) of a GitLab instance, optionally one branch or tag."""

    project: str
    ref: str | None = None
    ref_type: RefType | None = None
    url: str = DEFAULT_URL

    def __post_init__(self) -> None:
        if not _PROJECT.fullmatch(self.project):
            raise UsageError(f"GitLab project {self.project!r} is not GROUP/PROJECT")
        if self.ref is not None and (not self.ref or ":" in self.ref):
            raise UsageError(f"GitLab ref {self.ref!r} is not a branch or tag name")
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            raise UsageError(f"GitLab URL {self.url!r} is not an https instance URL")

    @property
    def issuer(self) -> str:
        # The issuer and the AWS audience are the instance URL without a trailing slash.
        return self.url.rstrip("/")

    @property
    def audience(self) -> str:
        return self.issuer

    def trust_spec(self) -> TrustSpec:
        base = f"project_path:{iam_literal(self.project)}"
        if self.ref is not None:
            ref_type = self.ref_type or RefType.BRANCH
            subject = TrustCondition(
                operator="StringEquals",
                claim="sub",
                values=(f"{base}:ref_type:{ref_type.value}:ref:{iam_literal(self.ref)}",),
            )
            who = (
                f"Only jobs of this project running for the {ref_type.value} {self.ref!r}."
                " IAM cannot see `ref_protected`: protect the branch or tag in GitLab."
            )
        elif self.ref_type is not None:
            subject = TrustCondition(
                operator="StringLike",
                claim="sub",
                values=(f"{base}:ref_type:{self.ref_type.value}:ref:*",),
            )
            who = f"Jobs of this project running for any {self.ref_type.value}."
        else:
            subject = TrustCondition(operator="StringLike", claim="sub", values=(f"{base}:*",))
            who = (
                "Any job of this project: every branch and tag. For a deploy role, pin one"
                " with --ref (and --ref-type tag for tags)."
            )
        return TrustSpec(
            provider=PROVIDER.name,
            issuer=self.issuer,
            conditions=(
                TrustCondition(operator="StringEquals", claim="aud", values=(self.audience,)),
                subject,
            ),
            notes=(who,),
        )


# --- the provider -------------------------------------------------------------------------------


class GitLab(CiBase[GitLabScope]):
    name = "gitlab"
    short_name = "GitLab"
    scope_type = GitLabScope
    display_name = "GitLab CI"
    markers: tuple[str, ...] = ("GITLAB_CI",)
    # GitLab is not among the issuers for which STS exposes extra claims
    # (docs/ci-tokens.md#gitlab-aws).
    aws_condition_claims: frozenset[str] = frozenset()
    # Not user_email, user_identities or groups_direct: personal data that logs should not keep.
    safe_claims: frozenset[str] = STANDARD_SAFE_CLAIMS | {
        "ci_config_ref_uri",
        "ci_config_sha",
        "deployment_tier",
        "environment",
        "environment_action",
        "environment_protected",
        "job_id",
        "namespace_id",
        "namespace_path",
        "pipeline_id",
        "pipeline_source",
        "project_id",
        "project_path",
        "project_visibility",
        "ref",
        "ref_path",
        "ref_protected",
        "ref_type",
        "runner_environment",
        "runner_id",
        "sha",
        "user_access_level",
        "user_id",
        "user_login",
    }

    # gitlab.com (and any self-managed instance) mints tokens for every project it hosts.
    shared_issuer = True
    subject_grammar = SUBJECT_GRAMMAR

    scope_options: tuple[ScopeOption, ...] = (
        ScopeOption(
            flag="--project",
            dest="project",
            metavar="GROUP/PROJECT",
            help="project path",
            required=True,
        ),
        # Declared (with help for both CIs) by GitHub, whose group comes first.
        ScopeOption(flag="--ref", dest="ref"),
        ScopeOption(
            flag="--ref-type",
            dest="ref_type",
            choices=tuple(t.value for t in RefType),
            help="kind of --ref (default: branch)",
        ),
        ScopeOption(
            flag="--gitlab-url",
            dest="url",
            metavar="URL",
            help=f"instance URL, the issuer (default: {DEFAULT_URL})",
        ),
    )
    scope_usage: tuple[str, ...] = (
        "--project GROUP/PROJECT [--ref NAME] [--ref-type branch|tag] [--gitlab-url URL]",
    )

    def scope_from_values(self, values: Mapping[str, str | None]) -> GitLabScope:
        ref_type, url = values.get("ref_type"), values.get("url")
        return GitLabScope(
            project=values["project"] or "",
            ref=values.get("ref"),
            ref_type=RefType(ref_type) if ref_type else None,
            url=url or DEFAULT_URL,
        )

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
        named = env.get(NAME_VARIABLE, "").strip()
        if named:
            return self._named(env, named, audience)
        found = [
            self._token(env, name) for name in DEFAULT_TOKEN_VARIABLES if env.get(name, "").strip()
        ]
        if not found:
            for name in DEPRECATED_VARIABLES:
                if env.get(name):
                    raise self._deprecated(env, name, audience)
            raise CredentialError(
                f"{self.display_name}: no ID token variable is set in this job"
                f" (looked for {', '.join(DEFAULT_TOKEN_VARIABLES)})",
                remedy=_id_tokens_remedy(env, DEFAULT_TOKEN_VARIABLES[0], audience),
            )
        if audience is not None:
            # Several id_tokens entries usually mean several audiences: take the one asked for.
            for obtained in found:
                if audience in token_audiences(obtained, display_name=self.display_name):
                    return obtained
            raise CredentialError(
                f"{self.display_name}: none of {', '.join(o.source for o in found)}"
                f" has audience {audience!r}",
                remedy=_id_tokens_remedy(env, found[0].source, audience),
            )
        if len({o.token for o in found}) > 1:
            raise CredentialError(
                f"{self.display_name}: several ID token variables are set"
                f" ({', '.join(o.source for o in found)}); choose one with --token-env NAME"
                " or --audience AUD",
                remedy=f"For example: keyless token --token-env {found[0].source}",
            )
        return found[0]

    def owns_issuer(self, issuer: str) -> bool:
        # The issuer is the instance URL: gitlab.com, or a self-managed host. Only hosts whose
        # first label is "gitlab" are claimed; other self-managed issuers need --ci gitlab.
        parts = urllib.parse.urlsplit(issuer)
        host = parts.hostname or ""
        return (
            parts.scheme == "https"
            and parts.path in ("", "/")
            and not parts.query
            and (host == "gitlab.com" or host.startswith("gitlab."))
        )

    def session_name(self, env: Mapping[str, str]) -> str | None:
        return compose_session_name("gitlab", env.get("CI_PROJECT_PATH"), env.get("CI_JOB_ID"))

    # --- the local stack (keyless.local): what a job's token and environment look like --------

    #: GitLab serves its keys here, not below `.well-known` (docs/ci-tokens.md#gitlab-issuer).
    jwks_suffix = "/oauth/discovery/keys"

    def claims_for(
        self, scope: GitLabScope, run: JobRun, *, audiences: Sequence[str] = ()
    ) -> JobClaims:
        return job_claims(scope, run, audiences=audiences)

    def environment_for(
        self, scope: GitLabScope, run: JobRun, *, tokens: JobTokens, audiences: Sequence[str] = ()
    ) -> dict[str, str]:
        return job_environment(scope, run, tokens=tokens, audiences=audiences)

    def _named(self, env: Mapping[str, str], name: str, audience: str | None) -> ObtainedToken:
        if name in DEPRECATED_VARIABLES:
            raise self._deprecated(env, name, audience)
        if not env.get(name, "").strip():
            raise CredentialError(
                f"{self.display_name}: {name} (named by --token-env or {NAME_VARIABLE})"
                " is not set in this job",
                remedy=_id_tokens_remedy(env, name, audience),
            )
        return require_audience(
            self._token(env, name),
            audience,
            display_name=self.display_name,
            remedy=_id_tokens_remedy(env, name, audience),
        )

    def _token(self, env: Mapping[str, str], name: str) -> ObtainedToken:
        return self.checked(env[name], source=name)

    def _deprecated(
        self, env: Mapping[str, str], name: str, audience: str | None
    ) -> CredentialError:
        return CredentialError(
            f"{self.display_name}: {name} is deprecated (GitLab 15.9, removed in 17.0) and its"
            " audience cannot be chosen; keyless reads an `id_tokens:` variable instead",
            remedy=_id_tokens_remedy(env, DEFAULT_TOKEN_VARIABLES[0], audience),
        )


PROVIDER = GitLab()


# --- the local stack: a job's token and environment (docs/ci-tokens.md#gitlab) --------------------

#: `exp` is the job's timeout (docs/ci-tokens.md#gitlab-issuer); GitLab's default job timeout is an
#: hour, and the documented example token lives 3600 s.
TOKEN_LIFETIME_SECONDS = 3600
#: The `id_tokens:` variable the emulated job declares: GITLAB_OIDC_TOKEN, GitLab's docs' name.
ID_TOKEN_VARIABLE = DEFAULT_TOKEN_VARIABLES[1]
_USER = "keyless-local"
_TIERS = frozenset({"production", "staging", "testing", "development"})


def _job_ref(scope: GitLabScope, run: JobRun) -> tuple[str, str]:
    """``(ref_type, ref)`` of the job, within what the scope pins."""
    pinned = None
    if scope.ref is not None:
        prefix = "refs/tags/" if scope.ref_type == RefType.TAG else "refs/heads/"
        pinned = prefix + scope.ref
    kind, name = run.ref(pinned)
    if scope.ref_type is not None and kind != scope.ref_type.value:
        raise UsageError(
            f"the scope admits {scope.ref_type.value}s only; give the job's"
            f" {scope.ref_type.value} (the job runs for the {kind} {name!r})"
        )
    return kind, name


def job_claims(scope: GitLabScope, run: JobRun, *, audiences: Sequence[str] = ()) -> JobClaims:
    """The claims of an `id_tokens:` token: `project_path:G/P:ref_type:T:ref:R` and GitLab's
    custom claims, ids and booleans as strings (docs/ci-tokens.md#gitlab-sub)."""
    kind, name = _job_ref(scope, run)
    namespace = scope.project.rpartition("/")[0]
    ref_path = f"refs/tags/{name}" if kind == "tag" else f"refs/heads/{name}"
    host = scope.issuer.removeprefix("https://")
    aud: str | list[str] = scope.audience
    if audiences:
        # One `aud:` string, or a list of them, per id_tokens entry.
        aud = audiences[0] if len(audiences) == 1 else list(dict.fromkeys(audiences))
    claims: dict[str, object] = {
        "namespace_id": stable_number(f"gitlab namespace {namespace}", digits=8),
        "namespace_path": namespace,
        "project_id": stable_number(f"gitlab project {scope.project}", digits=8),
        "project_path": scope.project,
        "user_id": stable_number(f"gitlab user {_USER}", digits=7),
        "user_login": _USER,
        "user_email": f"{_USER}@example.invalid",
        "user_access_level": "developer",
        "pipeline_id": run.number("pipeline", digits=10),
        "pipeline_source": run.event,
        "job_id": run.number("job", digits=10),
        "ref": name,
        "ref_type": kind,
        "ref_path": ref_path,
        "ref_protected": "false",
    }
    if run.deployment is not None:
        claims["environment"] = run.deployment
        claims["environment_protected"] = "false"
        claims["deployment_tier"] = run.deployment if run.deployment in _TIERS else "other"
        claims["environment_action"] = "start"
    claims |= {
        "runner_id": stable_number("gitlab runner", digits=8),
        "runner_environment": "gitlab-hosted",
        "sha": run.sha,
        "project_visibility": "private",
        "ci_config_ref_uri": f"{host}/{scope.project}//.gitlab-ci.yml@{ref_path}",
        "ci_config_sha": run.sha,
        "jti": run.uuid("jti"),
        "sub": f"project_path:{scope.project}:ref_type:{kind}:ref:{name}",
        "aud": aud,
    }
    return JobClaims(claims=claims, lifetime=TOKEN_LIFETIME_SECONDS)


def job_environment(
    scope: GitLabScope, run: JobRun, *, tokens: JobTokens, audiences: Sequence[str] = ()
) -> dict[str, str]:
    """The predefined variables of a job, and its `id_tokens:` entry as a variable."""
    claims = job_claims(scope, run, audiences=audiences)
    kind, name = _job_ref(scope, run)
    namespace, _, project_name = scope.project.rpartition("/")
    env = {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_SERVER_URL": scope.issuer,
        "CI_SERVER_HOST": urllib.parse.urlsplit(scope.issuer).netloc,
        "CI_PROJECT_PATH": scope.project,
        "CI_PROJECT_ID": str(claims.claims["project_id"]),
        "CI_PROJECT_NAME": project_name,
        "CI_PROJECT_NAMESPACE": namespace,
        "CI_PROJECT_URL": f"{scope.issuer}/{scope.project}",
        "CI_COMMIT_SHA": run.sha,
        "CI_COMMIT_SHORT_SHA": run.sha[:8],
        "CI_COMMIT_REF_NAME": name,
        "CI_COMMIT_BRANCH" if kind == "branch" else "CI_COMMIT_TAG": name,
        "CI_COMMIT_REF_PROTECTED": "false",
        "CI_PIPELINE_ID": str(claims.claims["pipeline_id"]),
        "CI_PIPELINE_IID": str(run.build_number),
        "CI_PIPELINE_SOURCE": run.event,
        "CI_JOB_ID": str(claims.claims["job_id"]),
        "CI_JOB_NAME": run.step,
        "GITLAB_USER_LOGIN": _USER,
        "GITLAB_USER_ID": str(claims.claims["user_id"]),
    }
    if run.deployment is not None:
        env["CI_ENVIRONMENT_NAME"] = run.deployment
        env["CI_ENVIRONMENT_TIER"] = str(claims.claims["deployment_tier"])
    env[ID_TOKEN_VARIABLE] = tokens.sign(claims)
    return env
