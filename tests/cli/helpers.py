"""Drive ``keyless.cli.main.main`` in-process and capture what it prints."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from keyless.cli.console import Console
from keyless.cli.main import CommandModule, main
from keyless.cli.seams import Seams
from tests import secret_scan


class _FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    code: int
    stdout: str
    stderr: str


def run_cli(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: str = "",
    stdout_is_terminal: bool = False,
    verbose_env: bool = False,
    seams: Seams | None = None,
    commands: Sequence[CommandModule] | None = None,
) -> Result:
    """Run ``keyless ARGV`` with the given environment and seams (production ones by default),
    and ``commands`` instead of keyless's own when given; never touches the real process env."""
    out: io.StringIO = _FakeTerminal() if stdout_is_terminal else io.StringIO()
    err = io.StringIO()
    console = Console(
        stdout=out,
        stderr=err,
        stdin=io.StringIO(stdin),
        env=dict(env or {}),
        seams=seams or Seams(),
    )
    code = main(list(argv), console, commands=commands)
    result = Result(code=code, stdout=out.getvalue(), stderr=err.getvalue())
    secret_scan.observe("stdout", result.stdout)
    secret_scan.observe("stderr", result.stderr)
    return result
