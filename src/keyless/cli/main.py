"""Entry point: builds the parser from the command modules and turns errors into exit codes.

Exit codes (everywhere): 0 success / allowed / no findings; 1 a negative verdict (denied, findings
at or above ``--fail-on``, doctor found a problem); 2 a usage or runtime error.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn, Protocol, TypeAlias, cast

from keyless import __version__
from keyless.cli.console import Console
from keyless.errors import KeylessError

EXIT_OK = 0
EXIT_NEGATIVE = 1
EXIT_ERROR = 2

Handler = Callable[[argparse.Namespace, Console], int]
# argparse's subparsers type is generic only for type checkers, hence the string alias.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CommandModule(Protocol):
    """What every ``keyless.cli.cmd_*`` module provides."""

    def register(self, subparsers: Subparsers) -> None:
        """Add the command's parser and ``set_defaults(handler=...)``."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so that usage errors follow the error model."""

    def error(self, message: str) -> NoReturn:
        raise _ArgumentError(f"{self.prog}: {message}")


class _ArgumentError(Exception):
    pass


def _command_modules() -> list[CommandModule]:
    # Imported here so that `keyless --version` stays fast and a broken command cannot break others.
    from keyless.cli import (
        cmd_action,
        cmd_assume,
        cmd_claims,
        cmd_demo,
        cmd_deploy,
        cmd_doctor,
        cmd_local,
        cmd_pipe,
        cmd_provision,
        cmd_token,
        cmd_trust,
        cmd_whoami,
    )

    return [
        cmd_action,
        cmd_assume,
        cmd_claims,
        cmd_demo,
        cmd_deploy,
        cmd_doctor,
        cmd_local,
        cmd_pipe,
        cmd_provision,
        cmd_token,
        cmd_trust,
        cmd_whoami,
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="keyless",
        description="Deploy from CI to AWS with no stored secrets.",
        epilog="Exit codes: 0 success, 1 negative verdict (denied, findings), 2 error.",
    )
    parser.add_argument("--version", action="version", version=f"keyless {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="on errors, also show the traceback",
    )
    subparsers = cast(
        Subparsers,
        parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser),
    )
    subparsers.required = True
    for module in _command_modules():
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Run keyless with ``argv``; return the exit code instead of exiting."""
    console = console or Console()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments == ["--version"]:
        # What argparse's version action prints, without building the parser first (that
        # imports every command module).
        sys.stdout.write(f"keyless {__version__}\n")
        return EXIT_OK
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except _ArgumentError as exc:
        console.info(f"error: {exc}")
        console.info("Run 'keyless --help' (or 'keyless COMMAND --help') for usage.")
        return EXIT_ERROR
    except SystemExit as exc:  # --help and --version exit 0 through argparse
        return int(exc.code or 0)
    console.verbose = bool(args.verbose)
    handler: Handler = args.handler
    try:
        return handler(args, console)
    except KeylessError as exc:
        console.info(f"error: {exc}")
        if exc.remedy:
            console.info("")
            console.info(exc.remedy)
        if console.verbose:
            console.info("".join(traceback.format_exception(exc)))
        return exc.exit_code
    except KeyboardInterrupt:
        console.info("interrupted")
        return 130
    except Exception as exc:
        # A bug, not a user error. Its text may quote inputs (even secrets), so it is shown
        # only with -v; without it the user learns the type and how to see more.
        if console.verbose:
            console.info("".join(traceback.format_exception(exc)))
        else:
            console.info(f"error: internal error ({type(exc).__name__}); run with -v for details")
        return EXIT_ERROR


def entry() -> NoReturn:
    """Console-script entry point."""
    sys.exit(main())
