"""The local stack's STS gateway, by job: ``rules`` is STS's wire format, ``exchange`` the
decision (verification and trust, no HTTP), ``relay`` the HTTP handling and the relay to moto,
``server`` the ``StsGateway`` that runs them.
"""

from __future__ import annotations

from keyless.local.sts.exchange import (
    AllowedExchange,
    CachedDirectory,
    Directory,
    IamDirectory,
    Identity,
    OidcProvider,
    Role,
    TokensVerifier,
    TokenVerifier,
    TrustAnswer,
    TrustEvaluator,
    TrustQuestion,
    WebIdentityExchange,
    trust_evaluator,
)
from keyless.local.sts.rules import STS_NAMESPACE, StsError, guarded_action
from keyless.local.sts.server import StsGateway

__all__ = [
    "STS_NAMESPACE",
    "AllowedExchange",
    "CachedDirectory",
    "Directory",
    "IamDirectory",
    "Identity",
    "OidcProvider",
    "Role",
    "StsError",
    "StsGateway",
    "TokenVerifier",
    "TokensVerifier",
    "TrustAnswer",
    "TrustEvaluator",
    "TrustQuestion",
    "WebIdentityExchange",
    "guarded_action",
    "trust_evaluator",
]
