"""Benchmark lint on hostile input next to a typical policy: a 10,000-character `sub` value full
of `*` and `?`, a 1,000-statement policy, and a 1,000-role `aws iam list-roles` page. Timing lives
here; tests/unit/trust/test_lint_work.py bounds the work by counting.

Each case runs twice: in process (``lint()`` on the parsed policy), and as a command next to its
peer, side by side on the same trust: `keyless trust lint FILE` on the policy (or page) against
`checkov -f FILE --skip-download` (offline) on the same trust as a CloudFormation template
(AWS::IAM::Role resources) and as Terraform (``data "aws_iam_policy_document"``, where checkov's
OIDC check CKV_AWS_358 looks), with the checks checkov failed. checkov is looked up on PATH, or
given with --checkov PATH; it is not a keyless dependency (pip install checkov, in a separate
environment: it pins versions of its own). Without it, only keyless' columns are printed.

    make bench BENCH=lint        # or: .venv/bin/python -m bench.lint [--checkov PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from keyless.trust.lint import lint
from keyless.trust.role_output import read_trusts

GH = "token.actions.githubusercontent.com"
#: A peer command that takes longer than this is reported as a timeout, not waited for.
PEER_TIMEOUT_SECONDS = 600


def _trust(values: list[str], statements: int = 1) -> dict[str, Any]:
    statement = {
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{GH}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {f"{GH}:aud": "sts.amazonaws.com"},
            "StringLike": {f"{GH}:sub": values},
        },
    }
    return {"Version": "2012-10-17", "Statement": [statement] * statements}


def _roles(count: int) -> dict[str, Any]:
    """A list-roles page: every fourth role trusts GitHub (a repository-wide subject)."""
    service = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    return {
        "Roles": [
            {
                "RoleName": f"role-{i}",
                "Arn": f"arn:aws:iam::123456789012:role/role-{i}",
                "AssumeRolePolicyDocument": (
                    _trust([f"repo:acme/app{i}:*"]) if i % 4 == 0 else service
                ),
            }
            for i in range(count)
        ]
    }


CASES: dict[str, dict[str, Any]] = {
    "typical (one environment pin)": _trust(["repo:acme@1/app@2:environment:prod"]),
    "10,000 chars of *?": _trust(["repo:" + "*?" * 4997]),
    "10,000 chars a* after the repo": _trust(["repo:acme/app:" + "a*" * 4993]),
    "1,000 statements": _trust(["repo:acme/app:*"], statements=1000),
    "1,000 statements x 10 values": _trust(
        [f"repo:acme/app{i}:environment:prod" for i in range(10)], statements=1000
    ),
    "list-roles page, 1,000 roles": _roles(1000),
}


def _template(document: dict[str, Any]) -> dict[str, Any]:
    """The same trust as CloudFormation: one AWS::IAM::Role per role."""
    trusts = [t["AssumeRolePolicyDocument"] for t in document.get("Roles", [])] or [document]
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            f"Role{i}": {
                "Type": "AWS::IAM::Role",
                "Properties": {"AssumeRolePolicyDocument": trust},
            }
            for i, trust in enumerate(trusts)
        },
    }


def _terraform(document: dict[str, Any]) -> str:
    """The same trust as Terraform: a ``data "aws_iam_policy_document"`` per role, the form
    checkov's OIDC check (CKV_AWS_358) reads."""
    trusts = [t["AssumeRolePolicyDocument"] for t in document.get("Roles", [])] or [document]
    blocks = []
    for index, trust in enumerate(trusts):
        statements = []
        for statement in trust["Statement"]:
            lines = ["  statement {", f"    actions = {json.dumps([statement['Action']])}"]
            for kind, identifiers in statement["Principal"].items():
                lines += [
                    "    principals {",
                    f"      type        = {json.dumps(kind)}",
                    f"      identifiers = {json.dumps([identifiers])}",
                    "    }",
                ]
            for test, keys in statement.get("Condition", {}).items():
                for variable, values in keys.items():
                    listed = values if isinstance(values, list) else [values]
                    lines += [
                        "    condition {",
                        f"      test     = {json.dumps(test)}",
                        f"      variable = {json.dumps(variable)}",
                        f"      values   = {json.dumps(listed)}",
                        "    }",
                    ]
            statements.append("\n".join([*lines, "  }"]))
        body = "\n".join(statements)
        blocks.append(f'data "aws_iam_policy_document" "trust{index}" {{\n{body}\n}}\n')
    return "\n".join(blocks)


def _timed(argv: list[str]) -> tuple[float | None, str]:
    start = time.perf_counter()
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=PEER_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        return None, "timeout"
    return time.perf_counter() - start, done.stdout


def _checkov_failed(output: str) -> str:
    try:
        report = json.loads(output)
    except ValueError:
        return "?"
    reports = report if isinstance(report, list) else [report]
    failed = {
        check["check_id"]
        for item in reports
        for check in item.get("results", {}).get("failed_checks", [])
    }
    return ",".join(sorted(failed)) or "-"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkov", help="the checkov program (default: checkov on PATH)")
    args = parser.parse_args(argv)
    checkov = args.checkov or shutil.which("checkov")
    keyless = str(Path(sys.executable).parent / "keyless")
    print(f"{'case':32} {'in-process':>11} {'findings':>8} {'keyless cmd':>12}", end="")
    print(
        f" {'checkov CFN':>12} {'ratio':>7} {'failed':>7} {'checkov TF':>12} {'ratio':>7}  failed"
        if checkov
        else ""
    )
    with tempfile.TemporaryDirectory() as folder:
        for index, (name, document) in enumerate(CASES.items()):
            text = json.dumps(document, indent=2)
            start = time.perf_counter()
            findings = sum(len(lint(trust.policy)) for trust in read_trusts(text))
            inside = time.perf_counter() - start
            policy = Path(folder, f"case{index}.json")
            policy.write_text(text, encoding="utf-8")
            command, _ = _timed([keyless, "trust", "lint", str(policy), "--format", "json"])
            line = f"{name:32} {inside * 1000:8.1f} ms {findings:8} {command or 0:10.2f} s"
            if checkov:
                template = Path(folder, f"case{index}-template.json")
                template.write_text(json.dumps(_template(document), indent=2), encoding="utf-8")
                hcl = Path(folder, f"case{index}.tf")
                hcl.write_text(_terraform(document), encoding="utf-8")
                for path, framework in ((template, "cloudformation"), (hcl, "terraform")):
                    peer, output = _timed(
                        [
                            checkov,
                            "-f",
                            str(path),
                            "--framework",
                            framework,
                            "-o",
                            "json",
                            "--skip-download",
                        ]
                    )
                    if peer is None or command is None:
                        line += f" {'timeout':>12} {'':>7} {'':>7}"
                    else:
                        failed = _checkov_failed(output)
                        line += f" {peer:10.2f} s {peer / command:6.1f}x {failed:>7}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
