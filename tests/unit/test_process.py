"""keyless.process: a foreground child's exit status, output and timeout; a step's process group
ended as a whole; the bounded tail of its output."""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

import pytest

from keyless import process


def _python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def test_a_foreground_child_gets_only_the_given_environment() -> None:
    out = io.StringIO()
    launch = process.Launch(
        argv=_python("import os; print(sorted(k for k in os.environ if k.startswith('KL_')))"),
        env={"KL_ONLY": "1", "PATH": os.environ.get("PATH", "")},
        stdout=out,
    )
    assert process.run_foreground(launch) == 0
    assert out.getvalue() == "['KL_ONLY']\n"


def test_a_signal_ending_the_child_is_128_plus_n() -> None:
    launch = process.Launch(
        argv=_python("import os, signal; os.kill(os.getpid(), signal.SIGTERM)"), env={}
    )
    assert process.run_foreground(launch) == 128 + signal.SIGTERM


def test_a_foreground_child_past_its_timeout_is_ended() -> None:
    launch = process.Launch(argv=_python("import time; time.sleep(60)"), env={})
    with pytest.raises(process.TimedOutError):
        process.run_foreground(launch, timeout_seconds=0.2)


def test_a_step_is_ended_with_its_children_at_max_time(tmp_path: Path) -> None:
    lines: list[str] = []
    result = process.run_group(
        ["/bin/sh", "-c", "echo one; (sleep 60; echo late) & wait"],
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        on_line=lines.append,
        max_seconds=0.5,
    )
    assert result == process.GroupResult(code=128 + signal.SIGTERM, timed_out=True)
    assert lines == ["one\n"]


def test_a_stopped_group_ends_a_step_attached_after_the_stop(tmp_path: Path) -> None:
    stop = process.GroupStop()
    stop.stop("another step failed")
    result = process.run_group(
        ["/bin/sh", "-c", "sleep 60"],
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        on_line=lambda _line: None,
        max_seconds=None,
        stop=stop,
    )
    assert result.code == 128 + signal.SIGTERM
    assert not result.timed_out


def test_the_tail_keeps_the_last_characters_in_whole_lines_at_the_limit() -> None:
    tail = process.Tail(10)
    for line in ("aaaa\n", "bbbb\n", "cccc\n"):
        tail.add(line)
    assert tail.text() == "bbbb\ncccc\n"  # exactly the limit: nothing cut
    tail.add("d\n")
    assert tail.text() == "bb\ncccc\nd\n"
    assert len(tail.text()) == 10
