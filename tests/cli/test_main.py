"""The CLI frame: version, usage errors, the error model."""

from __future__ import annotations

import argparse
import re

import pytest

from keyless import __version__
from keyless.cli import main as cli_main
from keyless.cli.console import Console
from keyless.cli.main import Subparsers
from keyless.errors import CredentialError
from tests.cli.helpers import run_cli


def test_version_prints_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(["--version"])
    assert result.code == 0
    assert __version__ in capsys.readouterr().out


def test_unknown_command_is_a_usage_error_with_exit_2() -> None:
    result = run_cli(["frobnicate"])
    assert result.code == 2
    assert "invalid choice" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_command_is_a_usage_error() -> None:
    result = run_cli([])
    assert result.code == 2
    assert "required: COMMAND" in result.stderr


@pytest.mark.parametrize("argv", [["--bogus"], ["-v", "--colour"], ["-x"]])
def test_an_unknown_option_without_a_command_is_named(argv: list[str]) -> None:
    result = run_cli(argv)
    assert result.code == 2
    assert result.stderr.splitlines()[0] == f"error: keyless: unrecognized option {argv[-1]}"
    assert "required: COMMAND" not in result.stderr


def test_the_top_level_options_are_the_parsers() -> None:
    help_text = cli_main.build_parser("").format_help()
    options = help_text.split("options:", 1)[1]
    declared = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", options))
    assert declared == cli_main.TOP_LEVEL_OPTIONS


def _register_failing(subparsers: Subparsers, error: Exception) -> None:
    parser = subparsers.add_parser("boom")

    def handler(args: argparse.Namespace, console: Console) -> int:
        raise error

    parser.set_defaults(handler=handler)


class _Boom:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def register(self, subparsers: Subparsers) -> None:
        _register_failing(subparsers, self.error)


def test_keyless_error_is_one_line_plus_remedy_and_exit_2() -> None:
    error = CredentialError("Bitbucket: no token\nin step", remedy="step:\n  oidc: true")
    result = run_cli(["boom"], commands=[_Boom(error)])
    assert result.code == 2
    first, *rest = result.stderr.splitlines()
    assert first == "error: Bitbucket: no token in step"
    assert "  oidc: true" in rest
    assert "Traceback" not in result.stderr


def test_traceback_only_with_verbose() -> None:
    commands = [_Boom(CredentialError("x"))]
    assert "Traceback" not in run_cli(["boom"], commands=commands).stderr
    assert "Traceback" in run_cli(["-v", "boom"], commands=commands).stderr


def test_unexpected_exception_hides_its_text_without_verbose() -> None:
    secret = "eyJhbGciOiJSUzI1NiJ9.secret.sig"
    result = run_cli(["boom"], commands=[_Boom(ValueError(secret))])
    assert result.code == 2
    assert secret not in result.stderr
    assert "ValueError" in result.stderr


def test_the_command_table_matches_what_the_modules_register() -> None:
    # keyless --help is rendered from COMMANDS; the modules' own help must say the same.
    full = cli_main.build_parser()
    lazy = cli_main.build_parser("")
    assert full.format_help() == lazy.format_help()
    for name, _module, _help in cli_main.COMMANDS:
        assert cli_main.build_parser(name).format_help() == full.format_help()
