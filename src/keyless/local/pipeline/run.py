"""A step's commands run in one bash in its own process group (max-time, fail-fast, Ctrl-C), the
output logged with secrets masked and its last part kept."""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from keyless.limits import PIPELINE_STEP_OUTPUT_KEPT_CHARS, PIPELINE_STOP_GRACE_SECONDS
from keyless.local.pipeline.model import Command
from keyless.local.pipeline.script import step_script


class StopSignal:
    """``fail-fast`` of a parallel group: once stopped, the group's running steps are ended (their
    whole process groups) and the rest do not start."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: set[subprocess.Popen[bytes]] = set()
        self.reason: str | None = None

    @property
    def stopped(self) -> bool:
        return self.reason is not None

    def attach(self, child: subprocess.Popen[bytes]) -> bool:
        """Follow ``child``; False (and ``child`` ended) when the group stopped already."""
        with self._lock:
            if self.reason is None:
                self._children.add(child)
                return True
        stop_group(child)
        return False

    def detach(self, child: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._children.discard(child)

    def stop(self, reason: str) -> None:
        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
            children = list(self._children)
        for child in children:
            threading.Thread(target=stop_group, args=(child,), daemon=True).start()


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
    child = subprocess.Popen(  # noqa: S603 - the pipeline's own script; secrets are in env only
        [bash, "--noprofile", "--norc", str(script)],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # Its own process group: max-time and Ctrl-C end the whole step, children included.
        start_new_session=True,
    )
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        stop_group(child)

    timer = threading.Timer(max_seconds, expire) if max_seconds is not None else None
    # The log gets every line; the result keeps the last PIPELINE_STEP_OUTPUT_KEPT_CHARS of them,
    # so a step that prints without end does not fill this process' memory.
    captured: collections.deque[str] = collections.deque()
    kept = 0
    with child:
        if stop is not None:
            stop.attach(child)
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            for raw in child.stdout or ():
                line = raw.decode("utf-8", "replace")
                for secret, shown in masks.items():
                    line = line.replace(secret, shown)
                captured.append(line)
                kept += len(line)
                # Drop whole lines while what stays is still at least the bound.
                while captured and kept - len(captured[0]) >= PIPELINE_STEP_OUTPUT_KEPT_CHARS:
                    kept -= len(captured.popleft())
                log.write(line)
                log.flush()
            code = child.wait()
        except BaseException:
            stop_group(child)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if stop is not None:
                stop.detach(child)
    text = progress.read_text().strip()
    at = int(text) if text.isdigit() else None
    if code < 0:
        code = 128 - code
    output = "".join(captured)[-PIPELINE_STEP_OUTPUT_KEPT_CHARS:]
    return code, at, output, timed_out.is_set()


def stop_group(child: subprocess.Popen[bytes]) -> None:
    """End ``child``'s whole process group: SIGTERM, then SIGKILL after the grace period."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=PIPELINE_STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
