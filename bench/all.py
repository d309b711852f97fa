"""Every benchmark in one table: start-up (``bench.startup``), deploy (``bench.deploy``) and the
local stack's exchange under load (``bench.exchange``, when it exists), each figure next to its
peer measured in the same run, as a ratio with its goal.

    make bench                                  # the table
    make bench BENCH_ARGS="--repeat 3"          # deploy steps as medians of 3 whole runs
    make bench BENCH_ARGS="--write-readme"      # also regenerate README.md's Performance section

``--write-readme`` replaces what lies between the README's bench markers with this run's table,
the machine (cores, CPU model) and the date: the README's figures are never typed by hand.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import deploy

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- bench:begin (make bench BENCH_ARGS=--write-readme) -->"
END = "<!-- bench:end -->"
#: Goals of issue 18, as ratios keyless/peer (at most).
STARTUP_GOALS = {"--version": 0.2, "--help": 0.2, "trust": 0.3, "lint": 0.3, "claims": 0.3}
RCLONE, AWS = "rclone --checksum", "aws s3 sync"


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    part: str
    what: str
    keyless: str
    peer: str
    theirs: str
    ratio: float | None
    goal: float | None

    def cells(self) -> list[str]:
        ratio = "-" if self.ratio is None else f"{self.ratio:.2f}x"
        if self.goal is None or self.ratio is None:
            goal = "" if self.goal is None else f"<= {self.goal:g}x"
        else:
            goal = f"<= {self.goal:g}x {'met' if self.ratio <= self.goal else 'MISSED'}"
        return [self.part, self.what, self.keyless, self.peer, self.theirs, ratio, goal]


def startup_rows(runs: int) -> list[Row]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.startup", "--runs", str(runs)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    times: dict[str, float] = {}
    for line in out.splitlines():
        match = re.match(r"^(.{22}) +([0-9.]+) +[0-9.]+x", line)
        if match:
            times[match.group(1).strip()] = float(match.group(2))
    reference = times.get("aws --version")
    rows = []
    for name, seconds in times.items():
        if not name.startswith("keyless") or not reference:
            continue
        goal = STARTUP_GOALS.get(name.split()[1] if name.count(" ") == 1 else name.split()[-1])
        if name.startswith("keyless trust"):
            goal = STARTUP_GOALS["trust"]
        rows.append(
            Row(
                part="start-up",
                what=f"`{name}` wall s",
                keyless=f"{seconds:.3f}",
                peer="`aws --version`",
                theirs=f"{reference:.3f}",
                ratio=seconds / reference,
                goal=goal,
            )
        )
    return rows


def deploy_rows(runs: list[deploy.Run]) -> list[Row]:
    by = {(r.step, r.tool): r for r in runs}
    rows = []
    for step in deploy.STEPS:
        mine = by.get((step, "keyless"))
        if mine is None:
            continue
        for peer in (RCLONE, AWS):
            theirs = by.get((step, peer))
            if theirs is None:
                continue
            goal_cpu = 1.0 if peer == RCLONE else (0.2 if step == "full upload" else None)
            for what, a, b, goal in (
                ("client CPU s", mine.cpu, theirs.cpu, goal_cpu),
                ("wall s", mine.wall, theirs.wall, 1.0 if peer == RCLONE else None),
            ):
                rows.append(
                    Row(
                        part=f"deploy: {step}",
                        what=what,
                        keyless=f"{a:.2f}",
                        peer=f"`{peer}`",
                        theirs=f"{b:.2f}",
                        ratio=a / b if b > 0 else None,
                        goal=goal,
                    )
                )
        if step == "full upload":
            theirs = by.get((step, RCLONE))
            rows.append(
                Row(
                    part=f"deploy: {step}",
                    what="peak MB (goal: below 100)",
                    keyless=f"{mine.peak_mb:.0f}",
                    peer=f"`{RCLONE}`" if theirs else "",
                    theirs=f"{theirs.peak_mb:.0f}" if theirs else "",
                    ratio=mine.peak_mb / theirs.peak_mb if theirs else None,
                    goal=None,
                )
            )
    return rows


def exchange_rows() -> list[Row]:
    if importlib.util.find_spec("bench.exchange") is None:
        return [
            Row(
                part="exchange under load",
                what="exchanges/s, 32 clients (bench/exchange.py not written yet)",
                keyless="-",
                peer="goal: 200/s, no 5xx",
                theirs="-",
                ratio=None,
                goal=None,
            )
        ]
    module = importlib.import_module("bench.exchange")
    found: list[Row] = module.rows()
    return found


def render(rows: Sequence[Row]) -> str:
    head = ["part", "measure", "keyless", "peer", "peer's", "keyless/peer", "goal"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    system = f"{platform.system()}, Python {platform.python_version()}"
    return f"{os.cpu_count()} cores ({model}), {system}, {today}"


def write_readme(text: str, readme: Path = README) -> None:
    content = readme.read_text(encoding="utf-8")
    if BEGIN not in content or END not in content:
        raise SystemExit(f"{readme} has no bench markers ({BEGIN} ... {END})")
    before, rest = content.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    readme.write_text(f"{before}{BEGIN}\n{text}\n{END}{after}", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    deploy.add_arguments(parser)
    parser.add_argument("--startup-runs", type=int, default=7, help="start-up runs (best kept)")
    parser.add_argument("--write-readme", action="store_true", help="regenerate README figures")
    args = parser.parse_args(argv)
    rows = startup_rows(args.startup_runs)
    caption, runs = deploy.run_bench(args)
    rows += deploy_rows(runs)
    rows += exchange_rows()
    text = (
        f"Measured by `make bench` on {machine()}. Deploy: {caption}; start-up: best of"
        f" {args.startup_runs} runs. Ratios compare tools measured side by side in one run.\n\n"
        + render(rows)
    )
    print(text)
    print("\n" + deploy.table(runs), file=sys.stderr)
    if args.write_readme:
        write_readme(text)
        print(f"wrote {README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
