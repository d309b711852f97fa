"""keyless.process is the one child-process runner: no other module of src starts a command's
process or sets a signal handler, except the few named below with the reason they may."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import keyless

SRC = Path(keyless.__file__).parent

#: Calls that start a process or change how signals are handled.
WATCHED = frozenset(
    {
        "subprocess.Popen",
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "subprocess.getoutput",
        "subprocess.getstatusoutput",
        "os.system",
        "os.popen",
        "os.kill",
        "os.killpg",
        "os.fork",
        "os.posix_spawn",
        "os.posix_spawnp",
        "signal.signal",
        "signal.setitimer",
        "signal.pthread_kill",
        "asyncio.create_subprocess_exec",
        "asyncio.create_subprocess_shell",
    }
)

#: (module, call) -> why it is not a child run through keyless.process. Each is a short, bounded
#: helper call with captured output and a timeout (nothing to forward a signal to: it ends on its
#: own in seconds), or the emulator's own server.
ALLOWED: dict[tuple[str, str], str] = {
    ("ci/base.py", "subprocess.run"): "buildkite-agent's token request: captured, with a timeout",
    ("local/worktree.py", "subprocess.run"): "git asked about the checkout: captured, timeout",
    ("local/pipeline/source.py", "subprocess.run"): "git names the checkout: captured, timeout",
    ("local/workflow/actions.py", "subprocess.run"): "python/pyenv asked a version: timeout",
    ("local/demo.py", "subprocess.run"): "the demo's admin keyless calls: captured, timeout",
    ("local/moto_server.py", "subprocess.Popen"): (
        "moto, the local stack's server: its own session, stopped by the stack's context manager"
    ),
    ("local/served.py", "os.kill"): "signal 0: asks whether a served stack's pid is alive",
}


def _calls(tree: ast.AST) -> set[str]:
    """Dotted names of the watched calls in ``tree``, through ``import x`` or ``from x import``."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for name in node.names:
                aliases[name.asname or name.name] = f"{node.module}.{name.name}"
        elif isinstance(node, ast.Import):
            for name in node.names:
                aliases[name.asname or name.name] = name.name
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            dotted = f"{aliases.get(func.value.id, func.value.id)}.{func.attr}"
        elif isinstance(func, ast.Name):
            dotted = aliases.get(func.id, func.id)
        else:
            continue
        if dotted in WATCHED:
            found.add(dotted)
    return found


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.name != "process.py" or p.parent != SRC)


def test_no_other_module_runs_children_or_sets_signal_handlers() -> None:
    offending = sorted(
        f"{path.relative_to(SRC).as_posix()}: {call}"
        for path in _modules()
        for call in _calls(ast.parse(path.read_text(encoding="utf-8")))
        if (path.relative_to(SRC).as_posix(), call) not in ALLOWED
    )
    assert offending == [], "start children through keyless.process (or allow-list with a reason)"


def test_the_allow_list_names_only_calls_that_exist() -> None:
    present = {
        (path.relative_to(SRC).as_posix(), call)
        for path in _modules()
        for call in _calls(ast.parse(path.read_text(encoding="utf-8")))
    }
    assert set(ALLOWED) <= present


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import subprocess\nsubprocess.Popen(['x'])", {"subprocess.Popen"}),
        ("from subprocess import run as r\nr(['x'])", {"subprocess.run"}),
        ("import signal as s\ns.signal(2, None)", {"signal.signal"}),
        ("import os\nos.killpg(1, 15)", {"os.killpg"}),
        ("import subprocess\nsubprocess.DEVNULL", set()),
    ],
)
def test_the_scan_sees_every_spelling(source: str, expected: set[str]) -> None:
    assert _calls(ast.parse(source)) == expected
