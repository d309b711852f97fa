"""The ``--ci NAME`` scope flags of each CI, for every command that pins a role to one scope.

Each CI declares its flags (``scope_options``) and builds its ``Scope`` from their values; this
module only turns the declarations into argparse options. ``add_scope_arguments(parser)`` adds
them; ``scope_from_args(args)`` builds the CI's ``Scope`` and refuses flags that belong to another
CI, so a typo never silently widens a scope.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from keyless.ci import CI_PROVIDERS
from keyless.ci.base import CiProvider, Scope
from keyless.ci.shared import CiBase
from keyless.errors import UsageError

__all__ = ["CI_NAMES", "SCOPE_HELP", "add_scope_arguments", "scope_from_args"]

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
