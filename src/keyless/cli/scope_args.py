"""The ``--ci NAME`` scope flags of each CI, for every command that pins a role to one scope.

Each CI declares its flags (``scope_options``) and builds its ``Scope`` from their values; this
module only turns the declarations into argparse options. ``add_scope_arguments(parser)`` adds
them and ``--issuer URL``; ``scope_from_args(args)`` builds the CI's ``Scope`` and refuses flags
that belong to another CI, so a typo never silently widens a scope; ``trust_spec_from_args``
is that scope's trust, for ``--issuer`` when one is given.

Every command that takes a scope takes ``--issuer`` too, so the flags one command prints
(``keyless local pipeline --print-scope``) paste into every other.
"""

from __future__ import annotations

import argparse
import dataclasses
import urllib.parse
from collections.abc import Mapping

from keyless.ci import CI_PROVIDERS
from keyless.ci.base import CiProvider, Scope, TrustSpec
from keyless.ci.shared import CiBase
from keyless.errors import UsageError
from keyless.urls import has_userinfo, shown_url

__all__ = [
    "CI_NAMES",
    "SCOPE_HELP",
    "add_scope_arguments",
    "parse_issuer",
    "scope_from_args",
    "trust_spec_from_args",
]

#: The CIs a scope can be given for, in the order of their help groups.
SCOPED: tuple[CiProvider, ...] = tuple(p for p in CI_PROVIDERS if isinstance(p, CiBase))
#: ... as ``--ci`` names.
CI_NAMES = tuple(provider.name for provider in SCOPED)

_USAGE_INDENT = 13  # two spaces, the longest CI name and a space: the flags line up


def _usage(provider: CiProvider) -> str:
    first, *more = provider.scope_usage
    lines = [f"  {provider.name:<{_USAGE_INDENT - 3}} {first}"]
    lines += [" " * _USAGE_INDENT + line for line in more]
    return "\n".join(lines)


#: For an epilog: which flags each CI takes.
SCOPE_HELP = "Scope flags (--ci NAME chooses which apply; [..] optional):\n" + "\n".join(
    _usage(provider) for provider in SCOPED
)


def _dest(flag: str) -> str:
    # The argparse destination follows the flag, so two CIs sharing a flag share its value.
    return flag.removeprefix("--").replace("-", "_")


#: Flag -> the CIs it belongs to, in help order.
_OWNERS: Mapping[str, tuple[str, ...]] = {
    flag: tuple(p.name for p in SCOPED if any(o.flag == flag for o in p.scope_options))
    for flag in dict.fromkeys(o.flag for p in SCOPED for o in p.scope_options)
}


def add_scope_arguments(parser: argparse.ArgumentParser) -> None:
    """``--ci NAME`` and every CI's scope flags, in one group per CI."""
    parser.add_argument(
        "--ci",
        required=True,
        choices=CI_NAMES,
        metavar="NAME",
        help=f"the CI: {', '.join(CI_NAMES)}",
    )
    parser.add_argument(
        "--issuer",
        metavar="URL",
        help="the issuer URL, when not the CI's public one (GitHub Enterprise Server, the local"
        " stack)",
    )
    for provider in SCOPED:
        group = parser.add_argument_group(f"{provider.short_name} scope (--ci {provider.name})")
        for option in provider.scope_options:
            if option.help is None:
                continue  # another CI's flag, declared in that CI's group
            group.add_argument(
                option.flag,
                dest=_dest(option.flag),
                metavar=option.metavar,
                choices=list(option.choices) if option.choices else None,
                help=option.help,
            )


def scope_from_args(args: argparse.Namespace) -> Scope:
    """The ``Scope`` of ``args.ci`` from its flags; ``UsageError`` naming what is missing or
    does not belong."""
    ci: str = args.ci
    provider = next(p for p in SCOPED if p.name == ci)
    for flag, owners in _OWNERS.items():
        if ci not in owners and getattr(args, _dest(flag), None) is not None:
            names = " and ".join(owners)
            raise UsageError(f"{flag} is a {names} flag; it does not apply to --ci {ci}")
    values = {
        option.dest: getattr(args, _dest(option.flag), None) for option in provider.scope_options
    }
    missing = [o.flag for o in provider.scope_options if o.required and values[o.dest] is None]
    if missing:
        raise UsageError(f"--ci {ci} needs {' '.join(missing)}", remedy=SCOPE_HELP)
    return provider.scope_from_values(values)


def parse_issuer(text: str) -> str:
    """``--issuer URL``: an https URL with a host and no user info, query or fragment."""
    parts = urllib.parse.urlsplit(text)
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.query
        or parts.fragment
        or has_userinfo(text)
    ):
        raise UsageError(
            f"--issuer {shown_url(text)} is not an https URL without user info, query or fragment"
        )
    return text


def trust_spec_from_args(args: argparse.Namespace) -> TrustSpec:
    """The trust of ``scope_from_args(args)``; with ``--issuer``, the same conditions for that
    issuer (a CI served from elsewhere keeps its subject grammar)."""
    spec = scope_from_args(args).trust_spec()
    if args.issuer is not None:
        spec = dataclasses.replace(spec, issuer=parse_issuer(args.issuer))
    return spec
