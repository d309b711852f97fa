"""The local stack's modules keep to their jobs: the parts of ``keyless local pipeline`` that
read, choose and write a step's script start no process."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

#: Modules that only compute; the processes they need are passed in by the caller.
PURE = (
    "keyless.local.pipeline.parse",
    "keyless.local.pipeline.plan",
    "keyless.local.pipeline.script",
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
def test_pure_parts_start_no_process(module: str) -> None:
    imported = _imported(module)
    assert not imported & {"subprocess", "multiprocessing", "keyless.local.pipeline.run"}


def test_the_check_sees_the_process_runner() -> None:
    assert "subprocess" in _imported("keyless.local.pipeline.run")
