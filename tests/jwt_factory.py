"""Real RS256-signed JWTs for tests, from one RSA key made once per test session."""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

KID = "test-key-1"


@functools.cache
def private_key() -> rsa.RSAPrivateKey:
    """The session's signing key (2048-bit: the size CIs use; made once, it is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_token(
    claims: Mapping[str, Any] | None = None,
    *,
    issuer: str = "https://issuer.test.invalid",
    audience: str | list[str] = "sts.amazonaws.com",
    subject: str = "test-subject",
    lifetime: int = 300,
    now: int | None = None,
    kid: str = KID,
) -> str:
    """A compact RS256 JWT: the registered claims (iss, sub, aud, iat, nbf, exp) plus ``claims``."""
    issued = int(time.time()) if now is None else now
    payload: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
    }
    payload.update(claims or {})
    return jwt.encode(payload, private_key(), algorithm="RS256", headers={"kid": kid})
