"""An issuer's verification keys: OIDC discovery, its JWKS, usable keys, and the per-issuer cache.

Sources: OpenID Connect Discovery 1.0 §4, RFC 7517 (JWK), RFC 7518 (JWA), RFC 8725 §3.10.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, TypeAlias

from keyless.errors import IssuerError, KeylessError, TokenVerificationError
from keyless.limits import (
    JWK_MIN_RSA_BITS,
    JWKS_CACHE_TTL_SECONDS,
    JWKS_MAX_KEYS,
    JWKS_REFRESH_MIN_INTERVAL_SECONDS,
    JWKS_REQUEST_SECONDS,
    OIDC_DISCOVERY_REQUEST_SECONDS,
)
from keyless.tokens.unverified import strict_json_loads
from keyless.tokens.values import B64URL, IssuerUrl, show
from keyless.urls import has_userinfo, shown_url

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from keyless.http import HttpClient

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
_WELL_KNOWN: Final = "/.well-known/openid-configuration"

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
                    f"no key with kid {show(kid)} in the JWKS of {issuer}", check="kid"
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
    check_issuer_url(issuer)
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
            f" {show(document.get('issuer'))}, not {issuer}",
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
            raise IssuerError(f"JWKS of {issuer} has two keys with kid {show(parsed.kid)}")
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
            if key.key_size < JWK_MIN_RSA_BITS:
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
    if not isinstance(value, str) or not value or not B64URL.fullmatch(value):
        raise ValueError("not base64url")
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def check_issuer_url(issuer: str) -> None:
    # OIDC Core §2: an issuer is an https URL with no query and no fragment.
    if (
        not issuer.startswith("https://")
        or "?" in issuer
        or "#" in issuer
        or len(issuer) < 9
        or has_userinfo(issuer)
    ):
        raise IssuerError(
            f"issuer {show(shown_url(issuer))} is not an https URL without user info, query or"
            " fragment",
            remedy="Use the issuer URL exactly as the CI documents it, e.g. "
            "https://token.actions.githubusercontent.com",
        )
