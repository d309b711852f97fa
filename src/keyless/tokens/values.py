"""The values a token parses to: issuer URLs, frozen JSON claim values, and their display."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final, NewType, TypeAlias

#: An OIDC issuer URL exactly as configured or as found in ``iss``; compared byte for byte.
IssuerUrl = NewType("IssuerUrl", str)

#: What a claim or header value can be once parsed: JSON, with objects and arrays frozen.
ClaimValue: TypeAlias = (
    "str | int | float | bool | tuple[ClaimValue, ...] | Mapping[str, ClaimValue] | None"
)

#: RFC 4648 §5 base64url without padding (RFC 7515 §2), the alphabet of JWS parts and JWK numbers.
B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")


def freeze(value: object) -> ClaimValue:
    if isinstance(value, dict):
        return freeze_object(value)
    if isinstance(value, list):
        return tuple(freeze(item) for item in value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def freeze_object(value: Mapping[str, object]) -> Mapping[str, ClaimValue]:
    return MappingProxyType({str(k): freeze(v) for k, v in value.items()})


def thaw(value: ClaimValue) -> object:
    """A frozen claim value as plain JSON data (dicts and lists), e.g. for ``json.dumps``."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def audiences(aud: object) -> tuple[str, ...]:
    """The ``aud`` claim as a tuple: one string, or the strings of a list (RFC 7519 §4.1.3)."""
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, Sequence):
        return tuple(a for a in aud if isinstance(a, str))
    return ()


def show(value: object, limit: int = 80) -> str:
    """A token-supplied value for a one-line message: quoted, escaped, cut to ``limit``."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
