"""Benchmark IAM wildcard matching: the old regex (``*`` as ``.*`` for Python's backtracking
``re``) against ``keyless.trust.glob`` on the same inputs, worst cases next to a typical policy.

The old approach is run only where it finishes in reasonable time (its inputs are capped: four
stars instead of five against the 405-character subject, short runs for the greedy worst case);
the new matcher also runs the full hostile inputs. Each line prints both times, the ratio and the
new matcher's counted steps against its bound. Timing lives here, never in the tests.

    make bench BENCH=matcher        # or: .venv/bin/python -m bench.matcher
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from keyless.trust.evaluate import evaluate
from keyless.trust.glob import compile_glob
from keyless.trust.model import parse_policy
from keyless.trust.verdict import Request

GH = "token.actions.githubusercontent.com"
SUB_405 = "repo:" + "b" * 400


def old_regex(pattern: str) -> re.Pattern[str]:
    """What keyless compiled before: each ``*`` as ``.*``, each ``?`` as ``.``."""
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


def seconds(call: Callable[[], object], repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - start) / repeat


def row(name: str, pattern: str, text: str, *, old: bool, repeat: int = 1) -> None:
    glob = compile_glob(pattern)
    new_time = seconds(lambda: glob.match(text), repeat)
    _, steps = glob.match_counted(text)
    work = f"steps {steps:>10,} <= bound {glob.bound(len(text)):>12,}"
    if old:
        regex = old_regex(pattern)
        old_time = seconds(lambda: regex.fullmatch(text), repeat)
        ratio = f"{old_time / new_time:10.1f}x"
        print(f"{name:44} old {old_time:11.7f} s  new {new_time:11.7f} s  {ratio}  {work}")
    else:
        print(f"{name:44} old {'(skipped)':>13}  new {new_time:11.7f} s  {'':>11}  {work}")


def policy_of(count: int) -> dict[str, object]:
    statement = {
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{GH}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
    }
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                **statement,
                "Condition": {"StringLike": {f"{GH}:sub": f"repo:acme/app{n}:*:*a"}},
            }
            for n in range(count)
        ],
    }


def main() -> None:
    typical = "repo:acme/app:environment:prod"
    row(
        "typical: repo:acme/*:environment:prod",
        "repo:acme/*:environment:prod",
        typical,
        old=True,
        repeat=10_000,
    )
    row(
        "typical miss: repo:acme/*:ref:refs/heads/main",
        "repo:acme/*:ref:refs/heads/main",
        typical,
        old=True,
        repeat=10_000,
    )
    for stars in (2, 3, 4):
        row(f"repo:{'*' * stars}a vs 405-char sub", f"repo:{'*' * stars}a", SUB_405, old=True)
    row("repo:*****a vs 405-char sub", "repo:*****a", SUB_405, old=False)
    row("repo:+5000 stars+a vs 405-char sub", "repo:" + "*" * 5000 + "a", SUB_405, old=False)
    for length in (100, 1000):
        pattern = "*" + "a" * (length // 2) + "b"
        row(
            f"*a{{{length // 2}}}b vs a{{{length}}} (greedy worst)", pattern, "a" * length, old=True
        )
    row("*a{5000}b vs a{10000} (greedy worst)", "*" + "a" * 5000 + "b", "a" * 10_000, old=False)
    row("*a{5000}b* vs a{10000} (unanchored)", "*" + "a" * 5000 + "b*", "a" * 10_000, old=False)
    # `?` splits the segment into one-character runs, each occurrence of `a` a candidate.
    row("*(a?){2500}b* vs a{10000} (? worst)", "*" + "a?" * 2500 + "b*", "a" * 10_000, old=False)
    row("*a*a*a*a*a*a*a*a*b vs a{2000}", "*a" * 8 + "b", "a" * 2000, old=False)

    policy = parse_policy(policy_of(1000))
    claims = {"iss": f"https://{GH}", "aud": "sts.amazonaws.com", "sub": SUB_405}
    patterns = [f"repo:acme/app{n}:*:*a" for n in range(1000)]
    new_time = seconds(lambda: evaluate(policy, Request.from_claims(claims)))
    regexes = [old_regex(p) for p in patterns]
    old_match = seconds(lambda: [r.fullmatch(SUB_405) for r in regexes])
    new_match = seconds(lambda: [compile_glob(p).match(SUB_405) for p in patterns])
    print(
        f"{'1,000 statements: the 1,000 sub matches':44} old {old_match:11.7f} s  new"
        f" {new_match:11.7f} s  {old_match / new_match:10.1f}x"
    )
    print(f"{'1,000 statements: whole evaluate() (new)':44} {'':>17} new {new_time:11.7f} s")


if __name__ == "__main__":
    main()
