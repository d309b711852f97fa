"""The local issuer's RS256 signing keys: generation, JWK form, signatures, PEM, rotation grace."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from keyless.limits import TOKEN_LEEWAY_SECONDS

#: RFC 7518 §3.3's minimum RSA size, and the size real CI issuers use.
_RSA_BITS: Final = 2048
_RSA_EXPONENT: Final = 65537
#: A retired key stays published until its last token has expired plus the verifiers' leeway.
RETIRED_KEY_GRACE_SECONDS: Final = TOKEN_LEEWAY_SECONDS


@dataclass(slots=True, kw_only=True)
class SigningKey:
    """One RSA key of an issuer, with when it was retired and the last expiry it signed."""

    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    #: When rotate() replaced it; None while it is the active key.
    retired_at: float | None = None
    #: Latest ``exp`` of a token it signed (0 when it signed none).
    last_expiry: float = 0.0

    def public_jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": b64url(_int_bytes(numbers.n)),
            "e": b64url(_int_bytes(numbers.e)),
        }

    def published(self, now: float) -> bool:
        if self.retired_at is None:
            return True
        return now < self.last_expiry + RETIRED_KEY_GRACE_SECONDS


def new_key() -> SigningKey:
    """A fresh 2048-bit key whose kid is its RFC 7638 thumbprint."""
    private_key = rsa.generate_private_key(public_exponent=_RSA_EXPONENT, key_size=_RSA_BITS)
    numbers = private_key.public_key().public_numbers()
    # RFC 7638 JWK thumbprint as the kid: stable, derived from the key, safe as a file name.
    canonical = json.dumps(
        {"e": b64url(_int_bytes(numbers.e)), "kty": "RSA", "n": b64url(_int_bytes(numbers.n))},
        separators=(",", ":"),
        sort_keys=True,
    )
    kid = b64url(hashlib.sha256(canonical.encode("ascii")).digest())
    return SigningKey(kid=kid, private_key=private_key)


def sign(key: SigningKey, data: bytes) -> bytes:
    """An RS256 signature of ``data``."""
    return key.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM, for the 0600 key files of the state folder."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_pem(pem: bytes, kid: str) -> rsa.RSAPrivateKey:
    """The RSA key in ``pem``; ``ValueError`` for another kind of key."""
    private_key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ValueError(f"key {kid} is not an RSA key")
    return private_key


def json_segment(value: object) -> str:
    """``value`` as a JWS part: compact JSON, base64url."""
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
