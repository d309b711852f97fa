"""The contract every CI provider module fulfils, and the shared value types.

One module per CI (``bitbucket``, ``github``, ``gitlab``, ``circleci``, ``buildkite``) owns
everything specific to that CI; everything else in keyless asks the provider through this
protocol. Detection follows one rule: return ``None`` when the job is not running in that CI, and
raise ``CredentialError`` (message starting with the CI's name, remedy showing the fix) when it is
that CI but the token cannot be had. Never fall back silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NewType, Protocol

from keyless.http import HttpClient

#: The raw, compact-serialized JWT. A distinct type so it is not mixed with other strings.
RawToken = NewType("RawToken", str)


@dataclass(frozen=True, slots=True, kw_only=True)
class ObtainedToken:
    """A token and where it came from (for messages; never the token in ``repr``)."""

    token: RawToken
    provider: str  # provider name, e.g. "bitbucket"
    source: str  # how it was obtained, e.g. "BITBUCKET_STEP_OIDC_TOKEN"

    def __repr__(self) -> str:
        return (
            f"ObtainedToken(provider={self.provider!r}, source={self.source!r}, token=<redacted>)"
        )


class Provider(Protocol):
    #: Short name used on the command line (``--ci NAME``): "bitbucket", "github", ...
    name: str
    #: Name for people: "Bitbucket Pipelines".
    display_name: str
    #: Claims AWS exposes as ``<issuer-without-https>:<claim>`` condition keys for this CI's
    #: issuer, in addition to ``sub`` and ``aud`` which every OIDC provider gets.
    aws_condition_claims: frozenset[str]
    #: Claims that are safe to print (ids, repository, branch, environment, times).
    safe_claims: frozenset[str]

    def in_ci(self, env: Mapping[str, str]) -> bool:
        """True when the environment is a job of this CI (whether or not a token is available)."""
        ...

    def obtain(
        self, env: Mapping[str, str], *, audience: str | None, http: HttpClient
    ) -> ObtainedToken | None:
        """The job's token, ``None`` when not in this CI, ``CredentialError`` when broken."""
        ...

    def owns_issuer(self, issuer: str) -> bool:
        """True when ``issuer`` (a token's ``iss``) has this CI's issuer URL shape."""
        ...
