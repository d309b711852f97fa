"""Entry point: builds the parser from the command modules and turns errors into exit codes.

Exit codes (everywhere): 0 success / allowed / no findings; 1 a negative verdict (denied, findings
at or above ``--fail-on``, doctor found a problem); 2 a usage or runtime error; 141 the reader of
stdout stopped reading (128 + SIGPIPE, what a shell reports for a tool that SIGPIPE stops).
"""

from __future__ import annotations

import argparse
import importlib
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
#: 128 + SIGPIPE (13): the reader of stdout went away, as in ``keyless trust lint --format json
#: | head``. Not a success, since the output was cut short; not an error keyless should explain.
EXIT_STDOUT_CLOSED = 141

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


#: Every command, in ``keyless --help`` order: its name, the module that registers it and its
#: one-line help. The top-level parser is built from this table, importing only the module of the
#: command being run (start-up time); tests/cli/test_main.py checks it against the modules.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("action", "cmd_action", "the steps of the keyless GitHub Action (action.yml)"),
    ("assume", "cmd_assume", "trade this job's OIDC token for a role's temporary credentials"),
    ("exec", "cmd_assume", "run a command with a role's temporary credentials in its environment"),
    (
        "credential-process",
        "cmd_assume",
        "print credentials for credential_process in an AWS config file",
    ),
    (
        "audit",
        "cmd_audit",
        "report every OIDC-trusting role: who can assume it, what it may do, what is wrong",
    ),
    ("claims", "cmd_claims", "show a token's claims (safe ones only) and optionally verify it"),
    (
        "demo",
        "cmd_demo",
        "the whole story on the local stack: provision, deploy, refuse, diagnose",
    ),
    (
        "deploy",
        "cmd_deploy",
        "sync a folder to S3 by content (safe delete, headers, CloudFront invalidation)",
    ),
    (
        "doctor",
        "cmd_doctor",
        "check CI, token, IAM provider, trust policy and the exchange, step by step",
    ),
    (
        "local",
        "cmd_local",
        "the local stack: CI token issuers and an AWS that enforces web identity",
    ),
    ("pipe", "cmd_pipe", "run as an Atlassian AWS pipe, from its variables (OIDC only)"),
    (
        "provision",
        "cmd_provision",
        "create or update the IAM OIDC provider and a role for one CI scope (idempotent)",
    ),
    ("token", "cmd_token", "get this CI job's OIDC token (the CI is detected)"),
    ("trust", "cmd_trust", "build, check and lint role trust policies"),
    ("whoami", "cmd_whoami", "show who this environment's AWS credentials are"),
)
_MODULE_OF: dict[str, str] = {name: module for name, module, _help in COMMANDS}


def _command_module(module: str) -> CommandModule:
    return cast(CommandModule, importlib.import_module(f"keyless.cli.{module}"))


def _command_modules() -> list[CommandModule]:
    """Every command module (the full parser: README help, tests, unknown commands)."""
    return [_command_module(module) for module in dict.fromkeys(_MODULE_OF.values())]


#: The options of ``keyless`` itself (before the command), as ``build_parser`` declares them.
TOP_LEVEL_OPTIONS = frozenset({"-h", "--help", "--version", "-v", "--verbose"})


def _command_name(arguments: Sequence[str]) -> str | None:
    # The top-level options take no values, so the first other argument is the command.
    return next((arg for arg in arguments if not arg.startswith("-")), None)


def _top_parser() -> tuple[argparse.ArgumentParser, Subparsers]:
    parser = _Parser(
        prog="keyless",
        description="Deploy from CI to AWS with no stored secrets.",
        epilog=(
            "Exit codes: 0 success, 1 negative verdict (denied, findings), 2 error,"
            " 141 stdout closed by its reader (| head)."
        ),
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
    return parser, subparsers


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with ``only`` (a command's name, or ``""`` for none) the
    other commands are placeholders built from ``COMMANDS``, and only that module is imported."""
    if only is None:
        return parser_of(_command_modules())
    parser, subparsers = _top_parser()
    wanted = _MODULE_OF.get(only)
    registered = False
    for name, module_name, help_text in COMMANDS:
        if module_name != wanted:
            subparsers.add_parser(name, help=help_text)
        elif not registered:
            registered = True
            _command_module(module_name).register(subparsers)
    return parser


def parser_of(modules: Sequence[CommandModule]) -> argparse.ArgumentParser:
    """The top-level parser with the commands ``modules`` register."""
    parser, subparsers = _top_parser()
    for module in modules:
        module.register(subparsers)
    return parser


def main(
    argv: Sequence[str] | None = None,
    console: Console | None = None,
    *,
    commands: Sequence[CommandModule] | None = None,
) -> int:
    """Run keyless with ``argv``; return the exit code instead of exiting. ``commands`` replaces
    keyless's own command modules (a test's command that fails on purpose)."""
    console = console or Console()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments == ["--version"]:
        # What argparse's version action prints, without building the parser first (that
        # imports every command module).
        sys.stdout.write(f"keyless {__version__}\n")
        return EXIT_OK
    name = _command_name(arguments)
    if name is None:
        # argparse would report the missing COMMAND before an option it does not know.
        unknown = [arg for arg in arguments if arg not in TOP_LEVEL_OPTIONS]
        if unknown:
            console.info(f"error: keyless: unrecognized option {unknown[0]}")
            console.info("Run 'keyless --help' (or 'keyless COMMAND --help') for usage.")
            return EXIT_ERROR
    # A command keyless does not know gets the full parser, whose error lists the choices.
    if commands is not None:
        parser = parser_of(commands)
    else:
        parser = build_parser(None if name is not None and name not in _MODULE_OF else (name or ""))
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
    except BrokenPipeError as exc:
        if not console.stdout_reader_is_gone():
            return _internal_error(exc, console)
        # The reader has what it wanted; it sees no message, as from any tool SIGPIPE stops.
        console.discard_stdout()
        return EXIT_STDOUT_CLOSED
    except Exception as exc:
        return _internal_error(exc, console)


def _internal_error(exc: BaseException, console: Console) -> int:
    # A bug, not a user error. Its text may quote inputs (even secrets), so it is shown only
    # with -v; without it the user learns the type and how to see more.
    if console.verbose:
        console.info("".join(traceback.format_exception(exc)))
    else:
        console.info(f"error: internal error ({type(exc).__name__}); run with -v for details")
    return EXIT_ERROR


def entry() -> NoReturn:
    """Console-script entry point."""
    sys.exit(main())
