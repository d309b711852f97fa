"""The local stack's modules keep to their jobs: the parts of ``keyless local pipeline`` that
read, choose and write a step's script start no process, and STS's wire rules do no I/O."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

#: Modules that only compute; the processes they need are passed in by the caller.
PURE = (
    "keyless.local.pipeline.model",
    "keyless.local.pipeline.parse",
    "keyless.local.pipeline.branch_patterns",
    "keyless.local.pipeline.variables",
    "keyless.local.pipeline.results",
    "keyless.local.pipeline.plan",
    "keyless.local.pipeline.script",
    "keyless.local.sts.rules",
)
#: What a pure module must not import: processes, sockets, HTTP, and the modules that use them.
FORBIDDEN = frozenset(
    {
        "subprocess",
        "multiprocessing",
        "socket",
        "http.client",
        "http.server",
        "keyless.process",
        "keyless.local.pipeline.run",
        "keyless.local.pipeline.execute",
        "keyless.local.sts.relay",
        "keyless.local.sts.server",
    }
)


def _imported(module: str) -> set[str]:
    spec = importlib.util.find_spec(module)
    assert spec is not None
    assert spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_parts_start_no_process_and_open_no_socket(module: str) -> None:
    assert not _imported(module) & FORBIDDEN


def test_the_check_sees_the_process_runner_and_the_server() -> None:
    assert "keyless.process" in _imported("keyless.local.pipeline.run")
    assert "http.client" in _imported("keyless.local.sts.relay")
