"""Untrusted ``peek()`` at a CI's JWT, and ``verify()`` against its issuer's published keys.

Only ``verify()`` (OIDC discovery, a cached JWKS, pinned algorithms, PyJWT with a raw public key)
produces ``VerifiedClaims``; everything ``peek()`` returns is marked unverified.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, NewType, TypeAlias

from keyless.errors import IssuerError, KeylessError, TokenVerificationError, UsageError
from keyless.jsonlimits import JsonLimitError, loads_bounded
from keyless.limits import (
    JWKS_CACHE_TTL_SECONDS,
    JWKS_MAX_KEYS,
    JWKS_REFRESH_MIN_INTERVAL_SECONDS,
    JWKS_REQUEST_SECONDS,
    OIDC_DISCOVERY_REQUEST_SECONDS,
    TOKEN_LEEWAY_SECONDS,
    TOKEN_MAX_CHARS,
)
from keyless.urls import has_userinfo, shown_url

if TYPE_CHECKING:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from jwt.types import Options

    from keyless.http import HttpClient

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

#: An OIDC issuer URL exactly as configured or as found in ``iss``; compared byte for byte.
IssuerUrl = NewType("IssuerUrl", str)

#: What a claim or header value can be once parsed: JSON, with objects and arrays frozen.
ClaimValue: TypeAlias = (
    "str | int | float | bool | tuple[ClaimValue, ...] | Mapping[str, ClaimValue] | None"
)

#: Signature algorithms keyless accepts, whatever a token or a JWKS says. AWS STS accepts exactly
#: these; `none` and every HMAC algorithm are refused outright (RFC 8725 §3.1, §2.1: a verifier
#: that lets the token pick HMAC can be fooled with the issuer's public key as the secret).
ALLOWED_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"})

_RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512"})
# JWA (RFC 7518 §3.4): each ES algorithm is bound to exactly one curve.
_EC_CURVES: Final[Mapping[str, str]] = MappingProxyType(
    {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
)
_CURVE_ALGORITHM: Final = MappingProxyType({crv: alg for alg, crv in _EC_CURVES.items()})
#: RFC 7518 §3.3: RSA keys for RS* must be at least 2048 bits.
_MIN_RSA_BITS: Final = 2048


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

_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
#: Largest time claim accepted: 9999-12-31T23:59:59Z, so that every accepted time can be shown.
_MAX_TIMESTAMP: Final = 253_402_300_799
_WELL_KNOWN: Final = "/.well-known/openid-configuration"


# --- the untrusted peek ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class UnverifiedToken:
    """A token's header and claims as it states them. NOTHING here has been verified.

    ``peek()`` checked only the shape (size, three strict base64url parts, JSON objects without
    duplicate names, claim types). The signature, issuer, audience and times may all be forged:
    use this for display and diagnosis, never for a decision; decisions take ``VerifiedClaims``.
    The raw token and its signature are deliberately not kept.
    """

    header: Mapping[str, ClaimValue]
    claims: Mapping[str, ClaimValue]

    @property
    def algorithm(self) -> str:
        alg = self.header["alg"]
        assert isinstance(alg, str)  # noqa: S101 - peek() guarantees it
        return alg

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None

    @property
    def issuer(self) -> str | None:
        iss = self.claims.get("iss")
        return iss if isinstance(iss, str) else None

    @property
    def subject(self) -> str | None:
        sub = self.claims.get("sub")
        return sub if isinstance(sub, str) else None

    @property
    def audience(self) -> tuple[str, ...]:
        return _audiences(self.claims.get("aud"))

    def time_claim(self, name: str) -> int | None:
        value = self.claims.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def peek(raw: str) -> UnverifiedToken:
    """Parse ``raw`` strictly, WITHOUT verifying anything, for display and diagnosis.

    Raises ``TokenVerificationError`` with ``check`` "size" or "format"; messages never contain
    the token.
    """
    # Cap before any parsing (RFC 8725 §3.x hostile input; STS refuses longer tokens anyway).
    if len(raw) > TOKEN_MAX_CHARS:
        raise TokenVerificationError(
            f"token has {len(raw)} characters, more than the {TOKEN_MAX_CHARS} allowed",
            check="size",
        )
    parts = raw.split(".")
    if len(parts) != 3:
        # Five parts is a JWE, one or two are not a JWS; a JSON serialization has no dots at all.
        raise TokenVerificationError(
            f"token has {len(parts)} dot-separated parts, a signed JWT has exactly 3",
            check="format",
        )
    header_b64, payload_b64, signature_b64 = parts
    header = _json_object(_b64decode(header_b64, "header"), "header")
    claims = _json_object(_b64decode(payload_b64, "payload"), "payload")
    _b64decode(signature_b64, "signature")
    _check_header_shape(header)
    _check_claim_types(claims)
    return UnverifiedToken(header=_freeze_object(header), claims=_freeze_object(claims))


def _b64decode(segment: str, part: str) -> bytes:
    # RFC 7515 §2: base64url without padding. Padding, other alphabets and non-canonical trailing
    # bits are refused so that one token has exactly one spelling.
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise TokenVerificationError(f"token {part} is not strict base64url", check="format")
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise TokenVerificationError(
            f"token {part} is not strict base64url", check="format"
        ) from None
    if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode("ascii") != segment:
        raise TokenVerificationError(
            f"token {part} is not canonical base64url", check="format"
        ) from None
    return decoded


def _json_object(data: bytes, part: str) -> dict[str, object]:
    if not data:
        raise TokenVerificationError(f"token {part} is empty", check="format")
    try:
        parsed = strict_json_loads(data)
    except _DuplicateMemberError as exc:
        # Python's json keeps the last duplicate silently; another parser may keep the first
        # (RFC 8725 §3.x, RFC 7515 §5.2: duplicate header names MUST be rejected).
        raise TokenVerificationError(
            f"token {part} has the member {_show(exc.name)} more than once", check="format"
        ) from None
    except JsonLimitError as exc:
        raise TokenVerificationError(f"token {part} {exc}", check="format") from None
    except (ValueError, RecursionError):
        raise TokenVerificationError(f"token {part} is not JSON", check="format") from None
    if not isinstance(parsed, dict):
        raise TokenVerificationError(f"token {part} is not a JSON object", check="format")
    return parsed


class _DuplicateMemberError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__("duplicate member name")
        self.name = name


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for name, value in pairs:
        if name in result:
            raise _DuplicateMemberError(name)
        result[name] = value
    return result


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def strict_json_loads(data: bytes | str) -> object:
    """``json.loads`` that refuses duplicate member names, NaN/Infinity, invalid UTF-8 and
    documents over keyless' depth and size limits (``JsonLimitError``, a ``ValueError``)."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    # Depth and size first: json recurses per level, and so does freezing the result.
    return loads_bounded(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def _check_header_shape(header: Mapping[str, object]) -> None:
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise TokenVerificationError("token header has no 'alg' string", check="format")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise TokenVerificationError("token header 'kid' is not a string", check="format")


def _check_claim_types(claims: Mapping[str, object]) -> None:
    # Types are settled here, before any claim reaches a policy evaluator
    # (docs/security-model.md#jwt-verification).
    for name in ("iss", "sub"):
        if name in claims and not isinstance(claims[name], str):
            raise TokenVerificationError(f"claim '{name}' is not a string", check="format")
    if "aud" in claims:
        aud = claims["aud"]
        valid = isinstance(aud, str) or (
            isinstance(aud, list) and bool(aud) and all(isinstance(a, str) for a in aud)
        )
        if not valid:
            raise TokenVerificationError(
                "claim 'aud' is neither a string nor a non-empty list of strings", check="format"
            )
    for name in ("exp", "iat", "nbf"):
        if name not in claims:
            continue
        value = claims[name]
        # STS refuses non-integer times; bool is an int subclass in Python and is refused too.
        if not isinstance(value, int) or isinstance(value, bool):
            raise TokenVerificationError(f"claim '{name}' is not an integer", check="format")
        if not 0 <= value <= _MAX_TIMESTAMP:
            raise TokenVerificationError(
                f"claim '{name}' is out of range ({value})", check="format"
            )


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


# --- keys --------------------------------------------------------------------------------------

PublicKey: TypeAlias = "rsa.RSAPublicKey | ec.EllipticCurvePublicKey"


@dataclass(frozen=True, slots=True, kw_only=True)
class VerificationKey:
    """One usable key of an issuer's JWKS, converted to a raw public key."""

    kid: str
    kty: str
    #: The algorithms this key may verify, from its own kty/alg/crv, never from a token.
    algorithms: frozenset[str]
    key: PublicKey


@dataclass(slots=True, kw_only=True)
class _CacheEntry:
    keys: Mapping[str, VerificationKey]
    fetched_at: float
    attempted_at: float


class JwksCache:
    """Per-issuer cache of verification keys, safe to share between threads.

    A set is used for ``ttl`` seconds; an unknown ``kid`` triggers at most one refresh per
    ``min_refresh_interval`` seconds per issuer; a failed fetch keeps the last good set (PyJWT's
    own client wiped it and refetched on every unknown kid: CVE-2026-48524), and a first fetch
    that failed is not retried within the interval either.
    """

    def __init__(
        self,
        *,
        ttl: float = JWKS_CACHE_TTL_SECONDS,
        min_refresh_interval: float = JWKS_REFRESH_MIN_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._min_interval = min_refresh_interval
        self._clock = clock
        self._entries: dict[IssuerUrl, _CacheEntry] = {}
        self._failures: dict[IssuerUrl, tuple[float, IssuerError]] = {}
        self._locks: dict[IssuerUrl, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def key(self, issuer: IssuerUrl, kid: str, *, http: HttpClient) -> VerificationKey:
        """The key ``kid`` of ``issuer``; ``TokenVerificationError(check="kid")`` if unknown."""
        # One lock per issuer: concurrent verifications share one fetch, and a slow issuer does
        # not hold up the others.
        with self._locks_lock:
            lock = self._locks.setdefault(issuer, threading.Lock())
        with lock:
            now = self._clock()
            entry = self._entries.get(issuer)
            if entry is None:
                entry = self._first_fetch(issuer, http, now=now)
            elif now - entry.fetched_at >= self._ttl and self._may_retry(entry, now):
                entry = self._refresh(issuer, http, previous=entry, now=now)
            found = entry.keys.get(kid)
            if found is None and self._may_retry(entry, now):
                # RFC 8725 §3.10, docs/security-model.md#jwt-verification: an unknown kid may mean
                # the issuer rotated; refetch, but never more often than the interval, whatever
                # tokens arrive.
                entry = self._refresh(issuer, http, previous=entry, now=now)
                found = entry.keys.get(kid)
            if found is None:
                raise TokenVerificationError(
                    f"no key with kid {_show(kid)} in the JWKS of {issuer}", check="kid"
                )
            return found

    def _may_retry(self, entry: _CacheEntry, now: float) -> bool:
        return now - entry.attempted_at >= self._min_interval

    def _first_fetch(self, issuer: IssuerUrl, http: HttpClient, *, now: float) -> _CacheEntry:
        failure = self._failures.get(issuer)
        if failure is not None and now - failure[0] < self._min_interval:
            raise IssuerError(f"{failure[1].message} (not retried yet)", remedy=failure[1].remedy)
        try:
            keys = fetch_jwks(issuer, http=http)
        except IssuerError as exc:
            self._failures[issuer] = (now, exc)
            raise
        self._failures.pop(issuer, None)
        entry = _CacheEntry(keys=keys, fetched_at=now, attempted_at=now)
        self._entries[issuer] = entry
        return entry

    def _refresh(
        self, issuer: IssuerUrl, http: HttpClient, *, previous: _CacheEntry, now: float
    ) -> _CacheEntry:
        try:
            keys = fetch_jwks(issuer, http=http)
        except IssuerError:
            previous.attempted_at = now  # keep the last good set, and rate-limit the retries
            return previous
        entry = _CacheEntry(keys=keys, fetched_at=now, attempted_at=now)
        self._entries[issuer] = entry
        return entry


def discovery_url(issuer: str) -> str:
    """Where ``issuer`` publishes its discovery document (OIDC Discovery §4.1)."""
    # §4.1: a terminating "/" of the issuer is removed before appending the well-known path.
    return issuer.removesuffix("/") + _WELL_KNOWN


def fetch_jwks(issuer: IssuerUrl, *, http: HttpClient) -> Mapping[str, VerificationKey]:
    """Discovery, then the JWKS it names: the usable keys of ``issuer`` by ``kid``."""
    _check_issuer_url(issuer)
    document = _get_json(
        http,
        discovery_url(issuer),
        what="discovery document",
        issuer=issuer,
        timeout=OIDC_DISCOVERY_REQUEST_SECONDS,
    )
    # OIDC Discovery §4.3: the document's issuer must be identical to the one configured before
    # anything else in it is trusted; otherwise one issuer could vouch for another's keys.
    if document.get("issuer") != issuer:
        raise IssuerError(
            f"discovery document at {discovery_url(issuer)} names issuer"
            f" {_show(document.get('issuer'))}, not {issuer}",
            remedy="The issuer URL must match the issuer's own document exactly, trailing '/' "
            "included.",
        )
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
        raise IssuerError(f"discovery document of {issuer} has no https jwks_uri")
    jwks = _get_json(http, jwks_uri, what="JWKS", issuer=issuer, timeout=JWKS_REQUEST_SECONDS)
    raw_keys = jwks.get("keys")
    if not isinstance(raw_keys, list):
        raise IssuerError(f"JWKS of {issuer} has no 'keys' list")
    if len(raw_keys) > JWKS_MAX_KEYS:
        raise IssuerError(f"JWKS of {issuer} has {len(raw_keys)} keys, more than {JWKS_MAX_KEYS}")
    keys: dict[str, VerificationKey] = {}
    for raw_key in raw_keys:
        parsed = _parse_jwk(raw_key) if isinstance(raw_key, dict) else None
        if parsed is None:
            continue  # a key keyless cannot use (HMAC, encryption, unknown curve): not a failure
        if parsed.kid in keys:
            raise IssuerError(f"JWKS of {issuer} has two keys with kid {_show(parsed.kid)}")
        keys[parsed.kid] = parsed
    if not keys:
        # Empty means deny: a JWKS without one usable key verifies nothing.
        raise IssuerError(f"JWKS of {issuer} has no usable RSA or EC signing key")
    return MappingProxyType(keys)


def _get_json(
    http: HttpClient, url: str, *, what: str, issuer: str, timeout: float
) -> dict[str, object]:
    try:
        response = http.get(url, headers={"Accept": "application/json"}, timeout=timeout)
    except KeylessError as exc:
        raise IssuerError(f"cannot fetch the {what} of {issuer}: {exc.message}") from exc
    if response.status != 200:
        raise IssuerError(f"{what} of {issuer} at {url} answered HTTP {response.status}")
    try:
        document = strict_json_loads(response.body)
    except (ValueError, RecursionError):
        raise IssuerError(f"{what} of {issuer} at {url} is not valid JSON") from None
    if not isinstance(document, dict):
        raise IssuerError(f"{what} of {issuer} at {url} is not a JSON object")
    return document


def _parse_jwk(jwk_dict: Mapping[str, object]) -> VerificationKey | None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    kid, kty, alg = jwk_dict.get("kid"), jwk_dict.get("kty"), jwk_dict.get("alg")
    use = jwk_dict.get("use")
    if not isinstance(kid, str) or not kid or (use is not None and use != "sig"):
        return None
    if alg is not None and alg not in ALLOWED_ALGORITHMS:
        return None
    try:
        if kty == "RSA":
            key: PublicKey = rsa.RSAPublicNumbers(
                e=_b64_int(jwk_dict.get("e")), n=_b64_int(jwk_dict.get("n"))
            ).public_key()
            if key.key_size < _MIN_RSA_BITS:
                return None
            allowed = frozenset({alg}) if isinstance(alg, str) else _RSA_ALGORITHMS
            if not allowed <= _RSA_ALGORITHMS:
                return None
        elif kty == "EC":
            crv = jwk_dict.get("crv")
            curve_alg = _CURVE_ALGORITHM.get(crv) if isinstance(crv, str) else None
            if curve_alg is None or (alg is not None and alg != curve_alg):
                return None
            key = ec.EllipticCurvePublicNumbers(
                x=_b64_int(jwk_dict.get("x")),
                y=_b64_int(jwk_dict.get("y")),
                curve=_ec_curve(curve_alg),
            ).public_key()
            allowed = frozenset({curve_alg})
        else:
            return None
    except (ValueError, TypeError):
        return None  # not a valid point / modulus
    return VerificationKey(kid=kid, kty=kty, algorithms=allowed, key=key)


def _ec_curve(algorithm: str) -> ec.EllipticCurve:
    from cryptography.hazmat.primitives.asymmetric import ec

    curves: Mapping[str, type[ec.EllipticCurve]] = {
        "P-256": ec.SECP256R1,
        "P-384": ec.SECP384R1,
        "P-521": ec.SECP521R1,
    }
    return curves[_EC_CURVES[algorithm]]()


def _b64_int(value: object) -> int:
    if not isinstance(value, str) or not value or not _B64URL.fullmatch(value):
        raise ValueError("not base64url")
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def _check_issuer_url(issuer: str) -> None:
    # OIDC Core §2: an issuer is an https URL with no query and no fragment.
    if (
        not issuer.startswith("https://")
        or "?" in issuer
        or "#" in issuer
        or len(issuer) < 9
        or has_userinfo(issuer)
    ):
        raise IssuerError(
            f"issuer {_show(shown_url(issuer))} is not an https URL without user info, query or"
            " fragment",
            remedy="Use the issuer URL exactly as the CI documents it, e.g. "
            "https://token.actions.githubusercontent.com",
        )


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
    _check_issuer_url(issuer_url)
    token = peek(raw)
    header = token.header

    alg = token.algorithm
    if alg not in ALLOWED_ALGORITHMS:
        # Pinned, never taken from the token (RFC 8725 §3.1): `none`, HS*, PS*, EdDSA all stop here.
        raise TokenVerificationError(
            f"algorithm {_show(alg)} is not accepted; keyless accepts only"
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

    # Keys belong to an issuer: a token that names another issuer cannot be checked with this
    # one's keys, so refuse it before any network traffic. Exact comparison: a trailing "/" is a
    # different issuer (RFC 8725 §3.8; PyJWT CVE-2024-53861 accepted substrings).
    if token.issuer != issuer_url:
        raise TokenVerificationError(
            f"issuer {_show(token.issuer)} is not the expected {issuer_url}", check="issuer"
        )

    if http is None:
        from keyless.http import UrllibClient

        http = UrllibClient()
    jwk = (cache or JwksCache()).key(issuer_url, kid, http=http)
    if alg not in jwk.algorithms:
        # The header alg must agree with the key's own kty/alg/crv (PyJWT CVE-2026-48523).
        raise TokenVerificationError(
            f"algorithm {alg} does not fit key {_show(kid)}"
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
    verified = _freeze_object(payload)
    return VerifiedClaims(
        issuer=issuer_url,
        subject=_require_str(verified, "sub"),
        audience=_audiences(verified.get("aud")),
        expires_at=_require_int(verified, "exp"),
        issued_at=_require_int(verified, "iat"),
        not_before=token.time_claim("nbf"),
        algorithm=alg,
        kid=kid,
        claims=verified,
        _seal=_SEAL,
    )


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
            f"signature does not verify with key {_show(token.kid)} of {issuer}", check="signature"
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
            f"audience {_show(list(token.audience))} does not include {_show(audience)}",
            check="audience",
        )
    if isinstance(exc, jwt.InvalidIssuerError):
        return TokenVerificationError(
            f"issuer {_show(token.issuer)} is not the expected {issuer}", check="issuer"
        )
    if isinstance(exc, jwt.InvalidIssuedAtError):
        return TokenVerificationError("claim 'iat' is not an integer", check="issued-at")
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return TokenVerificationError(
            f"algorithm {_show(token.algorithm)} is not accepted for this key", check="algorithm"
        )
    if isinstance(exc, jwt.InvalidKeyError):
        return TokenVerificationError(
            f"key {_show(token.kid)} of {issuer} is too weak to verify with", check="key"
        )
    if isinstance(exc, (InvalidSubjectError, InvalidJTIError)):
        return TokenVerificationError("claim 'sub' or 'jti' is not a string", check="format")
    return TokenVerificationError(
        f"token refused by the JWT library ({type(exc).__name__})", check="format"
    )


# --- small helpers -----------------------------------------------------------------------------


def _freeze(value: object) -> ClaimValue:
    if isinstance(value, dict):
        return _freeze_object(value)
    if isinstance(value, list):
        return tuple(_freeze(item) for item in value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _freeze_object(value: Mapping[str, object]) -> Mapping[str, ClaimValue]:
    return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})


def thaw(value: ClaimValue) -> object:
    """A frozen claim value as plain JSON data (dicts and lists), e.g. for ``json.dumps``."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def _audiences(aud: object) -> tuple[str, ...]:
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, Sequence):
        return tuple(a for a in aud if isinstance(a, str))
    return ()


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


def _show(value: object, limit: int = 80) -> str:
    """A token-supplied value for a one-line message: quoted, escaped, cut to ``limit``."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
