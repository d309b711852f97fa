"""Every benchmark in one table: start-up (``bench.startup``), deploy (``bench.deploy``) and the
local stack's exchange under load (``bench.exchange``), each figure next to its peer measured in
the same run, as a ratio with its goal.

    make bench                                  # the table
    make bench BENCH_ARGS="--repeat 3"          # deploy steps as medians of 3 whole runs
    make bench BENCH_ARGS="--write-readme"      # also regenerate README.md's Performance section
    make bench BENCH_ARGS="--many --write-readme"   # 20,000 files: the deploy steps alone

``--write-readme`` replaces what lies between the README's bench markers (``bench``, or
``bench-many`` with ``--many``) with this run's table, the machine (cores, CPU model), its load
and the date: the README's figures are never typed by hand.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import deploy, exchange, startup

README = Path(__file__).resolve().parent.parent / "README.md"
#: Goals of peak memory on the full upload: with 20 MB files, and with 20,000 small ones.
PEAK_GOAL_MB, MANY_PEAK_GOAL_MB = 100.0, 120.0
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
    timings = startup.measure(runs)
    rows = []
    for timing in timings:
        if timing.peer is None:
            continue
        peer = next(t for t in timings if t.name == timing.peer)
        rows.append(
            Row(
                part="start-up",
                what=f"`{timing.name}` wall s",
                keyless=f"{timing.seconds:.3f}",
                peer=f"`{peer.name}`",
                theirs=f"{peer.seconds:.3f}",
                ratio=startup.ratio(timing, timings),
                goal=timing.goal,
            )
        )
    return rows


def deploy_rows(runs: list[deploy.Run], *, peak_goal_mb: float) -> list[Row]:
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
                    what=f"peak MB (goal: below {peak_goal_mb:.0f}:"
                    f" {'met' if mine.peak_mb < peak_goal_mb else 'MISSED'})",
                    keyless=f"{mine.peak_mb:.0f}",
                    peer=f"`{RCLONE}`" if theirs else "",
                    theirs=f"{theirs.peak_mb:.0f}" if theirs else "",
                    ratio=mine.peak_mb / theirs.peak_mb if theirs else None,
                    goal=None,
                )
            )
    return rows


def exchange_rows() -> list[Row]:
    result = exchange.run()
    done = max(result.ok, 1)
    return [
        Row(
            part="exchange under load",
            what=f"exchanges/s, {result.clients} clients, {result.seconds:.0f} s (goal: at least"
            f" {exchange.GOAL_PER_SECOND:.0f}/s, no 5xx)",
            keyless=f"{result.per_second:.0f}",
            peer="",
            theirs="",
            ratio=None,
            goal=None,
        ),
        Row(
            part="exchange under load",
            what="answers 5xx / no answer / 4xx; latency p50 / p99 ms",
            keyless=f"{result.server_errors} / {result.failures} / {result.client_errors};"
            f" {result.p50_ms:.0f} / {result.p99_ms:.0f}",
            peer="",
            theirs="",
            ratio=None,
            goal=None,
        ),
        Row(
            part="exchange under load",
            what="CPU ms per exchange: gateway process / moto",
            keyless=f"{1000 * result.gateway_cpu / done:.1f} / {1000 * result.moto_cpu / done:.1f}",
            peer="",
            theirs="",
            ratio=None,
            goal=None,
        ),
    ]


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


def load() -> str:
    """The 1-, 5- and 15-minute load averages: how shared the machine was."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def write_readme(text: str, readme: Path = README, *, block: str = "bench") -> None:
    """Replace what lies between ``<!-- BLOCK:begin ... -->`` and ``<!-- BLOCK:end -->``."""
    content = readme.read_text(encoding="utf-8")
    begin, end = f"<!-- {block}:begin", f"<!-- {block}:end -->"
    if begin not in content or end not in content:
        raise SystemExit(f"{readme} has no bench markers ({begin} ... {end})")
    before, rest = content.split(begin, 1)
    marker, rest = rest.split("-->", 1)
    _, after = rest.split(end, 1)
    readme.write_text(f"{before}{begin}{marker}-->\n{text}\n{end}{after}", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    deploy.add_arguments(parser)
    parser.add_argument("--startup-runs", type=int, default=7, help="start-up runs (best kept)")
    parser.add_argument("--write-readme", action="store_true", help="regenerate README figures")
    args = parser.parse_args(argv)
    if args.write_readme:
        # A README table without a peer would drop its ratios and goals without saying so;
        # refused before minutes of measuring, not after.
        for tool, fix in deploy.missing_peers(deploy.requested_tools(args)).items():
            raise SystemExit(f"refusing to write the README without {tool}: {fix}")
    # Start-up and the exchange do not depend on the number of files: --many is deploy alone.
    rows = [] if args.many else startup_rows(args.startup_runs)
    caption, runs = deploy.run_bench(args)
    rows += deploy_rows(runs, peak_goal_mb=MANY_PEAK_GOAL_MB if args.many else PEAK_GOAL_MB)
    if not args.many:
        rows += exchange_rows()
    command = "make bench" + (' BENCH_ARGS="--many"' if args.many else "")
    startup_note = "" if args.many else f"; start-up: best of {args.startup_runs} runs"
    text = (
        f"Measured by `{command}` on {machine()}, load average {load()}. Deploy: {caption}"
        f"{startup_note}. Ratios compare tools measured side by side in one run.\n\n" + render(rows)
    )
    print(text)
    print("\n" + deploy.table(runs), file=sys.stderr)
    if args.write_readme:
        write_readme(text, block="bench-many" if args.many else "bench")
        print(f"wrote {README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
