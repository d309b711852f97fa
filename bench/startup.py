"""Benchmark start-up: how long the light keyless commands take to answer, next to ``aws --version``
(the locked AWS CLI in the same virtualenv) and an empty ``python -c pass``.

Each command runs as a fresh process; the best of N runs is kept (the least disturbed by other
load on the machine). Goals: ``--version`` and ``--help`` at most 0.2x ``aws --version``; ``trust``
and ``claims`` at most 0.3x. Timing lives here, never in the tests (tests/unit/test_layering.py
asserts what each command imports instead).

    make bench BENCH=startup        # or: .venv/bin/python -m bench.startup [--runs N]
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOALS = {"--version": 0.2, "--help": 0.2, "trust": 0.3, "claims": 0.3}
ISSUER = "token.actions.githubusercontent.com"
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{ISSUER}"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{ISSUER}:aud": "sts.amazonaws.com",
                    f"{ISSUER}:sub": "repo:octo/app:ref:refs/heads/main",
                }
            },
        }
    ],
}
CLAIMS = {
    "iss": f"https://{ISSUER}",
    "aud": "sts.amazonaws.com",
    "sub": "repo:octo/app:ref:refs/heads/main",
    "iat": 1_700_000_000,
    "exp": 1_700_000_300,
}


def _segment(value: dict[str, object]) -> str:
    raw = json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned_token() -> str:
    """A compact JWT with a dummy signature: ``claims`` without --verify only decodes it."""
    return f"{_segment({'alg': 'RS256', 'typ': 'JWT'})}.{_segment(CLAIMS)}.c2ln"


def best_of(argv: list[str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command (best kept)")
    options = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    keyless, aws = str(bin_dir / "keyless"), str(bin_dir / "aws")
    with tempfile.TemporaryDirectory() as scratch:
        policy, claims, token = (Path(scratch) / n for n in ("p.json", "c.json", "t.jwt"))
        policy.write_text(json.dumps(POLICY))
        claims.write_text(json.dumps(CLAIMS))
        token.write_text(unsigned_token())
        rows = [
            ("python -c pass", None, [sys.executable, "-c", "pass"]),
            ("aws --version", None, [aws, "--version"]),
            ("keyless --version", "--version", [keyless, "--version"]),
            ("keyless --help", "--help", [keyless, "--help"]),
            (
                "keyless trust check",
                "trust",
                [keyless, "trust", "check", "--policy", str(policy), "--claims", str(claims)],
            ),
            ("keyless trust lint", "trust", [keyless, "trust", "lint", str(policy)]),
            ("keyless claims", "claims", [keyless, "claims", str(token)]),
        ]
        times = {name: best_of(argv, options.runs) for name, _, argv in rows}
    reference = times["aws --version"]
    print(f"best of {options.runs} runs each; ratio against aws --version")
    print(f"{'command':22} {'seconds':>8} {'ratio':>7}  goal")
    for name, goal_key, _ in rows:
        ratio = times[name] / reference
        goal = GOALS.get(goal_key or "")
        verdict = "" if goal is None else f"<= {goal:.1f}x  {'met' if ratio <= goal else 'MISSED'}"
        print(f"{name:22} {times[name]:8.3f} {ratio:6.2f}x  {verdict}")


if __name__ == "__main__":
    main()
