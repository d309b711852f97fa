"""The untrusted peek: a JWT's header and claims parsed strictly, nothing about them verified."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from keyless.errors import TokenVerificationError
from keyless.jsonlimits import JsonLimitError, loads_bounded
from keyless.limits import TOKEN_MAX_CHARS, TOKEN_MAX_TIMESTAMP
from keyless.tokens.values import B64URL, ClaimValue, audiences, freeze_object, show


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
        return audiences(self.claims.get("aud"))

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
    return UnverifiedToken(header=freeze_object(header), claims=freeze_object(claims))


def _b64decode(segment: str, part: str) -> bytes:
    # RFC 7515 §2: base64url without padding. Padding, other alphabets and non-canonical trailing
    # bits are refused so that one token has exactly one spelling.
    if not B64URL.fullmatch(segment) or len(segment) % 4 == 1:
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
            f"token {part} has the member {show(exc.name)} more than once", check="format"
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
        if not 0 <= value <= TOKEN_MAX_TIMESTAMP:
            raise TokenVerificationError(
                f"claim '{name}' is out of range ({value})", check="format"
            )
