"""Child processes, started one way: an explicit environment (secrets travel there or on stdin,
never in argv, which every user of the machine can read through ``ps``), the signals sent to
keyless passed on, and the exit status as a shell reports it (128 + N when signal N ended it).

Two shapes. ``run_foreground``: a command in keyless' own process group, on its terminal
(``exec``, ``local run``, a pipe's PRE_EXECUTION_SCRIPT, the Action's deploy). ``run_group``: a
CI step in a process group of its own, its output read line by line, ended as a whole, children
included, on max-time, fail-fast or Ctrl-C (``local pipeline``, ``local workflow``).

This is the only module that starts a command's process or sets signal handlers; the allow-list
in tests/unit/test_process_runner.py names the few other processes keyless starts and why.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Protocol

from keyless.limits import LOCAL_STEP_STOP_GRACE_SECONDS

if TYPE_CHECKING:
    import subprocess

#: A shell reports a child ended by signal N as 128 + N (POSIX, "Exit Status for Commands").
SIGNAL_EXIT_BASE: Final = 128

#: Signals passed on to a foreground child, so that a CI cancelling the step stops the command.
FORWARDED_SIGNALS: Final = tuple(
    getattr(signal, name)
    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH")
    if hasattr(signal, name)
)

#: Signals that stop keyless' own long-running commands (``local serve``, ``local pipeline``).
STOPPING_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def exit_status(returncode: int) -> int:
    """``returncode`` as a shell reports it: Python's -N for "ended by signal N" is 128 + N."""
    return SIGNAL_EXIT_BASE - returncode if returncode < 0 else returncode


class TimedOutError(Exception):
    """A foreground child ran past its ``timeout_seconds`` and was ended."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"ran longer than {seconds:g} seconds")
        self.seconds = seconds


# --- signals -------------------------------------------------------------------------------------


def terminal_delivers(signum: int) -> bool:
    """True when the terminal already sent ``signum`` to the child: Ctrl-C and Ctrl-\\ reach the
    whole foreground process group, and a second copy would interrupt the child twice."""
    if signum not in (getattr(signal, "SIGINT", -1), getattr(signal, "SIGQUIT", -1)):
        return False
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def _in_main_thread() -> bool:
    # Python runs signal handlers in the main thread and lets only it set them.
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def forwarding_signals(
    deliver: Callable[[int], None],
    *,
    skip: Callable[[int], bool] = terminal_delivers,
    signals: Sequence[int] = FORWARDED_SIGNALS,
) -> Iterator[None]:
    """While inside, each of ``signals`` sent to keyless is handed to ``deliver`` (unless
    ``skip`` says the child got it already) instead of ending keyless; handlers restored after."""
    if not _in_main_thread():
        yield
        return

    def forward(signum: int, _frame: object) -> None:
        if skip(signum):
            return
        with contextlib.suppress(ProcessLookupError):
            deliver(signum)

    previous: dict[int, Any] = {}
    try:
        for signum in signals:
            with contextlib.suppress(ValueError, OSError):  # not settable on this platform
                previous[signum] = signal.signal(signum, forward)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP stop like Ctrl-C does, as ``KeyboardInterrupt``, so that every ``with``
    block on the way out stops its part (its servers, its steps' process groups)."""
    if not _in_main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in STOPPING_SIGNALS}
    for sig in saved:
        signal.signal(sig, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def ignore_stopping_signals() -> None:
    """From now on a second Ctrl-C (or SIGTERM) cannot interrupt a stop half-way."""
    if _in_main_thread():
        for sig in STOPPING_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


# --- a command in the foreground -----------------------------------------------------------------


class Child(Protocol):
    pid: int

    def wait(self) -> int: ...

    def send_signal(self, sig: int) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Launch:
    """What a foreground child is started with. ``stdout``/``stderr``: None inherits keyless'
    own; a stream is written to directly when it has a file descriptor."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path | None = None
    #: The child reads nothing (an unattended step, or output that is not a terminal).
    stdin_closed: bool = False
    stdout: IO[Any] | None = None
    stderr: IO[Any] | None = None


Spawn = Callable[[Launch], Child]


def popen(launch: Launch) -> subprocess.Popen[bytes]:
    """The production ``Spawn``: no shell, argv as given, the environment exactly ``env``."""
    import subprocess

    return subprocess.Popen(  # noqa: S603 - the command is the user's; secrets are in env only
        list(launch.argv),
        env=dict(launch.env),
        cwd=launch.cwd,
        stdin=subprocess.DEVNULL if launch.stdin_closed else None,
        stdout=launch.stdout,
        stderr=launch.stderr,
    )


def run_foreground(
    launch: Launch,
    *,
    timeout_seconds: float | None = None,
    spawn: Spawn = popen,
    skip: Callable[[int], bool] = terminal_delivers,
) -> int:
    """Run ``launch`` with keyless' signals forwarded to it; its exit status (128 + N for signal
    N). Raises OSError when it cannot start (the caller names the command) and TimedOutError
    when ``timeout_seconds`` pass first (the child is then ended). A stream without a file
    descriptor (a test's StringIO) gets the child's output once it ended."""
    for stream in (sys.stdout, sys.stderr, launch.stdout, launch.stderr):
        if stream is not None:
            stream.flush()  # what keyless printed comes before what the child prints
    with contextlib.ExitStack() as stack:
        spooled = {
            name: stack.enter_context(_spool())
            for name in ("stdout", "stderr")
            if not _has_descriptor(getattr(launch, name))
        }
        started = Launch(
            argv=launch.argv,
            env=launch.env,
            cwd=launch.cwd,
            stdin_closed=launch.stdin_closed or "stdout" in spooled,
            stdout=spooled.get("stdout", launch.stdout),
            stderr=spooled.get("stderr", launch.stderr),
        )
        child = spawn(started)
        with forwarding_signals(child.send_signal, skip=skip):
            code = _wait(child, timeout_seconds)
        for name, file in spooled.items():
            _copy_out(file, getattr(launch, name))
    return exit_status(code)


def _has_descriptor(stream: IO[Any] | None) -> bool:
    if stream is None:
        return True
    try:
        stream.fileno()
    except (OSError, ValueError, AttributeError):
        return False
    return True


@contextlib.contextmanager
def _spool() -> Iterator[IO[bytes]]:
    # A file, not a pipe: the child can print without bound and never blocks on a full pipe.
    import tempfile

    with tempfile.TemporaryFile() as file:
        yield file


def _copy_out(file: IO[bytes], stream: IO[Any] | None) -> None:
    if stream is None:
        return
    file.seek(0)
    text = file.read().decode("utf-8", "replace")
    if text:
        stream.write(text)


def _wait(child: Child, timeout_seconds: float | None) -> int:
    if timeout_seconds is None:
        return child.wait()
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGKILL)

    timer = threading.Timer(timeout_seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        code = child.wait()
    finally:
        timer.cancel()
    if expired.is_set():
        raise TimedOutError(timeout_seconds)
    return code


# --- a step in a process group of its own --------------------------------------------------------


class GroupStop:
    """A parallel group's ``fail-fast``: once stopped, the group's running steps are ended (their
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


@dataclass(frozen=True, slots=True)
class GroupResult:
    #: As a shell reports it: 128 + N when signal N ended the step.
    code: int
    #: ``max_seconds`` passed and the group was ended.
    timed_out: bool


def run_group(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    on_line: Callable[[str], None],
    max_seconds: float | None,
    stop: GroupStop | None = None,
) -> GroupResult:
    """Run ``argv`` in a new session (its own process group), stdin closed, stdout and stderr
    merged and handed to ``on_line`` a decoded line at a time. ``max_seconds``, ``stop`` and any
    exception here (Ctrl-C as KeyboardInterrupt) end the whole group, children included.
    Raises OSError when it cannot start."""
    import subprocess

    child = subprocess.Popen(  # noqa: S603 - the CI step's own command; secrets are in env only
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        stop_group(child)

    timer = threading.Timer(max_seconds, expire) if max_seconds is not None else None
    with child:
        if stop is not None:
            stop.attach(child)
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            for raw in child.stdout or ():
                on_line(raw.decode("utf-8", "replace"))
            code = child.wait()
        except BaseException:
            stop_group(child)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if stop is not None:
                stop.detach(child)
    return GroupResult(code=exit_status(code), timed_out=timed_out.is_set())


def stop_group(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM to ``child``'s whole process group; SIGKILL after the grace period
    (``LOCAL_STEP_STOP_GRACE_SECONDS``)."""
    import subprocess

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=LOCAL_STEP_STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


class Tail:
    """The last ``limit`` characters of a stream of lines, so that a step printing without end
    does not fill keyless' memory: whole lines are dropped while what stays is still at least
    ``limit``, then ``text()`` cuts to it."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lines: collections.deque[str] = collections.deque()
        self._kept = 0

    def add(self, line: str) -> None:
        self._lines.append(line)
        self._kept += len(line)
        while self._lines and self._kept - len(self._lines[0]) >= self._limit:
            self._kept -= len(self._lines.popleft())

    def text(self) -> str:
        return "".join(self._lines)[-self._limit :]
