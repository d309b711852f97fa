"""Benchmark start-up: how long keyless commands take to answer, next to the AWS CLI (the locked
one in the same virtualenv) doing the same kind of thing, and an empty ``python -c pass``.

The light commands (``--version``, ``--help``, ``trust check``/``lint``, ``claims``) are compared
with ``aws --version``; the exchange (``keyless assume``, ``keyless credential-process``) with
``aws sts assume-role-with-web-identity``, both against the local stack (token from a file, STS on
loopback), so the figure is the client's own cost plus one exchange. Each command runs as a fresh
process; the best of N runs is kept (the least disturbed by other load on the machine). Goals:
``--version`` and ``--help`` at most 0.2x ``aws --version``; ``trust`` and ``claims`` at most 0.3x;
``assume`` at most 0.6x the AWS CLI's web-identity call. Timing lives here, never in the tests
(tests/unit/test_layering.py asserts what each command imports instead).

keyless is byte-compiled first, as installing it does (an editable install run with
PYTHONDONTWRITEBYTECODE would otherwise compile its modules in every run).

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

AWS_VERSION = "aws --version"
AWS_WEB_IDENTITY = "aws sts assume-role-with-web-identity"
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    name: str
    seconds: float
    #: The peer it is compared with (a ``Timing.name``), and the goal as a ratio (at most).
    peer: str | None = None
    goal: float | None = None


def best_of(argv: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        best = min(best, time.perf_counter() - start)
    return best


def measure(runs: int, *, exchange: bool = True) -> list[Timing]:
    """Every command, best of ``runs``; with ``exchange``, also the local-stack commands."""
    from bench.deploy import compile_keyless

    compile_keyless()
    bin_dir = Path(sys.executable).parent
    keyless, aws = str(bin_dir / "keyless"), str(bin_dir / "aws")
    with tempfile.TemporaryDirectory() as scratch:
        policy, claims, token = (Path(scratch) / n for n in ("p.json", "c.json", "t.jwt"))
        policy.write_text(json.dumps(POLICY))
        claims.write_text(json.dumps(CLAIMS))
        token.write_text(unsigned_token())
        light = [
            ("python -c pass", None, None, [sys.executable, "-c", "pass"]),
            (AWS_VERSION, None, None, [aws, "--version"]),
            ("keyless --version", AWS_VERSION, 0.2, [keyless, "--version"]),
            ("keyless --help", AWS_VERSION, 0.2, [keyless, "--help"]),
            (
                "keyless trust check",
                AWS_VERSION,
                0.3,
                [keyless, "trust", "check", "--policy", str(policy), "--claims", str(claims)],
            ),
            ("keyless trust lint", AWS_VERSION, 0.3, [keyless, "trust", "lint", str(policy)]),
            ("keyless claims", AWS_VERSION, 0.3, [keyless, "claims", str(token)]),
        ]
        timings = [
            Timing(name=name, seconds=best_of(argv, runs), peer=peer, goal=goal)
            for name, peer, goal, argv in light
        ]
        if exchange:
            timings += _exchange_timings(Path(scratch), runs, keyless, aws)
    return timings


def _exchange_timings(scratch: Path, runs: int, keyless: str, aws: str) -> list[Timing]:
    import os

    from bench.localstack import provisioned

    with provisioned(scratch) as setup:
        env = setup.environment(dict(os.environ))
        role = ["--role-arn", setup.role_arn]
        commands = [
            (
                AWS_WEB_IDENTITY,
                None,
                None,
                [
                    aws,
                    "sts",
                    "assume-role-with-web-identity",
                    *role,
                    "--role-session-name",
                    "bench",
                    "--web-identity-token",
                    f"file://{setup.token_file}",
                ],
            ),
            ("keyless assume", AWS_WEB_IDENTITY, 0.6, [keyless, "assume", *role, "--json"]),
            (
                "keyless credential-process",
                AWS_WEB_IDENTITY,
                None,
                [keyless, "credential-process", *role],
            ),
        ]
        return [
            Timing(name=name, seconds=best_of(argv, runs, env), peer=peer, goal=goal)
            for name, peer, goal, argv in commands
        ]


def ratio(timing: Timing, timings: Sequence[Timing]) -> float | None:
    peer = next((t for t in timings if t.name == timing.peer), None)
    return timing.seconds / peer.seconds if peer is not None and peer.seconds > 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command (best kept)")
    parser.add_argument(
        "--no-exchange", action="store_true", help="only the light commands (no local stack)"
    )
    options = parser.parse_args()
    timings = measure(options.runs, exchange=not options.no_exchange)
    print(f"best of {options.runs} runs each")
    print(f"{'command':38} {'seconds':>8} {'ratio':>7}  peer, goal")
    for timing in timings:
        against = ratio(timing, timings)
        if against is None:
            print(f"{timing.name:38} {timing.seconds:8.3f}")
            continue
        verdict = ""
        if timing.goal is not None:
            verdict = f", <= {timing.goal:.1f}x {'met' if against <= timing.goal else 'MISSED'}"
        print(f"{timing.name:38} {timing.seconds:8.3f} {against:6.2f}x  {timing.peer}{verdict}")


if __name__ == "__main__":
    main()
