"""Test inputs are the same bytes in every process: each ``gzip.compress`` in tests/ passes
``mtime`` (otherwise the gzip header carries the current second). Such bytes become parametrized
test IDs, and pytest-xdist stops the whole run when its workers collect different IDs, which
happens whenever collection straddles a second."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _compress_without_mtime(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "compress"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "gzip"
            and not any(keyword.arg == "mtime" for keyword in node.keywords)
        ):
            lines.append(node.lineno)
    return lines


def test_every_gzip_compress_in_the_tests_fixes_its_mtime() -> None:
    found = [
        f"{path.relative_to(TESTS)}:{line}"
        for path in sorted(TESTS.rglob("*.py"))
        for line in _compress_without_mtime(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not found, f"pass mtime=0 to gzip.compress at: {', '.join(found)}"


def test_the_scan_finds_a_call_without_mtime() -> None:
    tree = ast.parse("gzip.compress(b'a')\ngzip.compress(b'b', mtime=0)\n")
    assert _compress_without_mtime(tree) == [1]
