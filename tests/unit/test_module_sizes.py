"""Small modules with one job: no module of ``src/keyless`` over 600 lines, no function over 80.

What is over today is listed below, each entry with its reason; an entry that is no longer over
the bound fails too, so the lists only shrink. Function lengths come from ``ast``
(``end_lineno - lineno + 1``, decorators not counted).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import keyless

SOURCE = Path(keyless.__file__).resolve().parent
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

#: Modules over MAX_MODULE_LINES, by path below src/keyless, with why they still are.
LONG_MODULES: dict[str, str] = {}
#: Functions over MAX_FUNCTION_LINES, as ``path::qualified.name``, with why they still are.
LONG_FUNCTIONS: dict[str, str] = {
    "aws/emit.py::_terraform": "one template written in output order, one line per output line",
    "aws/emit.py::_cloudformation": "one template written in output order, as _terraform",
    "deploy/plan.py::build_plan": "one pass over local and remote entries: its branches are"
    " the plan's decision table, read together",
}


def _modules() -> Iterator[tuple[str, str]]:
    for path in sorted(SOURCE.rglob("*.py")):
        yield path.relative_to(SOURCE).as_posix(), path.read_text(encoding="utf-8")


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, int]]:
    """``(qualified name, lines)`` of every function and method, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                yield name, node.end_lineno - node.lineno + 1
            yield from _functions(node, f"{name}.")
        else:
            yield from _functions(node, prefix)


def _long_modules() -> dict[str, int]:
    return {
        path: lines
        for path, text in _modules()
        if (lines := len(text.splitlines())) > MAX_MODULE_LINES
    }


def _long_functions() -> dict[str, int]:
    return {
        f"{path}::{name}": lines
        for path, text in _modules()
        for name, lines in _functions(ast.parse(text, filename=path))
        if lines > MAX_FUNCTION_LINES
    }


def test_no_module_is_over_600_lines_unless_listed() -> None:
    over = {path: lines for path, lines in _long_modules().items() if path not in LONG_MODULES}
    assert not over, f"split these by job (lines): {over}"


def test_no_function_is_over_80_lines_unless_listed() -> None:
    over = {key: lines for key, lines in _long_functions().items() if key not in LONG_FUNCTIONS}
    assert not over, f"split these by job (lines): {over}"


def test_every_listed_module_and_function_is_still_over_its_bound() -> None:
    stale = sorted(set(LONG_MODULES) - set(_long_modules()))
    stale += sorted(set(LONG_FUNCTIONS) - set(_long_functions()))
    assert not stale, f"no longer over the bound: remove from the lists: {stale}"


def test_every_listed_entry_says_why() -> None:
    assert all(reason.strip() for reason in (*LONG_MODULES.values(), *LONG_FUNCTIONS.values()))


def test_the_measure_counts_nested_functions_and_methods() -> None:
    tree = ast.parse("class A:\n    def m(self):\n        def inner():\n            pass\n")
    assert dict(_functions(tree)) == {"A.m": 3, "A.m.inner": 2}
