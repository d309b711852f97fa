"""Every boto3 client keyless builds has explicit timeouts and bounded retries: a ``config=``
whose Config sets connect/read timeouts and attempts, never botocore's defaults (60 s reads)."""

from __future__ import annotations

import ast
from pathlib import Path

import keyless
from keyless.aws.clients import CLIENT_CONFIG
from keyless.limits import AWS_CONNECT_TIMEOUT_SECONDS, AWS_MAX_ATTEMPTS, AWS_READ_TIMEOUT_SECONDS

SOURCE = Path(keyless.__file__).parent
SERVICES = {"s3", "sts", "iam", "cloudfront"}


def _client_calls() -> list[tuple[str, int, bool]]:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        if "local" in path.relative_to(SOURCE).parts:
            continue  # the local stack's own clients talk to its own loopback servers
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr != "client" or not node.args:
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and first.value in SERVICES:
                has_config = any(keyword.arg == "config" for keyword in node.keywords)
                found.append((str(path.relative_to(SOURCE)), node.lineno, has_config))
    return found


def test_every_boto3_client_is_built_with_a_config() -> None:
    calls = _client_calls()
    assert calls, "the scan found no client calls: it is broken"
    assert [call for call in calls if not call[2]] == []


def test_the_shared_config_sets_timeouts_and_attempts() -> None:
    config = vars(CLIENT_CONFIG)  # botocore's stubs do not declare the options as attributes
    assert config["connect_timeout"] == AWS_CONNECT_TIMEOUT_SECONDS
    assert config["read_timeout"] == AWS_READ_TIMEOUT_SECONDS
    assert config["retries"] == {"mode": "standard", "total_max_attempts": AWS_MAX_ATTEMPTS}
