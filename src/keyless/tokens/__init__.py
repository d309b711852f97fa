"""Untrusted ``peek()`` at a CI's JWT, and ``verify()`` against its issuer's published keys.

Only ``verify()`` (OIDC discovery, a cached JWKS, pinned algorithms, PyJWT with a raw public key)
produces ``VerifiedClaims``; everything ``peek()`` returns is marked unverified.

``unverified`` parses a token without trusting it, ``jwks`` finds and caches an issuer's keys,
``verification`` checks a token against them, ``values`` holds the types they share.
"""

from __future__ import annotations

from keyless.tokens.jwks import (
    ALLOWED_ALGORITHMS,
    JwksCache,
    PublicKey,
    VerificationKey,
    discovery_url,
    fetch_jwks,
)
from keyless.tokens.unverified import UnverifiedToken, peek, strict_json_loads
from keyless.tokens.values import ClaimValue, IssuerUrl, thaw
from keyless.tokens.verification import VerifiedClaims, decode_options, verify

__all__ = [
    "ALLOWED_ALGORITHMS",
    "ClaimValue",
    "IssuerUrl",
    "JwksCache",
    "PublicKey",
    "UnverifiedToken",
    "VerificationKey",
    "VerifiedClaims",
    "decode_options",
    "discovery_url",
    "fetch_jwks",
    "peek",
    "strict_json_loads",
    "thaw",
    "verify",
]
