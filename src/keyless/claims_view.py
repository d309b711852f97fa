"""How every command shows a token's claims: one order, one safe set, one time wording.

``keyless claims``, ``keyless token --show-claims`` and ``keyless doctor`` print claims of tokens
they have not verified. Only the claims a CI declares safe to print (``Provider.safe_claims``:
ids, repository, branch, environment, times) are shown; the rest are named but not printed. An
unverified ``iss`` may choose whose list applies: it decides what to show, never whom to trust.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from keyless import tokens
from keyless.ci import provider_for_issuer
from keyless.ci.base import STANDARD_SAFE_CLAIMS, Provider

__all__ = [
    "CLAIM_ORDER",
    "NOT_SAFE",
    "REDACTED",
    "TIME_CLAIMS",
    "ClaimsView",
    "display",
    "duration",
    "hidden_line",
    "iso",
    "ordered",
    "relative",
    "safe_claims",
    "time_text",
    "view",
]

#: The registered claims first, in this order; the others follow alphabetically.
CLAIM_ORDER: Final = ("iss", "sub", "aud", "iat", "nbf", "exp")
TIME_CLAIMS: Final = frozenset({"iat", "nbf", "exp"})
#: What stands in for a value that is not printed.
REDACTED: Final = "<redacted>"
#: Why a claim is not printed, in every command's words.
NOT_SAFE: Final = "not known to be safe to print"


def safe_claims(provider: Provider | None, issuer: str | None = None) -> frozenset[str]:
    """The claims fine to print: the registered ones, plus the CI's list. For a token file (or no
    provider) the CI is the one whose issuer URL shape ``issuer`` has, when there is one."""
    if (provider is None or provider.name == "file") and issuer:
        provider = provider_for_issuer(issuer) or provider
    return STANDARD_SAFE_CLAIMS | (provider.safe_claims if provider else frozenset())


def ordered(names: Iterable[str]) -> list[str]:
    present = list(names)
    first = [name for name in CLAIM_ORDER if name in present]
    return first + sorted(name for name in present if name not in CLAIM_ORDER)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimsView:
    """The claims to print, in order, and the names of those held back."""

    shown: Mapping[str, object] = field(default_factory=dict)
    hidden: tuple[str, ...] = ()


def view(
    token: tokens.UnverifiedToken, safe: frozenset[str], *, show_all: bool = False
) -> ClaimsView:
    names = ordered(token.claims)
    return ClaimsView(
        shown={n: tokens.thaw(token.claims[n]) for n in names if show_all or n in safe},
        hidden=tuple(n for n in names if not show_all and n not in safe),
    )


def hidden_line(hidden: Iterable[str]) -> str:
    return f"not shown ({NOT_SAFE}): {', '.join(hidden)}"


def display(value: object) -> str:
    # Printed as is only when printable: a claim must not move the cursor or colour a terminal.
    if isinstance(value, str) and value.isprintable():
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=True, default=str)


def iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def duration(seconds: float) -> str:
    """``4m 10s``, ``3m``, ``2h 5m``, ``1d 3h``: the two largest units, zeros dropped."""
    total = int(abs(seconds))
    units = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
    parts: list[str] = []
    for suffix, size in units:
        count, total = divmod(total, size)
        if count or parts:
            parts.append(f"{count}{suffix}")
        if len(parts) == 2:
            break
    shown = [part for part in parts if not part.startswith("0")]
    return " ".join(shown) or "0s"


def relative(name: str, delta: float) -> str:
    """A time claim ``delta`` seconds from now, in words: "expires in 4m", "issued 3m ago"."""
    future = delta > 0
    span = duration(delta)
    if name == "exp":
        return f"expires in {span}" if future else f"expired {span} ago"
    if name == "nbf":
        return f"not valid for another {span}" if future else f"valid since {span} ago"
    return f"issued in {span}, in the future" if future else f"issued {span} ago"


def time_text(name: str, timestamp: float, now: float) -> str:
    """``2026-01-01T12:00:00Z (expires in 4m)``."""
    return f"{iso(timestamp)} ({relative(name, timestamp - now)})"
