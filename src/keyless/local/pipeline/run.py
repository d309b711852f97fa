"""A step's commands run in one bash in its own process group (max-time, fail-fast, Ctrl-C), the
output logged with secrets masked and its last part kept."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO, TypeAlias

from keyless.limits import PIPELINE_STEP_OUTPUT_KEPT_CHARS
from keyless.local.pipeline.model import Command
from keyless.local.pipeline.script import step_script
from keyless.process import GroupStop, Tail, run_group

#: ``fail-fast`` of a parallel group: ends the group's running steps, the rest do not start.
StopSignal: TypeAlias = GroupStop


def run_commands(
    commands: Sequence[Command],
    *,
    env: Mapping[str, str],
    workdir: Path,
    cwd: Path,
    log: TextIO,
    masks: Mapping[str, str],
    max_seconds: float | None,
    stop: StopSignal | None = None,
) -> tuple[int, int | None, str, bool]:
    """Run ``commands`` in one bash; returns (exit code, index of the last command started,
    the masked output, whether max-time ended it). ``stop`` ends it when its group stops."""
    progress = workdir / "progress"
    progress.write_text("")
    script = workdir / "script.sh"
    script.write_text(step_script(commands, progress=progress), encoding="utf-8")
    bash = shutil.which("bash", path=env.get("PATH")) or "/bin/bash"
    log.flush()
    # The log gets every line; the result keeps the last PIPELINE_STEP_OUTPUT_KEPT_CHARS of them,
    # so a step that prints without end does not fill this process' memory.
    tail = Tail(PIPELINE_STEP_OUTPUT_KEPT_CHARS)

    def on_line(line: str) -> None:
        for secret, shown in masks.items():
            line = line.replace(secret, shown)
        tail.add(line)
        log.write(line)
        log.flush()

    # Its own process group: max-time and Ctrl-C end the whole step, children included.
    result = run_group(
        [bash, "--noprofile", "--norc", str(script)],
        env=env,
        cwd=cwd,
        on_line=on_line,
        max_seconds=max_seconds,
        stop=stop,
    )
    text = progress.read_text().strip()
    at = int(text) if text.isdigit() else None
    return result.code, at, tail.text(), result.timed_out
