"""boto3 sessions and clients are made in ``keyless.aws.clients`` only, so that every one of them
gets keyless' timeouts, retries and endpoint handling.

Checked on the syntax tree of every production module: a ``boto3.Session(...)`` or
``boto3.session.Session(...)``, ``boto3.client(...)``, any use of ``botocore.session``, a
``.client("service", ...)`` or ``.create_client(...)`` call. Exempt:

- ``keyless.local``: the embedded stack's own clients talk to moto on 127.0.0.1 with the bounded
  settings of ``keyless.local.moto_server`` (it is never imported by the production path);
- ``EnvironmentSession.client`` in ``keyless.deploy.environment``: the boto3-free session of a
  deploy that the environment decides forwards to the real session, which ``clients.session``
  makes, only when a control-plane client is asked for (and that request comes from
  ``clients.control_s3``/``control_cloudfront``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import keyless

SRC = Path(keyless.__file__).parent
FACTORY = SRC / "aws" / "clients.py"
EXEMPT_PACKAGES = (SRC / "local",)
#: (module, enclosing function) allowed to call ``.client(`` with a service given by its caller.
EXEMPT_FUNCTIONS = {(SRC / "deploy" / "environment.py", "client")}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _makes_a_client_or_session(call: ast.Call) -> bool:
    name = _dotted(call.func)
    if name in {"boto3.Session", "boto3.session.Session", "boto3.client", "boto3.resource"}:
        return True
    if name.startswith("botocore.session."):
        return True
    if not isinstance(call.func, ast.Attribute):
        return False
    if call.func.attr == "create_client":
        return True
    # A session's client(service_name, ...) takes arguments; keyless' own objects named client
    # take none (``_Control.client()``), and the factory's are called on the module itself.
    return (
        call.func.attr in {"client", "resource"}
        and _dotted(call.func.value) != "clients"
        and bool(call.args or call.keywords)
    )


def _offences(source: str, path: Path) -> list[str]:
    tree = ast.parse(source, filename=str(path))
    functions = [
        (node.lineno, node.end_lineno or node.lineno, node.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]

    def enclosing(line: int) -> str:
        inner = [f for f in functions if f[0] <= line <= f[1]]
        return min(inner, key=lambda f: f[1] - f[0])[2] if inner else ""

    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [alias.name for alias in node.names]
            if isinstance(node, ast.ImportFrom):
                modules = [f"{node.module}.{name}" for name in modules] + [node.module or ""]
            if "botocore.session" in modules:
                found.append((node.lineno, "imports botocore.session"))
        elif (
            isinstance(node, ast.Call)
            and _makes_a_client_or_session(node)
            and (path, enclosing(node.lineno)) not in EXEMPT_FUNCTIONS
        ):
            found.append((node.lineno, f"{_dotted(node.func)}(...)"))
    return [f"{path.relative_to(SRC)}:{line}: {what}" for line, what in sorted(found)]


def _production_modules() -> list[Path]:
    return [
        path
        for path in sorted(SRC.rglob("*.py"))
        if path != FACTORY and not any(path.is_relative_to(p) for p in EXEMPT_PACKAGES)
    ]


def test_sessions_and_clients_are_made_only_by_the_factory() -> None:
    offences = [
        o for path in _production_modules() for o in _offences(path.read_text("utf-8"), path)
    ]
    assert offences == []


def test_the_check_sees_each_way_of_making_one() -> None:
    source = "\n".join(
        [
            "import boto3",
            "import botocore.session",
            "def f(session, service):",
            "    boto3.Session(region_name='x')",
            "    session.client('s3', config=None)",
            "    session.client(service)",
            "    session._session.create_client('s3')",
            "    clients.client(session, 's3')",
            "    control.client()",
        ]
    )
    found = _offences(source, SRC / "sample.py")
    assert [o.split(": ", 1)[1] for o in found] == [
        "imports botocore.session",
        "boto3.Session(...)",
        "session.client(...)",
        "session.client(...)",
        "session._session.create_client(...)",
    ]
