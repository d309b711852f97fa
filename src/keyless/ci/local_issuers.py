"""Which issuers are the local stack's, and whose CI each one is: from the variables that
``keyless local serve`` exports and ``keyless local run`` sets (docs/local-stack.md#issuers).

A CI's public issuer is recognised by its URL shape (``Provider.owns_issuer``). The local stack
serves each CI's issuers on ``https://127.0.0.1:PORT`` instead, and a port says nothing about a
CI; so an issuer there is recognised as a CI's only when the environment names it:
``KEYLESS_LOCAL_<CI>_ISSUER`` (that exact issuer) or ``KEYLESS_LOCAL_<CI>_ISSUER_BASE`` (the
issuers below it, one per workspace or organization). Only loopback ``https`` origins count, so
no variable can make a public host pass for a CI; recognising an issuer decides which claims are
printed and which subject grammar lint applies, never whom to trust.

Production code reads this module; it never imports the stack (``keyless.local``).
"""

from __future__ import annotations

import ipaddress
import shlex
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from keyless.ci.base import Provider

__all__ = [
    "CA_VARIABLE",
    "LOCAL_ISSUERS_NONE",
    "LocalIssuers",
    "from_environment",
    "local_ca_bundle",
    "variable_name",
]

_PREFIX: Final = "KEYLESS_LOCAL_"
#: The local CA alone (PEM), as ``keyless local serve`` exports it and ``local run`` sets it.
CA_VARIABLE: Final = "KEYLESS_LOCAL_CA_BUNDLE"
_ROOT: Final = "ISSUER"
_BASE: Final = "ISSUER_BASE"


def variable_name(ci: str, *, root: bool) -> str:
    """``KEYLESS_LOCAL_GITHUB_ISSUER`` (``root``: the server is the issuer) or
    ``KEYLESS_LOCAL_BITBUCKET_ISSUER_BASE`` (issuers live below the server)."""
    return f"{_PREFIX}{ci.upper()}_{_ROOT if root else _BASE}"


def exported_variables(
    servers: Mapping[str, str], issuers: Mapping[str, tuple[str, ...]]
) -> list[tuple[str, str]]:
    """The issuer variables of a running stack: each CI's server, named as a root issuer when
    the server itself is one (``issuers`` lists it) and as a base otherwise."""
    return [
        (variable_name(ci, root=base in issuers.get(ci, ())), base) for ci, base in servers.items()
    ]


def _loopback_origin(url: str) -> str | None:
    """``https://127.0.0.1:PORT`` (no path, query or user info) normalised, else ``None``."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if (
        parts.scheme != "https"
        or port is None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        return None
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    return f"https://{parts.netloc}" if loopback else None


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalIssuers:
    """The local stack's issuers by CI name: exact root issuers and bases with issuers below."""

    roots: Mapping[str, str] = field(default_factory=dict)
    bases: Mapping[str, str] = field(default_factory=dict)

    def ci_of(self, issuer: str) -> str | None:
        """The CI name whose local issuer ``issuer`` is, or ``None``."""
        for origin, ci in self.roots.items():
            if issuer == origin:
                return ci
        for origin, ci in self.bases.items():
            path = issuer.removeprefix(origin)
            if path != issuer and path.startswith("/") and path.strip("/"):
                return ci
        return None

    def provider_for(self, issuer: str) -> Provider | None:
        from keyless.ci import PROVIDERS

        ci = self.ci_of(issuer)
        return PROVIDERS.get(ci) if ci is not None else None

    def remint_hint(
        self, issuer: str | None, *, audience: str | None, path: str | None = None
    ) -> str | None:
        """For a token of a local issuer whose ``aud`` is not the one wanted: the one command
        that mints it again with ``audience`` (default: the audience ``keyless provision``
        registers for the CI, when it is the same for every scope); ``None`` for other tokens.

        The local issuers mint what the CI mints, so a token asked for without ``--audience``
        carries the CI's own default (GitHub: ``https://github.com/OWNER``), not STS's.
        """
        from keyless.ci.shared import CiBase

        provider = self.provider_for(issuer) if issuer else None
        if not isinstance(provider, CiBase):
            return None
        wanted = audience or provider.aws_audience or "AUD"
        write = f" --write {shlex.quote(path)}" if path else ""
        return (
            f"The token is from the local stack's {provider.display_name} issuer: mint it again"
            f" for the provider's audience:  keyless local token --ci {provider.name}"
            f" <the same scope flags> --audience {wanted}{write}"
        )


LOCAL_ISSUERS_NONE: Final = LocalIssuers()


def local_ca_bundle(env: Mapping[str, str]) -> Path | None:
    """The local stack's CA that the environment names (``KEYLESS_LOCAL_CA_BUNDLE``), when the
    file exists. Callers trust it for loopback hosts only (``UrllibClient(loopback_ca_bundle=)``),
    so the variable can never make a public host's certificate pass."""
    value = env.get(CA_VARIABLE, "").strip()
    if not value:
        return None
    path = Path(value)
    return path if path.is_file() else None


def from_environment(env: Mapping[str, str]) -> LocalIssuers:
    """The issuers the environment names as the local stack's (see the module docstring);
    a variable whose value is not a loopback ``https`` origin is ignored."""
    from keyless.ci import CI_PROVIDERS

    roots: dict[str, str] = {}
    bases: dict[str, str] = {}
    for provider in CI_PROVIDERS:
        for root, found in ((True, roots), (False, bases)):
            origin = _loopback_origin(env.get(variable_name(provider.name, root=root), ""))
            if origin is not None:
                found[origin] = provider.name
    return LocalIssuers(roots=roots, bases=bases)
