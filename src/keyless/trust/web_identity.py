"""What AWS defines for AssumeRoleWithWebIdentity: its actions, claims, key prefix, exposed claims.

Sources (IAM User Guide): "Available keys for web identity federation", "Passing session tags in
AssumeRoleWithWebIdentity", "Create an OpenID Connect (OIDC) identity provider in IAM".
"""

from __future__ import annotations

from dataclasses import dataclass

from keyless.ci import provider_for_issuer

WEB_IDENTITY_ACTION = "sts:AssumeRoleWithWebIdentity"
TAG_SESSION = "sts:TagSession"
SET_SOURCE_IDENTITY = "sts:SetSourceIdentity"
#: The token claim that carries session tags (IAM User Guide, "Passing session tags").
TAGS_CLAIM = "https://aws.amazon.com/tags"
#: The token claim that sets a source identity; it needs ``sts:SetSourceIdentity``.
SOURCE_IDENTITY_CLAIM = "https://aws.amazon.com/source_identity"
#: Keys every IAM OIDC provider gets (web identity condition keys).
STANDARD_KEYS = frozenset({"sub", "aud"})


def issuer_prefix(issuer: str) -> str:
    """The condition-key prefix for an issuer: the URL without ``https://``, path and trailing
    slash included (``token.actions.githubusercontent.com``)."""
    return issuer.removeprefix("https://")


def provider_arn_for(issuer: str, account_id: str, *, partition: str = "aws") -> str:
    """The IAM OIDC provider ARN that names ``issuer`` in ``account_id``."""
    return f"arn:{partition}:iam::{account_id}:oidc-provider/{issuer_prefix(issuer)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Exposure:
    """Which token claims AWS turns into condition keys for one issuer."""

    claims: frozenset[str]
    #: How messages name the issuer's CI: "Bitbucket Pipelines", or the issuer URL.
    name: str
    #: Claims AWS may or may not expose (its list for the CI is not published): a condition on
    #: one of them is undecidable rather than absent.
    unconfirmed: frozenset[str] = frozenset()


def exposure_for(issuer: str) -> Exposure:
    """The one place keyless answers "which claims can a trust policy see for this issuer": the
    CI provider's ``aws_condition_claims`` plus ``sub`` and ``aud``; only those for unknown
    issuers."""
    provider = provider_for_issuer(issuer)
    if provider is None:
        return Exposure(claims=STANDARD_KEYS, name=f"the issuer {issuer}")
    return Exposure(
        claims=STANDARD_KEYS | provider.aws_condition_claims,
        name=provider.display_name,
        unconfirmed=provider.aws_unconfirmed_claims,
    )
