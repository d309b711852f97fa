"""``verify()``: a token checked against its issuer's keys, and the one maker of ``VerifiedClaims``.

Sources: RFC 7519 (JWT), RFC 8725 (JWT best current practices), PyJWT's ``jwt.decode``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from keyless.errors import TokenVerificationError, UsageError
from keyless.limits import TOKEN_LEEWAY_SECONDS
from keyless.tokens.jwks import ALLOWED_ALGORITHMS, JwksCache, check_issuer_url
from keyless.tokens.unverified import UnverifiedToken, peek
from keyless.tokens.values import ClaimValue, IssuerUrl, audiences, freeze_object, show

if TYPE_CHECKING:
    import jwt
    from jwt.types import Options

    from keyless.http import HttpClient


def decode_options() -> Options:
    """Every option of ``jwt.decode`` spelled out, library defaults included, so that a change of
    PyJWT's defaults cannot loosen verification (a test asserts exactly this mapping). A fresh
    dict per call: no caller can loosen it for everyone else by mutating a shared one."""
    return {
        "verify_signature": True,
        "verify_exp": True,
        "verify_nbf": True,
        "verify_iat": True,
        "verify_aud": True,
        "verify_iss": True,
        "verify_sub": True,
        "verify_jti": True,
        # RFC 7519 §4.1.3: `aud` may be a string or an array; the expected audience must be in it.
        "strict_aud": False,
        # Empty means deny: a token without these claims is refused, not checked vacuously.
        "require": ["exp", "iat", "iss", "aud", "sub"],
        "enforce_minimum_key_length": True,
    }


# Header parameters keyless refuses to see in a CI token. `crit` lists extensions the verifier
# must understand and keyless implements none (RFC 7515 §4.1.11; PyJWT CVE-2026-32597); `b64`
# (RFC 7797) is one of those and PyJWT's detached-payload path was a DoS (CVE-2026-48525); `zip`
# and `enc` belong to JWE, and a JWE is never a CI identity token (RFC 8725 §3.11).
_REFUSED_HEADERS: Final = ("crit", "b64", "zip", "enc")


# --- the verified result -----------------------------------------------------------------------

_SEAL: Final = object()


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedClaims:
    """Claims of a token whose signature, issuer, audience and times ``verify()`` checked.

    Only ``verify()`` can make one (the constructor refuses any other caller).
    """

    issuer: IssuerUrl
    subject: str
    audience: tuple[str, ...]
    expires_at: int
    issued_at: int
    not_before: int | None
    algorithm: str
    kid: str
    claims: Mapping[str, ClaimValue]
    _seal: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._seal is not _SEAL:
            raise TypeError("VerifiedClaims are made only by keyless.tokens.verify()")


# --- verification ------------------------------------------------------------------------------


def verify(
    raw: str,
    *,
    issuer: str,
    audience: str,
    http: HttpClient | None = None,
    leeway: float = TOKEN_LEEWAY_SECONDS,
    clock: Callable[[], float] = time.time,
    cache: JwksCache | None = None,
) -> VerifiedClaims:
    """Verify ``raw`` as a token of ``issuer`` for ``audience`` and return its claims.

    Each failed check raises ``TokenVerificationError`` whose ``check`` names it; a discovery or
    JWKS problem raises ``IssuerError``. ``clock`` is seconds since the epoch: PyJWT also checks
    the times against the system clock, so ``clock`` can make verification stricter, never looser.
    """
    if not audience:
        raise UsageError("an audience is required to verify a token (empty means deny)")
    if leeway < 0:
        raise UsageError(f"leeway must not be negative ({leeway})")
    issuer_url = IssuerUrl(issuer)
    check_issuer_url(issuer_url)
    token = peek(raw)
    alg, kid = _checked_header(token)

    # Keys belong to an issuer: a token that names another issuer cannot be checked with this
    # one's keys, so refuse it before any network traffic. Exact comparison: a trailing "/" is a
    # different issuer (RFC 8725 §3.8; PyJWT CVE-2024-53861 accepted substrings).
    if token.issuer != issuer_url:
        raise TokenVerificationError(
            f"issuer {show(token.issuer)} is not the expected {issuer_url}", check="issuer"
        )

    if http is None:
        from keyless.http import UrllibClient

        http = UrllibClient()
    jwk = (cache or JwksCache()).key(issuer_url, kid, http=http)
    if alg not in jwk.algorithms:
        # The header alg must agree with the key's own kty/alg/crv (PyJWT CVE-2026-48523).
        raise TokenVerificationError(
            f"algorithm {alg} does not fit key {show(kid)}"
            f" ({jwk.kty}, for {', '.join(sorted(jwk.algorithms))})",
            check="algorithm",
        )

    import jwt  # PyJWT and cryptography load only when a signature is checked

    try:
        payload = jwt.decode(
            raw,
            key=jwk.key,  # a raw public key, never a PyJWK (CVE-2026-48523, CVE-2026-48526)
            algorithms=sorted(jwk.algorithms),
            options=decode_options(),
            audience=audience,
            issuer=issuer_url,
            leeway=leeway,
        )
    except jwt.PyJWTError as exc:
        raise _translate(exc, token=token, audience=audience, issuer=issuer_url) from None

    now = clock()
    _check_times(token, now=now, leeway=leeway)
    verified = freeze_object(payload)
    return VerifiedClaims(
        issuer=issuer_url,
        subject=_require_str(verified, "sub"),
        audience=audiences(verified.get("aud")),
        expires_at=_require_int(verified, "exp"),
        issued_at=_require_int(verified, "iat"),
        not_before=token.time_claim("nbf"),
        algorithm=alg,
        kid=kid,
        claims=verified,
        _seal=_SEAL,
    )


def _checked_header(token: UnverifiedToken) -> tuple[str, str]:
    """The token's ``alg`` and ``kid``, once the header passes keyless' pins."""
    header = token.header
    alg = token.algorithm
    if alg not in ALLOWED_ALGORITHMS:
        # Pinned, never taken from the token (RFC 8725 §3.1): `none`, HS*, PS*, EdDSA all stop here.
        raise TokenVerificationError(
            f"algorithm {show(alg)} is not accepted; keyless accepts only"
            f" {', '.join(sorted(ALLOWED_ALGORITHMS))}",
            check="algorithm",
        )
    for name in _REFUSED_HEADERS:
        if name in header:
            raise TokenVerificationError(
                f"header parameter '{name}' is not supported; refusing the token",
                check="crit" if name == "crit" else "header",
            )
    # `jku`, `x5u`, `jwk` and `x5c` are never read: keys come only from the configured issuer's
    # discovery document (RFC 8725 §3.10), so a token cannot bring its own key.
    kid = token.kid
    if not kid:
        raise TokenVerificationError("token header has no 'kid' to look its key up by", check="kid")
    return alg, kid


def _check_times(token: UnverifiedToken, *, now: float, leeway: float) -> None:
    # Same comparisons as PyJWT, against the injected clock.
    exp, nbf, iat = token.time_claim("exp"), token.time_claim("nbf"), token.time_claim("iat")
    if exp is not None and exp <= now - leeway:
        raise TokenVerificationError(
            f"token expired {_age(now - exp)} ago (exp {_iso(exp)})", check="expired"
        )
    if nbf is not None and nbf > now + leeway:
        raise TokenVerificationError(
            f"token is not valid for another {_age(nbf - now)} (nbf {_iso(nbf)})",
            check="not-yet-valid",
        )
    if iat is not None and iat > now + leeway:
        raise TokenVerificationError(
            f"token is issued {_age(iat - now)} in the future (iat {_iso(iat)})",
            check="issued-at",
        )


def _translate(
    exc: jwt.PyJWTError, *, token: UnverifiedToken, audience: str, issuer: str
) -> TokenVerificationError:
    import jwt
    from jwt.exceptions import InvalidJTIError, InvalidSubjectError

    # PyJWT's own texts are not reused: keyless' messages name the check and the values.
    if isinstance(exc, jwt.InvalidSignatureError):
        return TokenVerificationError(
            f"signature does not verify with key {show(token.kid)} of {issuer}", check="signature"
        )
    if isinstance(exc, jwt.ExpiredSignatureError):
        return TokenVerificationError(
            f"token expired (exp {_iso(token.time_claim('exp'))})", check="expired"
        )
    if isinstance(exc, jwt.ImmatureSignatureError):
        if "iat" in str(exc):
            return TokenVerificationError(
                f"token is issued in the future (iat {_iso(token.time_claim('iat'))})",
                check="issued-at",
            )
        return TokenVerificationError(
            f"token is not valid yet (nbf {_iso(token.time_claim('nbf'))})",
            check="not-yet-valid",
        )
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return TokenVerificationError(
            f"token has no '{exc.claim}' claim, which is required", check="missing-claim"
        )
    if isinstance(exc, jwt.InvalidAudienceError):
        return TokenVerificationError(
            f"audience {show(list(token.audience))} does not include {show(audience)}",
            check="audience",
        )
    if isinstance(exc, jwt.InvalidIssuerError):
        return TokenVerificationError(
            f"issuer {show(token.issuer)} is not the expected {issuer}", check="issuer"
        )
    if isinstance(exc, jwt.InvalidIssuedAtError):
        return TokenVerificationError("claim 'iat' is not an integer", check="issued-at")
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return TokenVerificationError(
            f"algorithm {show(token.algorithm)} is not accepted for this key", check="algorithm"
        )
    if isinstance(exc, jwt.InvalidKeyError):
        return TokenVerificationError(
            f"key {show(token.kid)} of {issuer} is too weak to verify with", check="key"
        )
    if isinstance(exc, (InvalidSubjectError, InvalidJTIError)):
        return TokenVerificationError("claim 'sub' or 'jti' is not a string", check="format")
    return TokenVerificationError(
        f"token refused by the JWT library ({type(exc).__name__})", check="format"
    )


def _require_str(claims: Mapping[str, ClaimValue], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str):
        raise TokenVerificationError(f"claim '{name}' is not a string", check="format")
    return value


def _require_int(claims: Mapping[str, ClaimValue], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TokenVerificationError(f"claim '{name}' is not an integer", check="format")
    return value


def _iso(timestamp: int | None) -> str:
    if timestamp is None:
        return "absent"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _age(seconds: float) -> str:
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m" if minutes else f"{hours}h"
