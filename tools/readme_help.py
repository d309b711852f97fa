"""Keep the ``--help`` blocks in README.md identical to what the CLI prints.

A block in the README looks like::

    ```text
    $ keyless token --help
    usage: keyless token ...
    ```

``python -m tools.readme_help`` rewrites every such block from the live parser (``make readme``);
``tests/cli/test_readme.py`` fails when a block is stale or a command has none.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from keyless.cli.main import build_parser

README = Path(__file__).resolve().parent.parent / "README.md"
#: Help is rendered at a fixed width so that it does not depend on the terminal.
HELP_COLUMNS = "100"
_BLOCK = re.compile(r"```text\n\$ (keyless[^\n]*--help)\n(.*?)```", re.DOTALL)


def help_text(command_line: str) -> str:
    """What ``keyless ... --help`` prints, at the fixed width."""
    argv = shlex.split(command_line)[1:]
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
            build_parser().parse_args(argv)
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    return buffer.getvalue()


def leaf_commands() -> list[str]:
    """Every runnable command line, e.g. ``keyless token``, ``keyless trust lint``."""
    found: list[str] = ["keyless"]

    def walk(parser: argparse.ArgumentParser, prefix: str) -> Iterator[str]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield f"{prefix} {name}"
                    yield from walk(sub, f"{prefix} {name}")

    found.extend(walk(build_parser(), "keyless"))
    return found


def refresh(readme: str) -> str:
    """``readme`` with every help block re-rendered."""

    def render(match: re.Match[str]) -> str:
        command_line = match.group(1)
        return f"```text\n$ {command_line}\n{help_text(command_line)}```"

    return _BLOCK.sub(render, readme)


def documented_commands(readme: str) -> set[str]:
    return {m.group(1).removesuffix("--help").strip() for m in _BLOCK.finditer(readme)}


def main() -> int:
    text = README.read_text(encoding="utf-8")
    updated = refresh(text)
    if updated != text:
        README.write_text(updated, encoding="utf-8")
        print("README.md: help blocks updated", file=sys.stderr)
    missing = sorted(set(leaf_commands()) - documented_commands(updated))
    for command in missing:
        print(f"README.md: no help block for '{command}'", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
