"""Benchmark ``keyless audit`` on a generated get-account-authorization-details dump of 10,000
roles (a quarter of them trusting OIDC providers of several CIs), and checkov on the same roles
emitted as a CloudFormation template when ``checkov`` is on PATH. Wall time and peak RSS of
each child process (``resource.getrusage(RUSAGE_CHILDREN)``, measured around one child each).

    make bench BENCH=audit        # or: .venv/bin/python -m bench.audit [--roles N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
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


def measure(argv: list[str]) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit code) of one child. RUSAGE_CHILDREN's ru_maxrss is the
    largest of all children so far, so each measurement runs before any bigger child."""
    began = time.perf_counter()
    completed = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    if completed.returncode not in (0, 1):
        sys.stderr.write(completed.stderr.decode(errors="replace")[-2000:])
    return seconds, peak, completed.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roles", type=int, default=10_000)
    args = parser.parse_args()
    keyless = Path(sys.executable).with_name("keyless")
    with tempfile.TemporaryDirectory(prefix="keyless-bench-audit-") as scratch:
        folder = Path(scratch)
        dump_file = folder / "dump.json"
        dump_file.write_text(json.dumps(dump(args.roles)))
        size = dump_file.stat().st_size / 1e6
        print(f"{args.roles:,} roles ({args.roles // 4:,} OIDC), dump {size:.1f} MB")
        out = folder / "report.json"
        seconds, peak, code = measure(
            [str(keyless), "audit", str(dump_file), "--format", "json", "--output", str(out)]
        )
        verdict = "ok" if seconds < GOAL_SECONDS and peak < GOAL_MB else "OVER GOAL"
        roles = len(json.loads(out.read_text())["roles"]) if out.exists() else 0
        print(
            f"keyless audit   {seconds:6.2f} s  peak {peak:6.0f} MB  exit {code}"
            f"  {roles:,} roles reported  (goal < {GOAL_SECONDS} s, < {GOAL_MB} MB: {verdict})"
        )
        checkov = shutil.which("checkov")
        if checkov is None:
            print("checkov         checkov not installed (looked on PATH)")
            return
        cfn = folder / "template.json"
        cfn.write_text(json.dumps(template(args.roles)))
        seconds, peak, code = measure(
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
            ]  # --skip-download: no calls to Prisma Cloud
        )
        print(f"checkov         {seconds:6.2f} s  peak {peak:6.0f} MB  exit {code}")
        os.sync()


if __name__ == "__main__":
    main()
