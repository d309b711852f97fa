"""The tests reach keyless only through its public names and inject doubles through parameters.

An AST scan of every file under tests/ fails on:

- importing a private name (``from keyless.x import _y``, ``import keyless._x``) or a private
  module of the tests themselves (``tests/.../_fakes``): what a test needs is public, or the test
  goes through the public API (the shipped doubles live in ``keyless.testing``);
- reading or writing ``obj._name`` where ``obj`` was bound by a keyless import or by calling
  something a keyless import bound (best effort: a name assigned from such a call);
- ``monkeypatch.setattr(target, "name", ...)`` unless ``name`` is an UPPER_CASE limit (a
  configuration value lowered to test at the limit cheaply): doubles are passed as arguments.

Each rule has an allow-list whose entries carry the reason they are allowed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

#: (file relative to tests/, the offending name) -> why it is allowed.
ALLOWED_PRIVATE_IMPORTS: dict[tuple[str, str], str] = {}
ALLOWED_PRIVATE_ATTRIBUTES: dict[tuple[str, str], str] = {}
ALLOWED_MONKEYPATCHES: dict[tuple[str, str], str] = {
    ("unit/test_fsutil.py", "os.fsync"): "a full disk, which no seam of fsutil can cause",
    ("unit/test_fsutil.py", "os.replace"): "a failed rename, which no seam of fsutil can cause",
    ("unit/test_tokens.py", "jwt.decode"): (
        "a spy on PyJWT itself: the options keyless hands the library are the point"
    ),
}


@dataclass(frozen=True, slots=True)
class Violation:
    path: str
    line: int
    name: str
    what: str

    def __str__(self) -> str:
        return f"tests/{self.path}:{self.line}: {self.what} {self.name}"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _ours(module: str) -> bool:
    return module == "keyless" or module.startswith(("keyless.", "tests.", "tests"))


def _test_files() -> Iterator[Path]:
    yield from sorted(TESTS.rglob("*.py"))


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


class _Scan(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.keyless_names: set[str] = set()
        self.imports: list[Violation] = []
        self.attributes: list[Violation] = []
        self.patches: list[Violation] = []

    def _bind_imports(self, tree: ast.Module) -> None:
        # Bindings first, wherever they are in the file, so that use before the import line in
        # the source (a function defined above a late import) still counts.
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "keyless":
                        self.keyless_names.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keyless"):
                self.keyless_names.update(alias.asname or alias.name for alias in node.names)
        changed = True
        while changed:  # names assigned from calls of keyless names are keyless objects
            changed = False
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign | ast.AnnAssign | ast.withitem):
                    value = node.context_expr if isinstance(node, ast.withitem) else node.value
                    targets = (
                        [node.optional_vars]
                        if isinstance(node, ast.withitem)
                        else node.targets
                        if isinstance(node, ast.Assign)
                        else [node.target]
                    )
                    if value is None or _root_name(value) not in self.keyless_names:
                        continue
                    for target in targets:
                        if isinstance(target, ast.Name) and target.id not in self.keyless_names:
                            self.keyless_names.add(target.id)
                            changed = True

    def scan(self, tree: ast.Module) -> None:
        self._bind_imports(tree)
        self.visit(tree)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if _ours(alias.name) and any(_private(part) for part in alias.name.split(".")):
                self._import(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if not _ours(module) and node.level == 0:
            return
        if any(_private(part) for part in module.split(".")):
            self._import(node, module)
        for alias in node.names:
            if _private(alias.name):
                self._import(node, f"{module}.{alias.name}")

    def _import(self, node: ast.stmt, name: str) -> None:
        self.imports.append(Violation(self.path, node.lineno, name, "imports the private"))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        owner = node.value
        if _private(node.attr) and isinstance(owner, ast.Name) and owner.id in self.keyless_names:
            name = f"{owner.id}.{node.attr}"
            self.attributes.append(Violation(self.path, node.lineno, name, "touches the private"))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "setattr"
            and _root_name(func.value) in {"monkeypatch", "mp"}
        ):
            self._patch(node)
        self.generic_visit(node)

    def _patch(self, node: ast.Call) -> None:
        if len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
            target = ast.unparse(node.args[0])
            name = str(node.args[1].value)
        elif node.args and isinstance(node.args[0], ast.Constant):
            target, _, name = str(node.args[0].value).rpartition(".")
        else:
            target, name = ast.unparse(node.args[0]) if node.args else "?", "?"
        if name.isupper():
            return  # a limit lowered for the test: configuration, not a double
        self.patches.append(Violation(self.path, node.lineno, f"{target}.{name}", "swaps"))


def _scan() -> list[_Scan]:
    scans = []
    for file in _test_files():
        scan = _Scan(file.relative_to(TESTS).as_posix())
        scan.scan(ast.parse(file.read_text(), filename=str(file)))
        scans.append(scan)
    return scans


def _unexpected(found: list[Violation], allowed: dict[tuple[str, str], str]) -> list[str]:
    return [str(v) for v in found if (v.path, v.name) not in allowed]


def _stale(found: list[Violation], allowed: dict[tuple[str, str], str]) -> list[tuple[str, str]]:
    seen = {(v.path, v.name) for v in found}
    return sorted(key for key in allowed if key not in seen)


SCANS = _scan()
IMPORTS = [v for scan in SCANS for v in scan.imports]
ATTRIBUTES = [v for scan in SCANS for v in scan.attributes]
PATCHES = [v for scan in SCANS for v in scan.patches]


def test_no_test_imports_a_private_name() -> None:
    assert _unexpected(IMPORTS, ALLOWED_PRIVATE_IMPORTS) == []


def test_no_test_touches_a_private_attribute_of_keyless() -> None:
    assert _unexpected(ATTRIBUTES, ALLOWED_PRIVATE_ATTRIBUTES) == []


def test_no_test_swaps_a_module_global_or_method() -> None:
    assert _unexpected(PATCHES, ALLOWED_MONKEYPATCHES) == []


def test_every_allowance_is_still_needed() -> None:
    assert _stale(IMPORTS, ALLOWED_PRIVATE_IMPORTS) == []
    assert _stale(ATTRIBUTES, ALLOWED_PRIVATE_ATTRIBUTES) == []
    assert _stale(PATCHES, ALLOWED_MONKEYPATCHES) == []
