"""CircleCI: tokens in ``CIRCLE_OIDC_TOKEN_V2`` / ``CIRCLE_OIDC_TOKEN``; other audiences come
from ``circleci run oidc get``. Facts: ci-oidc-facts §4 (CircleCI: "Using OpenID Connect tokens").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from keyless.ci._claims import token_audiences
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
    env_true,
    run_helper,
)
from keyless.errors import CredentialError, UsageError
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


#: V1 `org/ORG/project/PROJECT/user/USER`; V2 appends `/vcs-origin/ORIGIN/vcs-ref/REF` (facts §4).
#: The organization is also in the issuer, one per organization.
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


class CircleCI:
    name = "circleci"
    display_name = "CircleCI"
    markers: tuple[str, ...] = ("CIRCLECI",)
    # STS validates some CircleCI-specific claims since January 2026, but the list of keys is
    # UNCONFIRMED (facts §8): claim none, so generated policies rely on `sub` and `aud` only,
    # and list CircleCI's own claims as unconfirmed, so an evaluator calls them undecidable.
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

    # One issuer per organization (facts §4): without a `sub` pin, the whole org is trusted.
    shared_issuer = False
    subject_grammar = SUBJECT_GRAMMAR

    def in_ci(self, env: Mapping[str, str]) -> bool:
        return env_true(env, "CIRCLECI")

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
            checked_token(
                env[name], provider=self.name, display_name=self.display_name, source=name
            )
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
        # Only `aud` can be customised (facts §4). The audience is not a secret, so argv is safe.
        argv = ["circleci", "run", "oidc", "get", "--claims", json.dumps({"aud": audience})]
        output = run_helper(
            runner,
            argv,
            env=env,
            display_name=self.display_name,
            missing_remedy=_CLI_REMEDY,
            failure_remedy=_MISSING_REMEDY,
        )
        return checked_token(
            output,
            provider=self.name,
            display_name=self.display_name,
            source="circleci run oidc get",
        )

    def owns_issuer(self, issuer: str) -> bool:
        return _ISSUER.fullmatch(issuer) is not None

    def session_name(self, env: Mapping[str, str]) -> str | None:
        return compose_session_name(
            "circleci", env.get("CIRCLE_PROJECT_REPONAME"), env.get("CIRCLE_BUILD_NUM")
        )


PROVIDER = CircleCI()


# --- trust: the scope a role can be pinned to (facts §4, security §1.2 item 18, §6) -------------

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
        # The default audience is the organization ID (facts §4).
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
