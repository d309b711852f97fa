"""CircleCI: tokens in ``CIRCLE_OIDC_TOKEN_V2`` / ``CIRCLE_OIDC_TOKEN``; other audiences come
from ``circleci run oidc get``. Facts: ci-oidc-facts §4 (CircleCI: "Using OpenID Connect tokens").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from keyless.ci._claims import token_audiences
from keyless.ci.base import (
    STANDARD_SAFE_CLAIMS,
    ObtainedToken,
    Runner,
    checked_token,
    env_true,
    run_helper,
)
from keyless.errors import CredentialError
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


PROVIDER = CircleCI()
