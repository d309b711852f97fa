"""CircleCI: tokens in ``CIRCLE_OIDC_TOKEN_V2`` / ``CIRCLE_OIDC_TOKEN``; other audiences come
from ``circleci run oidc get``. Facts: docs/ci-tokens.md#circleci (CircleCI: "Using OpenID
Connect tokens").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from keyless.ci._claims import token_audiences
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
    run_helper,
    stable_uuid,
)
from keyless.ci.shared import CiBase
from keyless.errors import CredentialError, UsageError

if TYPE_CHECKING:
    from keyless.http import HttpClient

#: V2 first: its `sub` adds the VCS origin and ref, so trust policies can pin a branch.
ENV_VARIABLES = ("CIRCLE_OIDC_TOKEN_V2", "CIRCLE_OIDC_TOKEN")

_ISSUER = re.compile(r"https://oidc\.circleci\.com/org/[0-9a-fA-F-]{36}")

_MISSING_REMEDY = """\
CircleCI sets CIRCLE_OIDC_TOKEN and CIRCLE_OIDC_TOKEN_V2 in the jobs it runs. A build of a
pull request from a fork gets them only when the project setting
"Pass secrets to builds from forked pull requests" is on.
Outside CircleCI, pass the token with --token-file PATH.
"""

_CLI_REMEDY = """\
A token for another audience comes from the CircleCI CLI (`circleci run oidc get`): install it in
the job's image, or drop --audience and register the organization ID (the default audience of
$CIRCLE_OIDC_TOKEN_V2) as the client ID of the IAM OIDC provider.
"""


#: V1 `org/ORG/project/PROJECT/user/USER`; V2 appends `/vcs-origin/ORIGIN/vcs-ref/REF`
#: (docs/ci-tokens.md#circleci). The organization is also in the issuer, one per organization.
SUBJECT_GRAMMAR = SubjectGrammar(
    segments=(
        SubjectSegment(
            literal="org/",
            field="organization ID",
            role=SegmentRole.TENANT,
            example="00000000-0000-4000-8000-00000000000a",
        ),
        SubjectSegment(
            literal="/project/",
            field="project ID",
            role=SegmentRole.REPOSITORY,
            example="00000000-0000-4000-8000-00000000000b",
        ),
        SubjectSegment(
            literal="/user/",
            field="user ID",
            role=SegmentRole.ACTOR,
            example="00000000-0000-4000-8000-00000000000c",
        ),
        SubjectSegment(
            literal="/vcs-origin/",
            field="VCS origin",
            role=SegmentRole.PER_RUN,
            example="github.com/zz-probe/zz-probe",
        ),
        SubjectSegment(
            literal="/vcs-ref/",
            field="VCS ref",
            role=SegmentRole.CONTEXT,
            example="refs/heads/zz-probe",
            name_prefixes=("refs/heads/", "refs/tags/"),
        ),
    )
)


# --- trust: the scope a role can be pinned to -----------------------------------------------------
# docs/ci-tokens.md#circleci, docs/security-model.md#other-risks, #generator-rules

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def issuer_for(org_id: str) -> str:
    return f"https://oidc.circleci.com/org/{org_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CircleCIScope:
    """A project of an organization, both by their UUIDs (Organization/Project Settings)."""

    org_id: str
    project_id: str

    def __post_init__(self) -> None:
        for what, value in (("organization ID", self.org_id), ("project ID", self.project_id)):
            if not _UUID.fullmatch(value):
                raise UsageError(f"CircleCI {what} {value!r} is not a UUID")

    @property
    def issuer(self) -> str:
        return issuer_for(self.org_id)

    @property
    def audience(self) -> str:
        # The default audience is the organization ID (docs/ci-tokens.md#circleci).
        return self.org_id

    def trust_spec(self) -> TrustSpec:
        # The user segment is the only wildcard: it comes after the organization and project,
        # and it also admits the V2 subject's vcs-origin/vcs-ref tail.
        subject = f"org/{self.org_id}/project/{self.project_id}/user/*"
        return TrustSpec(
            provider=PROVIDER.name,
            issuer=self.issuer,
            conditions=(
                TrustCondition(operator="StringEquals", claim="aud", values=(self.audience,)),
                TrustCondition(operator="StringLike", claim="sub", values=(subject,)),
            ),
            notes=(
                "Any job of this project, whoever started it; SSH re-runs get tokens too, and"
                " forked pull requests do when the project passes secrets to them.",
            ),
        )


# --- the provider -------------------------------------------------------------------------------


class CircleCI(CiBase[CircleCIScope]):
    name = "circleci"
    short_name = "CircleCI"
    scope_type = CircleCIScope
    display_name = "CircleCI"
    markers: tuple[str, ...] = ("CIRCLECI",)
    # STS validates some CircleCI-specific claims since January 2026, but the list of keys is
    # UNCONFIRMED (docs/aws-sts-iam.md#condition-keys): claim none, so generated policies rely on
    # `sub` and `aud` only, and list CircleCI's own claims as unconfirmed, so an evaluator calls
    # them undecidable.
    aws_condition_claims: frozenset[str] = frozenset()
    aws_unconfirmed_claims: frozenset[str] = frozenset(
        {
            "oidc.circleci.com/context-ids",
            "oidc.circleci.com/project-id",
            "oidc.circleci.com/ssh-rerun",
            "oidc.circleci.com/vcs-origin",
            "oidc.circleci.com/vcs-ref",
        }
    )
    safe_claims: frozenset[str] = STANDARD_SAFE_CLAIMS | {
        "oidc.circleci.com/context-ids",
        "oidc.circleci.com/project-id",
        "oidc.circleci.com/ssh-rerun",
        "oidc.circleci.com/vcs-origin",
        "oidc.circleci.com/vcs-ref",
    }

    # One issuer per organization (docs/ci-tokens.md#circleci): without a `sub` pin, the whole org
    # is trusted.
    shared_issuer = False
    issuer_shape = _ISSUER
    subject_grammar = SUBJECT_GRAMMAR

    scope_options: tuple[ScopeOption, ...] = (
        ScopeOption(
            flag="--org-id", dest="org_id", metavar="UUID", help="organization ID", required=True
        ),
        ScopeOption(
            flag="--project-id", dest="project_id", metavar="UUID", help="project ID", required=True
        ),
    )
    scope_usage: tuple[str, ...] = ("--org-id UUID --project-id UUID",)

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
        found = [
            self.checked(env[name], source=name)
            for name in ENV_VARIABLES
            if env.get(name, "").strip()
        ]
        if audience is None:
            if not found:
                raise CredentialError(
                    f"{self.display_name}: neither {' nor '.join(ENV_VARIABLES)} is set",
                    remedy=_MISSING_REMEDY,
                )
            return found[0]
        for obtained in found:
            # The job's own token already has the audience: no need for the CLI.
            if audience in token_audiences(obtained, display_name=self.display_name):
                return obtained
        # Only `aud` can be customised (docs/ci-tokens.md#circleci). The audience is not a secret,
        # so argv is safe.
        argv = ["circleci", "run", "oidc", "get", "--claims", json.dumps({"aud": audience})]
        output = run_helper(
            runner,
            argv,
            env=env,
            display_name=self.display_name,
            missing_remedy=_CLI_REMEDY,
            failure_remedy=_MISSING_REMEDY,
        )
        return self.checked(output, source="circleci run oidc get")

    def session_name(self, env: Mapping[str, str]) -> str | None:
        return compose_session_name(
            "circleci", env.get("CIRCLE_PROJECT_REPONAME"), env.get("CIRCLE_BUILD_NUM")
        )

    # --- the local stack (keyless.local): what a job's tokens and environment look like -------

    def claims_for(
        self, scope: CircleCIScope, run: JobRun, *, audiences: Sequence[str] = ()
    ) -> JobClaims:
        return token_claims(scope, run, audiences=audiences)

    def environment_for(
        self, scope: CircleCIScope, run: JobRun, *, tokens: JobTokens, audiences: Sequence[str] = ()
    ) -> dict[str, str]:
        return job_environment(scope, run, tokens=tokens, audiences=audiences)


PROVIDER = CircleCI()


# --- the local stack: a job's tokens and environment (docs/ci-tokens.md#circleci) -----------------

#: `exp = iat + 1 h` (docs/ci-tokens.md#circleci).
TOKEN_LIFETIME_SECONDS = 3600
#: The user who started the emulated job.
_USER = "keyless-local"


def _vcs_origin(scope: CircleCIScope) -> str:
    # The scope knows the project by id only; its repository name is made up from it.
    return f"github.com/{_USER}/project-{scope.project_id[:8]}"


def token_claims(
    scope: CircleCIScope, run: JobRun, *, audiences: Sequence[str] = (), version: Literal[1, 2] = 2
) -> JobClaims:
    """The claims of ``$CIRCLE_OIDC_TOKEN`` (``version=1``: `org/O/project/P/user/U`) or of
    ``$CIRCLE_OIDC_TOKEN_V2`` (the V1 subject plus `/vcs-origin/ORIGIN/vcs-ref/REF`); one custom
    audience as `circleci run oidc get --claims` gives it (docs/ci-tokens.md#circleci)."""
    if len(audiences) > 1:
        raise UsageError("CircleCI: a token has exactly one audience")
    kind, name = run.ref()
    vcs_ref = f"refs/tags/{name}" if kind == "tag" else f"refs/heads/{name}"
    user = stable_uuid(f"circleci user {_USER}")
    subject = f"org/{scope.org_id}/project/{scope.project_id}/user/{user}"
    if version == 2:
        subject += f"/vcs-origin/{_vcs_origin(scope)}/vcs-ref/{vcs_ref}"
    claims: dict[str, object] = {
        "sub": subject,
        "aud": audiences[0] if audiences else scope.audience,
        "oidc.circleci.com/project-id": scope.project_id,
        "oidc.circleci.com/context-ids": [],
        "oidc.circleci.com/vcs-origin": _vcs_origin(scope),
        "oidc.circleci.com/vcs-ref": vcs_ref,
        "oidc.circleci.com/ssh-rerun": False,
    }
    # CircleCI's claim table lists iss, sub, aud, iat and exp: no nbf.
    return JobClaims(claims=claims, lifetime=TOKEN_LIFETIME_SECONDS, not_before=False)


def job_environment(
    scope: CircleCIScope, run: JobRun, *, tokens: JobTokens, audiences: Sequence[str] = ()
) -> dict[str, str]:
    """The variables of a job: both tokens (V1 and V2 subject) are in the environment."""
    if audiences:
        raise UsageError(
            "CircleCI: the job's tokens have the organization ID as audience; another one"
            " comes from `circleci run oidc get` at run time, which the local stack lacks"
        )
    kind, name = run.ref()
    origin = _vcs_origin(scope)
    _, username, reponame = origin.split("/")
    return {
        "CI": "true",
        "CIRCLECI": "true",
        "CIRCLE_BRANCH" if kind == "branch" else "CIRCLE_TAG": name,
        "CIRCLE_SHA1": run.sha,
        "CIRCLE_BUILD_NUM": str(run.build_number),
        "CIRCLE_JOB": run.step,
        "CIRCLE_PROJECT_USERNAME": username,
        "CIRCLE_PROJECT_REPONAME": reponame,
        "CIRCLE_REPOSITORY_URL": f"https://{origin}",
        "CIRCLE_WORKFLOW_ID": run.uuid("workflow"),
        "CIRCLE_WORKFLOW_JOB_ID": run.uuid("job"),
        "CIRCLE_USERNAME": _USER,
        ENV_VARIABLES[1]: tokens.sign(token_claims(scope, run, version=1)),
        ENV_VARIABLES[0]: tokens.sign(token_claims(scope, run, version=2)),
    }
