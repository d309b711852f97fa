"""Benchmark ``keyless audit`` on a generated get-account-authorization-details dump of 10,000
roles (a quarter of them trusting OIDC providers of several CIs), and checkov on the same roles
emitted as a CloudFormation template when ``checkov`` is on PATH, and both at a smaller size
that checkov finishes. Wall time and peak RSS of each child process (its own rusage); checkov's
run on the full dump is capped in memory and time.

    make bench BENCH=audit        # or: .venv/bin/python -m bench.audit [--roles N] [--small N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GH = "token.actions.githubusercontent.com"
GL = "gitlab.com"
ACCOUNT = "123456789012"
SUBJECTS = (
    (GH, "StringEquals", "repo:acme/site{n}:environment:production"),
    (GH, "StringLike", "repo:acme/*:pull_request"),
    (GH, "StringLike", "repo:acme/site{n}:ref:refs/heads/*"),
    (GL, "StringLike", "project_path:acme/*:ref_type:branch:ref:main"),
)
#: The goals of the issue: under 2 s and 300 MB for 10,000 roles.
GOAL_SECONDS = 2.0
GOAL_MB = 300


def trust(n: int) -> dict[str, Any]:
    if n % 4:
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    issuer, operator, subject = SUBJECTS[(n // 4) % len(SUBJECTS)]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{issuer}:aud": "sts.amazonaws.com"},
                    operator: {f"{issuer}:sub": subject.format(n=n)},
                },
            }
        ],
    }


def permissions(n: int) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject"],
                "Resource": f"arn:aws:s3:::bucket-{n}/*",
            },
            {"Effect": "Allow", "Action": "cloudfront:CreateInvalidation", "Resource": "*"},
        ],
    }


def dump(count: int) -> dict[str, Any]:
    return {
        "RoleDetailList": [
            {
                "RoleName": f"role-{n}",
                "Arn": f"arn:aws:iam::{ACCOUNT}:role/role-{n}",
                "Path": "/",
                "AssumeRolePolicyDocument": trust(n),
                "RolePolicyList": [{"PolicyName": "deploy", "PolicyDocument": permissions(n)}],
                "AttachedManagedPolicies": [],
            }
            for n in range(count)
        ],
        "OpenIDConnectProviderList": [
            {"Arn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"} for host in (GH, GL)
        ],
    }


def template(count: int) -> dict[str, Any]:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            f"Role{n}": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": f"role-{n}",
                    "AssumeRolePolicyDocument": trust(n),
                    "Policies": [{"PolicyName": "deploy", "PolicyDocument": permissions(n)}],
                },
            }
            for n in range(count)
        },
    }


#: checkov's memory grows faster than its input (about 340 MB at 250 roles, 2.3 GB at 1,000 on
#: the machine of the figures in the README): its run on the full dump is held to this address
#: space and this time, so that it cannot take the machine, and reported as stopped when it hits
#: them.
CHECKOV_MAX_ADDRESS_BYTES = 6 << 30
CHECKOV_MAX_SECONDS = 600.0


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_mb: float
    code: int
    #: Why the run was stopped ("memory cap", "time cap"), or "" when it ended by itself.
    stopped: str = ""


def measure(
    argv: list[str], *, max_address_bytes: int | None = None, max_seconds: float | None = None
) -> Run:
    """Wall time, peak RSS and exit status of one child, from its own rusage (wait4), so one
    run's peak never shows in another's."""

    def limit() -> None:
        if max_address_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (max_address_bytes, max_address_bytes))

    began = time.perf_counter()
    child = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=limit,  # only setrlimit, before exec
        start_new_session=True,
    )
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)

    timer = threading.Timer(max_seconds, stop) if max_seconds else None
    if timer:
        timer.start()
    stderr = child.stderr.read() if child.stderr else b""
    _, status, usage = os.wait4(child.pid, 0)
    if timer:
        timer.cancel()
    seconds = time.perf_counter() - began
    child.returncode = os.waitstatus_to_exitcode(status)
    code = child.returncode
    stopped = ""
    if timed_out.is_set():
        stopped = f"time cap {max_seconds:.0f} s"
    elif max_address_bytes is not None and (
        code < 0 or b"MemoryError" in stderr or b"Cannot allocate memory" in stderr
    ):
        stopped = f"memory cap {max_address_bytes >> 30} GB"
    elif code not in (0, 1):
        sys.stderr.write(stderr.decode(errors="replace")[-2000:])
    return Run(seconds=seconds, peak_mb=usage.ru_maxrss / 1024, code=code, stopped=stopped)


def _keyless(keyless: Path, folder: Path, roles: int) -> None:
    dump_file = folder / f"dump-{roles}.json"
    dump_file.write_text(json.dumps(dump(roles)))
    size = dump_file.stat().st_size / 1e6
    out = folder / f"report-{roles}.json"
    run = measure([str(keyless), "audit", str(dump_file), "--format", "json", "--output", str(out)])
    reported = len(json.loads(out.read_text())["roles"]) if out.exists() else 0
    goal = ""
    if roles == 10_000:
        ok = run.seconds < GOAL_SECONDS and run.peak_mb < GOAL_MB
        goal = f"  (goal < {GOAL_SECONDS} s, < {GOAL_MB} MB: {'ok' if ok else 'OVER GOAL'})"
    print(
        f"keyless audit  {roles:6,} roles ({size:5.1f} MB dump)  {run.seconds:7.2f} s"
        f"  peak {run.peak_mb:6.0f} MB  exit {run.code}  {reported:,} OIDC roles reported{goal}"
    )


def _checkov(checkov: str, folder: Path, roles: int, *, capped: bool) -> None:
    cfn = folder / f"template-{roles}.json"
    cfn.write_text(json.dumps(template(roles)))
    size = cfn.stat().st_size / 1e6
    run = measure(
        # --skip-download: no calls to Prisma Cloud, so this measures the scan alone.
        [
            checkov,
            "-f",
            str(cfn),
            "--framework",
            "cloudformation",
            "--quiet",
            "--skip-download",
            "-o",
            "json",
        ],
        max_address_bytes=CHECKOV_MAX_ADDRESS_BYTES if capped else None,
        max_seconds=CHECKOV_MAX_SECONDS if capped else None,
    )
    outcome = f"STOPPED at the {run.stopped}" if run.stopped else f"exit {run.code}"
    print(
        f"checkov        {roles:6,} roles ({size:5.1f} MB template)  {run.seconds:7.2f} s"
        f"  peak {run.peak_mb:6.0f} MB  {outcome}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roles", type=int, default=10_000)
    parser.add_argument(
        "--small",
        type=int,
        default=1_000,
        help="a second, smaller size that both tools finish (checkov's memory grows quickly)",
    )
    args = parser.parse_args()
    keyless = Path(sys.executable).with_name("keyless")
    checkov = shutil.which("checkov")
    with tempfile.TemporaryDirectory(prefix="keyless-bench-audit-") as scratch:
        folder = Path(scratch)
        print("a quarter of the roles trust OIDC providers; checkov reads them as CloudFormation")
        for roles in (args.small, args.roles):
            _keyless(keyless, folder, roles)
            if checkov is None:
                print("checkov        not installed (looked on PATH; pip install checkov)")
                continue
            _checkov(checkov, folder, roles, capped=roles > args.small)


if __name__ == "__main__":
    main()
