"""When the reader of stdout stops reading (``keyless ... --format json | head``), keyless stops
quietly with exit 141, as a tool that SIGPIPE stops; a BrokenPipeError from anywhere else stays
an internal error."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from keyless.cli.console import Console
from keyless.cli.main import EXIT_STDOUT_CLOSED, Subparsers
from tests.cli.helpers import run_cli
from tests.trust_policies import github_trust


def _broad_policy(statements: int) -> dict[str, object]:
    return github_trust(*(f"repo:acme/s{i}:*" for i in range(statements)), audience=None)


def test_a_reader_that_stops_early_gets_no_error_and_exit_141(tmp_path: Path) -> None:
    policy = tmp_path / "trust.json"
    policy.write_text(json.dumps(_broad_policy(200)), encoding="utf-8")
    argv = [sys.executable, "-m", "keyless", "trust", "lint", str(policy), "--format", "json"]
    child = subprocess.Popen(  # noqa: S603 - keyless itself, fixed arguments
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert child.stdout is not None
    assert child.stderr is not None
    first = child.stdout.read(100)
    child.stdout.close()  # what `| head -c 100` does
    stderr = child.stderr.read()
    child.stderr.close()
    code = child.wait(timeout=120)
    assert first.startswith(b"[")
    assert code == EXIT_STDOUT_CLOSED
    assert stderr == b""


def test_the_whole_report_still_exits_by_its_verdict(tmp_path: Path) -> None:
    policy = tmp_path / "trust.json"
    policy.write_text(json.dumps(_broad_policy(3)), encoding="utf-8")
    argv = [sys.executable, "-m", "keyless", "trust", "lint", str(policy), "--format", "json"]
    done = subprocess.run(  # noqa: S603 - keyless itself, fixed arguments
        argv, capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 1  # repository-wide subjects are findings
    assert json.loads(done.stdout)


def test_the_probe_tells_an_open_pipe_from_a_widowed_one() -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as stream:
        console = Console(stdout=stream)
        assert not console.stdout_reader_is_gone()
        os.close(read_end)
        assert console.stdout_reader_is_gone()


class _RaisesBrokenPipe:
    """A command whose own connection (not stdout) breaks."""

    def register(self, subparsers: Subparsers) -> None:
        parser = subparsers.add_parser("boom")

        def handler(args: argparse.Namespace, console: Console) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        parser.set_defaults(handler=handler)


def test_a_broken_pipe_elsewhere_is_an_internal_error() -> None:
    result = run_cli(["boom"], commands=[_RaisesBrokenPipe()])
    assert result.code == 2
    assert "internal error (BrokenPipeError)" in result.stderr
