"""The layering the folder tree promises: the production path never imports the emulator, the
trust engine and the deploy planner do no I/O, and the light commands start without the AWS SDK.

Every probe runs in a fresh interpreter and compares ``sys.modules`` after the import (or the
command) with what the interpreter had loaded before it, so start-up modules do not count.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

# Everything a pipeline step runs when it talks to real AWS.
PRODUCTION_MODULES = [
    "keyless.ci",
    "keyless.tokens",
    "keyless.trust",
    "keyless.aws.sts",
    "keyless.aws.provision",
    "keyless.aws.provision_apply",
    "keyless.aws.provision_state",
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

# What doing I/O (or verifying signatures) would load; the pure engines load none of it.
IO_MODULES = (
    "socket",
    "ssl",
    "urllib.request",
    "http.client",
    "boto3",
    "botocore",
    "jwt",
    "cryptography",
    "subprocess",
)
# What only the local stack's job emulation and retries use: each costs start-up time.
EMULATION_ONLY = ("hashlib", "uuid", "random")
AWS_SDK = ("boto3", "botocore", "awscrt", "moto", *EMULATION_ONLY)
# --version and --help only build the parser: no SDK, no crypto, no YAML.
PARSER_ONLY = (*AWS_SDK, "cryptography", "yaml")


def _loaded_by(code: str, env: Mapping[str, str] | None = None) -> set[str]:
    """Top-level names and full names of the modules ``code`` added to a fresh interpreter."""
    probe = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        f"{code}\n"
        "added = set(sys.modules) - before\n"
        "sys.__stdout__.write('\\n@@' + json.dumps(sorted(added)))\n"
    )
    done = subprocess.run(  # noqa: S603 - fixed interpreter and code
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    added: list[str] = json.loads(done.stdout.rsplit("@@", 1)[1])
    return set(added) | {name.split(".")[0] for name in added}


def _forbidden(added: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names if name in added)


@pytest.mark.parametrize("module", PRODUCTION_MODULES)
def test_production_module_does_not_import_the_local_stack_or_moto(module: str) -> None:
    added = _loaded_by(f"import importlib; importlib.import_module({module!r})")
    bad = sorted(m for m in added if m.startswith(("keyless.local", "moto")))
    assert bad == [], f"{module} imports {bad}"


def test_trust_engine_does_no_io() -> None:
    added = _loaded_by(
        "import importlib, pkgutil, keyless.trust as t\n"
        "names = [m.name for m in pkgutil.walk_packages(t.__path__, 'keyless.trust.')]\n"
        "assert len(names) >= 6, names\n"
        "for name in names: importlib.import_module(name)"
    )
    assert "keyless.trust.lint" in added  # the walk really imported the engine
    assert _forbidden(added, IO_MODULES) == []


def test_deploy_plan_does_no_network_io() -> None:
    added = _loaded_by("import keyless.deploy.plan")
    assert "keyless.deploy.plan" in added
    assert _forbidden(added, ("socket", "ssl", "http.client", "boto3", "botocore")) == []


def _unsigned_token() -> str:
    def segment(value: Mapping[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"iss": "https://token.actions.githubusercontent.com", "sub": "repo:o/r:ref:x"}
    return f"{segment({'alg': 'RS256'})}.{segment(claims)}.c2ln"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("light")
    issuer = "token.actions.githubusercontent.com"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{issuer}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {f"{issuer}:sub": "repo:o/r:ref:x"}},
            }
        ],
    }
    files = {
        "policy": json.dumps(policy),
        "claims": json.dumps({"iss": f"https://{issuer}", "sub": "repo:o/r:ref:x"}),
        "token": _unsigned_token(),
        "roles": json.dumps(
            {
                "Roles": [
                    {
                        "RoleName": "r",
                        "Arn": "arn:aws:iam::1:role/r",
                        "AssumeRolePolicyDocument": policy,
                    }
                ]
            }
        ),
    }
    for name, text in files.items():
        (root / name).write_text(text)
    return {name: str(root / name) for name in files}


LIGHT_COMMANDS = {
    "version": (["--version"], PARSER_ONLY),
    "help": (["--help"], PARSER_ONLY),
    "token-help": (["token", "--help"], PARSER_ONLY),
    "trust-check": (["trust", "check", "--policy", "{policy}", "--claims", "{claims}"], AWS_SDK),
    # lint reads no token and builds nothing: neither module is loaded to lint.
    "trust-lint": (
        ["trust", "lint", "{policy}"],
        (*AWS_SDK, "keyless.tokens", "keyless.trust.build"),
    ),
    "trust-build": (["trust", "build", "--ci", "github", "--repository", "o/r"], AWS_SDK),
    "claims": (["claims", "{token}"], AWS_SDK),
    "audit-file": (["audit", "{roles}"], AWS_SDK),
    # deploy's parser lists the --ci names (keyless.ci_names) without loading the CI modules.
    "deploy-help": (["deploy", "--help"], ("boto3", "botocore", "keyless.ci", "keyless.tokens")),
}


@pytest.mark.parametrize("command", sorted(LIGHT_COMMANDS))
def test_light_command_starts_without_heavy_libraries(command: str, inputs: dict[str, str]) -> None:
    template, forbidden = LIGHT_COMMANDS[command]
    argv = [part.format(**inputs) for part in template]
    added = _loaded_by(
        "import io\n"
        "from contextlib import redirect_stderr, redirect_stdout\n"
        "from keyless.cli.main import main\n"
        "with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):\n"
        f"    code = main({argv!r})\n"
        "assert code in (0, 1), code  # a verdict, not an error"
    )
    assert "keyless.cli.main" in added
    assert _forbidden(added, forbidden) == [], f"keyless {' '.join(template)}"


def test_the_probe_sees_what_a_command_loads(inputs: dict[str, str]) -> None:
    # The assertions above can fail: importing the AWS layer shows up in the probe.
    assert "botocore" in _loaded_by("import keyless.aws.clients")
    assert Path(inputs["token"]).read_text().count(".") == 2


def test_the_exchange_module_loads_no_aws_sdk() -> None:
    added = _loaded_by("import keyless.aws.sts")
    assert "keyless.aws.sts_query" in added
    assert _forbidden(added, ("boto3", "botocore", "awscrt", "moto")) == []


@pytest.fixture(scope="module")
def local_exchange(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, str]]]:
    """A role on the local stack that admits one token, and the environment of a job with it."""
    from keyless.local.stack import STS_AUDIENCE, LocalStack

    root = tmp_path_factory.mktemp("exchange")
    with LocalStack() as stack:
        provider = stack.register_provider()
        prefix = stack.issuers[0].removeprefix("https://")
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {f"{prefix}:sub": "repo:o/r:ref:x"}},
                }
            ],
        }
        role = stack.iam().create_role(
            RoleName="layering", AssumeRolePolicyDocument=json.dumps(trust)
        )
        token = root / "token"
        token.write_text(stack.mint({"sub": "repo:o/r:ref:x", "aud": STS_AUDIENCE}))
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("AWS_", "KEYLESS_", "GITHUB_", "GITLAB_", "BITBUCKET_", "CI"))
        }
        env.update(stack.environment())
        env["KEYLESS_TOKEN_FILE"] = str(token)
        env["AWS_CONFIG_FILE"] = str(root / "absent-config")
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(root / "absent-credentials")
        yield role["Role"]["Arn"], env


def test_assume_on_the_local_stack_loads_no_aws_sdk(
    local_exchange: tuple[str, dict[str, str]],
) -> None:
    # The exchange's three STS calls go through the Query client: no boto3, no botocore.
    role_arn, env = local_exchange
    added = _loaded_by(
        "import io\n"
        "from contextlib import redirect_stderr, redirect_stdout\n"
        "from keyless.cli.main import main\n"
        "out, err = io.StringIO(), io.StringIO()\n"
        "with redirect_stdout(out), redirect_stderr(err):\n"
        f"    code = main(['assume', '--role-arn', {role_arn!r}, '--json'])\n"
        "assert code == 0, err.getvalue()\n"
        f"assert {role_arn!r} in out.getvalue(), out.getvalue()",
        env,
    )
    assert "keyless.aws.sts_query" in added
    assert _forbidden(added, ("boto3", "botocore", "awscrt", "moto")) == []


@pytest.mark.parametrize(
    ("argv", "modules"),
    [
        (["--help"], set()),
        (["claims", "--help"], {"keyless.cli.cmd_claims"}),
        (["trust", "lint", "--help"], {"keyless.cli.cmd_trust"}),
    ],
)
def test_a_command_imports_only_its_own_command_module(argv: list[str], modules: set[str]) -> None:
    # The top-level parser comes from keyless.cli.main.COMMANDS: no other command module loads.
    added = _loaded_by(
        "import io\n"
        "from contextlib import redirect_stdout\n"
        "from keyless.cli.main import main\n"
        "with redirect_stdout(io.StringIO()):\n"
        f"    assert main({argv!r}) == 0\n"
    )
    assert {name for name in added if name.startswith("keyless.cli.cmd_")} == modules
