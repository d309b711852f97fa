"""The named causes ``keyless doctor`` recognises, in a module of their own so that each CI's
provider can name the cause of a problem specific to it without importing the doctor (and the AWS
SDK with it)."""

from __future__ import annotations

from keyless.compat import StrEnum

__all__ = ["Cause"]


class Cause(StrEnum):
    """The named causes doctor recognises; stable identifiers for ``--json``."""

    NO_CI = "no-ci"
    SEVERAL_CIS = "several-cis"
    #: Bitbucket step without `oidc: true`, GitHub job without `id-token: write`
    OIDC_NOT_ENABLED = "oidc-not-enabled"
    TOKEN_UNAVAILABLE = "token-unavailable"  # noqa: S105 - a cause name
    TOKEN_MALFORMED = "token-malformed"  # noqa: S105 - a cause name
    TOKEN_EXPIRED = "token-expired"  # noqa: S105 - a cause name
    ISSUER_UNREACHABLE = "issuer-unreachable"
    SIGNATURE = "signature"
    #: no IAM OIDC provider for the token's issuer (or the trust policy names another one)
    PROVIDER_MISSING = "provider-missing"
    AUDIENCE = "audience"
    #: `sub` names another organization / owner / workspace / group than the role trusts
    ORGANIZATION = "organization"
    #: `sub` names another repository / project / pipeline of the same organization
    REPOSITORY = "repository"
    #: `sub` names another branch, tag or ref than the role pins
    REF = "ref"
    #: a Bitbucket deployment environment or a GitHub `environment:` changes `sub`
    DEPLOYMENT_ENVIRONMENT = "deployment-environment"
    PULL_REQUEST = "pull-request"
    #: GitHub's `repo:OWNER@ID/REPO@ID:...` form against a name-only pattern (or the reverse)
    IMMUTABLE_SUBJECT = "immutable-subject"
    CUSTOM_SUBJECT = "custom-subject"
    SUBJECT = "subject"
    TRUST_POLICY = "trust-policy"
    EXCHANGE = "exchange"
