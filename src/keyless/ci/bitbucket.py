"""Bitbucket Pipelines: the step's token is in ``BITBUCKET_STEP_OIDC_TOKEN`` when ``oidc: true``.

Facts: ci-oidc-facts §1 (Atlassian: "Integrate Pipelines with resource servers using OIDC").
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from keyless.ci._claims import require_audience
from keyless.ci.base import STANDARD_SAFE_CLAIMS, ObtainedToken, Runner, checked_token
from keyless.errors import CredentialError
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


PROVIDER = Bitbucket()
