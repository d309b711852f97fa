"""Benchmark lint on hostile input next to a typical policy: a 10,000-character `sub` value full
of `*` and `?`, and a 1,000-statement policy. Timing lives here; tests/unit/trust/test_lint_work.py
bounds the work by counting.

    make bench BENCH=lint        # or: .venv/bin/python -m bench.lint
"""

from __future__ import annotations

import time
from typing import Any

from keyless.trust.lint import lint
from keyless.trust.model import Policy, parse_policy

GH = "token.actions.githubusercontent.com"


def _policy(values: list[str], statements: int = 1) -> Policy:
    statement = {
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{GH}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {f"{GH}:aud": "sts.amazonaws.com"},
            "StringLike": {f"{GH}:sub": values},
        },
    }
    document: dict[str, Any] = {"Version": "2012-10-17", "Statement": [statement] * statements}
    return parse_policy(document)


CASES = {
    "typical (one environment pin)": _policy(["repo:acme@1/app@2:environment:prod"]),
    "10,000 chars of *?": _policy(["repo:" + "*?" * 4997]),
    "10,000 chars a* after the repo": _policy(["repo:acme/app:" + "a*" * 4993]),
    "1,000 statements": _policy(["repo:acme/app:*"], statements=1000),
    "1,000 statements x 10 values": _policy(
        [f"repo:acme/app{i}:environment:prod" for i in range(10)], statements=1000
    ),
}


def main() -> None:
    for name, policy in CASES.items():
        start = time.perf_counter()
        findings = lint(policy)
        elapsed = time.perf_counter() - start
        print(f"{name:34} {elapsed * 1000:9.1f} ms  {len(findings):5} findings")


if __name__ == "__main__":
    main()
