"""The layering the folder tree promises: the production path never imports the emulator."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Everything a pipeline step runs when it talks to real AWS.
PRODUCTION_MODULES = [
    "keyless.ci",
    "keyless.tokens",
    "keyless.trust",
    "keyless.aws.sts",
    "keyless.aws.provision",
    "keyless.credentials",
    "keyless.doctor",
    "keyless.deploy.apply",
    "keyless.cli.cmd_token",
    "keyless.cli.cmd_claims",
    "keyless.cli.cmd_trust",
    "keyless.cli.cmd_provision",
    "keyless.cli.cmd_assume",
    "keyless.cli.cmd_whoami",
    "keyless.cli.cmd_doctor",
    "keyless.cli.cmd_deploy",
    "keyless.cli.cmd_pipe",
]


@pytest.mark.parametrize("module", PRODUCTION_MODULES)
def test_production_module_does_not_import_the_local_stack_or_moto(module: str) -> None:
    probe = (
        f"import importlib, sys; importlib.import_module({module!r}); "
        "bad = sorted(m for m in sys.modules if m.startswith(('keyless.local', 'moto'))); "
        "print(','.join(bad))"
    )
    done = subprocess.run(  # noqa: S603 - fixed interpreter and code
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "", f"{module} imports {done.stdout.strip()}"


def test_trust_engine_does_no_io() -> None:
    probe = (
        "import importlib, sys; importlib.import_module('keyless.trust'); "
        "bad = sorted(m for m in ('boto3', 'botocore', 'urllib.request', 'socket', 'http.client') "
        "if m in sys.modules); print(','.join(bad))"
    )
    done = subprocess.run(  # noqa: S603 - fixed interpreter and code
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "", f"keyless.trust imports {done.stdout.strip()}"
