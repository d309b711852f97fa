"""The environment of a command that ``keyless local run`` starts: the CI job's variables, AWS
pointed at the local stack with a config of its own, the local CA, and CI helper stand-ins.
"""

from __future__ import annotations

import os
import shlex
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from keyless.ci import gitlab
from keyless.fsutil import write_secret_file
from keyless.local.names import CA_VARIABLE
from keyless.local.pki import write_atomic

__all__ = ["CA_VARIABLE", "JobProcess", "job_process_environment"]


#: Variables of any CI (the job gets exactly its own CI's) and of the person's AWS and keyless
#: setup (an access key in the environment would beat web identity, a profile could point
#: anywhere, a token file would be read instead of the CI's token).
_DROPPED_PREFIXES: Final = (
    "GITHUB_",
    "ACTIONS_",
    "RUNNER_",
    "BITBUCKET_",
    "CI_",
    "GITLAB_",
    "CIRCLE",
    "BUILDKITE",
    "AWS_",
    "KEYLESS_",
)
_DROPPED_NAMES: Final = frozenset(
    {"CI", "GITLAB_CI", "CIRCLECI", "BUILDKITE", "GITHUB_ACTIONS", "TF_BUILD"}
    | set(gitlab.DEFAULT_TOKEN_VARIABLES)
    | set(gitlab.DEPRECATED_VARIABLES)
)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobProcess:
    """Where the job's AWS config, CA bundle and helper programs go: a private folder."""

    workdir: Path
    endpoint_url: str
    region: str
    #: The local CA (PEM).
    ca_bundle: Path
    #: The state folder of the stack, so ``keyless local`` inside the job finds it.
    state_dir: Path | None = None
    #: Put a ``buildkite-agent`` stand-in first on PATH.
    buildkite_agent: bool = False
    #: The stack's ``KEYLESS_LOCAL_<CI>_ISSUER(_BASE)`` variables, so keyless inside the job
    #: recognises the local issuers as their CIs' (``keyless.ci.local_issuers``).
    issuer_variables: tuple[tuple[str, str], ...] = ()


def job_process_environment(
    base: Mapping[str, str], job: Mapping[str, str], process: JobProcess
) -> dict[str, str]:
    """``base`` without CI, AWS and keyless settings, plus ``job``'s variables, plus AWS and
    TLS settings for the local stack. No AWS key is in it: the job must earn one with its token.
    """
    env = {
        name: value
        for name, value in base.items()
        if not name.startswith(_DROPPED_PREFIXES) and name not in _DROPPED_NAMES
    }
    env.update(job)
    aws = process.workdir / "aws"
    aws.mkdir(mode=0o700, exist_ok=True)
    config = aws / "config"
    # The region only: no profile, no keys, no endpoint of the person's own setup.
    write_atomic(config, f"[default]\nregion = {process.region}\n".encode(), mode=0o600)
    credentials = aws / "credentials"
    write_atomic(credentials, b"", mode=0o600)
    env.update(
        AWS_ENDPOINT_URL=process.endpoint_url,
        AWS_DEFAULT_REGION=process.region,
        AWS_REGION=process.region,
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
    )
    # Python (urllib, hence keyless' GitHub token request), OpenSSL and curl read SSL_CERT_FILE;
    # the system's CAs stay in it so the job can still reach the internet. AWS_CA_BUNDLE is not
    # set: the AWS endpoint is plain HTTP on loopback, and some clients fail with it (rclone).
    bundle = process.workdir / "ca-bundle.pem"
    write_atomic(bundle, _trusted(base) + process.ca_bundle.read_bytes(), mode=0o644)
    env["SSL_CERT_FILE"] = str(bundle)
    env["NODE_EXTRA_CA_CERTS"] = str(process.ca_bundle)
    env[CA_VARIABLE] = str(process.ca_bundle)
    if process.state_dir is not None:
        env["KEYLESS_LOCAL_STATE"] = str(process.state_dir)
    env.update(process.issuer_variables)
    if process.buildkite_agent:
        bin_dir = process.workdir / "bin"
        bin_dir.mkdir(mode=0o700, exist_ok=True)
        agent = bin_dir / "buildkite-agent"
        python = shlex.quote(sys.executable)
        write_secret_file(
            agent, f'#!/bin/sh\nexec {python} -m keyless.local.buildkite_agent "$@"\n'
        )
        agent.chmod(0o700)
        env["PATH"] = os.pathsep.join(p for p in (str(bin_dir), env.get("PATH")) if p)
    return env


def _trusted(base: Mapping[str, str]) -> bytes:
    """The CAs the job would trust without the local stack: its SSL_CERT_FILE, else the system's."""
    paths = ssl.get_default_verify_paths()
    for candidate in (base.get("SSL_CERT_FILE"), paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            data = Path(candidate).read_bytes()
            return data if data.endswith(b"\n") else data + b"\n"
    return b""
