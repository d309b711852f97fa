"""GitHub Actions: the job asks the runtime's token endpoint for an ID token with its audience.

``provider`` detects the CI, pins a role's scope and obtains the token; ``token_request`` talks to
the runtime's endpoint; ``subjects`` reads the `sub` claim for doctor and audit; ``job`` emulates a
job for the local stack. Facts: docs/ci-tokens.md#github.
"""

from keyless.ci.github.provider import PROVIDER, GitHub, GitHubScope
from keyless.ci.github.token_request import REQUEST_BEARER_VARIABLE, REQUEST_URL_VARIABLE

__all__ = ["PROVIDER", "REQUEST_BEARER_VARIABLE", "REQUEST_URL_VARIABLE", "GitHub", "GitHubScope"]
