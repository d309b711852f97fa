"""Benchmark ``keyless deploy`` against ``aws s3 sync`` and ``rclone sync --checksum``.

Each tool deploys the same generated site into its own bucket of one local S3 on 127.0.0.1 in
its own process (s3rver from npm when node is present, as it costs less per request; moto server
otherwise or with ``--server moto``), over five steps: full upload, no change, rebuild (every
file rewritten with the same bytes), 1% of the files changed, one file edited keeping its size.
Every tool runs as a child process: its CPU time (user + system, all threads) comes from
``wait4``, its peak memory from its ``VmHWM``. Objects and bytes sent are what each tool reports.

    make bench                                    # 2,000 files of 1-20 KB + 5 files of 20 MB
    make bench BENCH_ARGS="--many"                # 20,000 files of 1-20 KB
    make bench BENCH_ARGS="--server moto"         # against moto instead of s3rver
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
#: Seconds to wait for the local S3 to answer after it was started.
SERVER_START_TIMEOUT_SECONDS = 30.0
#: Seconds any one tool run may take before the bench gives up on it.
RUN_TIMEOUT_SECONDS = 1800.0
#: Requests in flight for keyless and rclone (aws s3 sync keeps its default of 10).
CONCURRENCY = 16
STEPS = ("full upload", "no change", "rebuild", "1% changed", "same-size edit")
# Fixed fake credentials for the local server only (moto runs with authentication off).
FAKE_KEY_ID = "AKIAKEYLESSBENCH0000"
FAKE_SECRET = "bench-only-not-a-secret"  # noqa: S105
#: s3rver (its last release, 3.7.1) and its dependencies, locked: installed with ``npm ci``.
S3RVER_LOCK_DIR = Path(__file__).resolve().parent / "s3rver"
#: The lock a cached install came from, kept beside it.
S3RVER_LOCK_STAMP = ".keyless-bench-lock.json"
#: Seconds npm may take to install s3rver before the bench uses moto instead.
NPM_TIMEOUT_SECONDS = 120


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    tool: str
    step: str
    wall: float
    cpu: float
    objects: int
    sent_bytes: int
    peak_mb: float
    ok: bool


# --- data ------------------------------------------------------------------------------------


def generate(root: Path, *, files: int, big: int, big_mb: int, seed: int = 7) -> None:
    rng = random.Random(seed)  # noqa: S311 (seeded on purpose: the same data every run)
    extensions = ["html", "css", "js", "png", "svg", "json", "txt", "woff2"]
    for i in range(files):
        path = root / f"d{i % 40:02}" / f"f{i:05}.{extensions[i % len(extensions)]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(1024, 20 * 1024)))
    for i in range(big):
        (root / "media").mkdir(exist_ok=True)
        (root / "media" / f"big{i}.bin").write_bytes(rng.randbytes(big_mb << 20))


def small_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.parent.name != "media")


def rebuild(root: Path) -> None:
    """What a CI build does: every file written anew, same bytes, new modification time."""
    time.sleep(1.1)  # so that every new mtime is later than the objects' LastModified
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        path.unlink()
        path.write_bytes(data)


def change_share(root: Path, share: float, seed: int = 11) -> None:
    rng = random.Random(seed)  # noqa: S311 (seeded on purpose: the same data every run)
    files = small_files(root)
    for path in rng.sample(files, max(1, int(len(files) * share))):
        path.write_bytes(rng.randbytes(rng.randint(1024, 20 * 1024)))


def same_size_edit(root: Path) -> None:
    path = small_files(root)[len(small_files(root)) // 2]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# --- the local S3 ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalS3:
    """A local S3 in its own process on 127.0.0.1, stopped by its PID."""

    name = "local S3"
    key_id = FAKE_KEY_ID
    secret = FAKE_SECRET

    def __init__(self, workdir: Path, url: str, argv: list[str], probe_path: str) -> None:
        self.url = url
        self._log = (workdir / f"{self.name}.log").open("wb")
        self._process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + probe_path, timeout=1).close()  # noqa: S310
                return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{self.name} did not start")

    def create_bucket(self, name: str, env: dict[str, str]) -> None:
        subprocess.run(
            [str(VENV_BIN / "aws"), "s3", "mb", f"s3://{name}"],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def stop(self) -> None:
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()


class MotoServer(LocalS3):
    name = "moto server"

    def __init__(self, workdir: Path) -> None:
        port = _free_port()
        argv = [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
        super().__init__(workdir, f"http://127.0.0.1:{port}", argv, "/moto-api/")


class S3rverServer(LocalS3):
    """s3rver (npm), cheaper per request than moto; needs node. No IAM, fixed keys S3RVER."""

    name = "s3rver"
    key_id = "S3RVER"
    secret = "S3RVER"  # noqa: S105 (s3rver's fixed, public key)

    def __init__(self, workdir: Path, package: Path) -> None:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        (workdir / "s3rver-data").mkdir()
        argv = [
            "node",
            # s3rver 3.7 signs continuation tokens with DES, which OpenSSL 3 hides (>1000 keys).
            "--openssl-legacy-provider",
            str(package / "node_modules" / "s3rver" / "bin" / "s3rver.js"),
            "-d",
            str(workdir / "s3rver-data"),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "--silent",
        ]
        super().__init__(workdir, url, argv, "/")


def s3rver_package() -> Path | None:
    """s3rver installed with ``npm ci`` from ``bench/s3rver/package-lock.json`` (s3rver and every
    dependency at a locked version and hash) into a cache folder, or None (no node, no npm, no
    network). A cache installed from another lock is installed again."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "keyless-bench"
    lock = S3RVER_LOCK_DIR / "package-lock.json"
    installed = cache / "node_modules" / "s3rver" / "bin" / "s3rver.js"
    stamp = cache / S3RVER_LOCK_STAMP
    if installed.exists() and stamp.is_file() and stamp.read_bytes() == lock.read_bytes():
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(S3RVER_LOCK_DIR / name, cache / name)
    try:
        subprocess.run(
            ["npm", "ci", "--prefix", str(cache), "--no-audit", "--no-fund", "--silent"],
            check=True,
            capture_output=True,
            timeout=NPM_TIMEOUT_SECONDS,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    shutil.copyfile(lock, cache / S3RVER_LOCK_STAMP)
    return cache


# --- running one tool --------------------------------------------------------------------------


def measure(
    argv: Sequence[str], env: dict[str, str], workdir: Path
) -> tuple[float, float, float, str, bool]:
    """Run ``argv``; wall seconds, CPU seconds, peak RSS in MB, its output, success.

    Peak memory is the child's own ``VmHWM``, sampled while it runs: ``ru_maxrss`` would also
    count the bench's memory, which a forked child inherits until it execs.
    """
    out = (workdir / "out.txt").open("w+b")
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = started + RUN_TIMEOUT_SECONDS
    peak_kb = 0
    while True:
        peak_kb = max(peak_kb, _vm_hwm_kb(process.pid))
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            process.kill()
        time.sleep(0.002)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    text = out.read().decode("utf-8", "replace")
    out.close()
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, peak_kb / 1024.0, text, process.returncode == 0


def _vm_hwm_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, flags=re.MULTILINE)
    return int(match.group(1)) if match else 0


def run_keyless(
    site: Path, bucket: str, env: dict[str, str], workdir: Path
) -> tuple[float, float, float, int, int, bool, str]:
    argv = [
        str(VENV_BIN / "keyless"),
        "deploy",
        str(site),
        f"s3://{bucket}",
        "--json",
        "--concurrency",
        str(CONCURRENCY),
    ]
    wall, cpu, peak, text, ok = measure(argv, env, workdir)
    objects = sent = 0
    if ok:
        document = json.loads(text[text.index("{") :])
        objects = document["uploaded"] + document["copied"]
        sent = document["bytes"]
    return wall, cpu, peak, objects, sent, ok, text


def run_aws(
    site: Path, bucket: str, env: dict[str, str], workdir: Path
) -> tuple[float, float, float, int, int, bool, str]:
    argv = [str(VENV_BIN / "aws"), "s3", "sync", str(site), f"s3://{bucket}", "--no-progress"]
    wall, cpu, peak, text, ok = measure(argv, env, workdir)
    sent_paths = re.findall(r"^upload: (.+?) to s3://", text, flags=re.MULTILINE)
    sent = sum(Path(p).stat().st_size for p in sent_paths if Path(p).exists())
    return wall, cpu, peak, len(sent_paths), sent, ok, text


def run_rclone(
    site: Path, bucket: str, env: dict[str, str], workdir: Path
) -> tuple[float, float, float, int, int, bool, str]:
    argv = [
        "rclone",
        "sync",
        str(site),
        f"bench:{bucket}",
        "--checksum",
        "--transfers",
        str(CONCURRENCY),
        "--checkers",
        str(CONCURRENCY),
        "-v",
        "--stats",
        "0",
    ]
    wall, cpu, peak, text, ok = measure(argv, env, workdir)
    names = re.findall(r"INFO  : (.+?): Copied \(", text)
    sent = sum((site / n).stat().st_size for n in names if (site / n).exists())
    return wall, cpu, peak, len(names), sent, ok, text


TOOLS: dict[
    str,
    Callable[[Path, str, dict[str, str], Path], tuple[float, float, float, int, int, bool, str]],
] = {
    "keyless": run_keyless,
    "aws s3 sync": run_aws,
    "rclone --checksum": run_rclone,
}


# --- the table ---------------------------------------------------------------------------------


def table(runs: list[Run]) -> str:
    peers = [t for t in TOOLS if t != "keyless" and any(r.tool == t for r in runs)]
    head = "| step | tool | wall s | client CPU s | objects sent | MB sent | peak MB |"
    head += "".join(f" keyless/{p} wall | keyless/{p} CPU |" for p in peers)
    lines = [head, "|" + "---|" * (7 + 2 * len(peers))]
    by = {(r.step, r.tool): r for r in runs}
    for step in STEPS:
        for tool in TOOLS:
            r = by.get((step, tool))
            if r is None:
                continue
            row = (
                f"| {step} | {tool} | {r.wall:.2f} | {r.cpu:.2f} | {r.objects} | "
                f"{r.sent_bytes / 1e6:.1f} | {r.peak_mb:.0f} |"
            )
            for peer in peers:
                other = by.get((step, peer))
                if tool == "keyless" and other is not None:
                    row += f" {_ratio(r.wall, other.wall)} | {_ratio(r.cpu, other.cpu)} |"
                else:
                    row += " | |"
            if not r.ok:
                row += " FAILED"
            lines.append(row)
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "-"


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--many", action="store_true", help="20,000 small files, no large ones")
    parser.add_argument("--files", type=int, help="number of small files (default 2,000)")
    parser.add_argument("--big", type=int, help="number of 20 MB files (default 5)")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--repeat", type=int, default=1, help="whole runs (fresh buckets); medians are shown"
    )
    parser.add_argument(
        "--server",
        choices=["auto", "moto", "s3rver"],
        default="auto",
        help="the local S3 (auto: s3rver when node and npm can install it, else moto)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    caption, runs = run_bench(parser().parse_args(argv))
    print(f"\n{caption}\n")
    print(table(runs))
    return 0


def requested_tools(args: argparse.Namespace) -> list[str]:
    """The tools named by ``--tools``, each checked against the known ones."""
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for tool in tools:
        if tool not in TOOLS:
            raise SystemExit(f"unknown tool {tool!r}; choose from {', '.join(TOOLS)}")
    return tools


def missing_peers(tools: Sequence[str]) -> dict[str, str]:
    """Each requested peer that is not installed here, with how to install it."""
    missing = {}
    if "rclone --checksum" in tools and shutil.which("rclone") is None:
        missing["rclone --checksum"] = "rclone is not installed (Debian: apt-get install -y rclone)"
    if "aws s3 sync" in tools and not (VENV_BIN / "aws").exists():
        missing["aws s3 sync"] = "the AWS CLI is not in the virtualenv (make dev)"
    return missing


def run_bench(args: argparse.Namespace) -> tuple[str, list[Run]]:
    """Every step of every tool, ``args.repeat`` times; the runs' medians, and a caption."""
    files = args.files if args.files is not None else (20_000 if args.many else 2_000)
    big = args.big if args.big is not None else (0 if args.many else 5)
    tools = requested_tools(args)
    # (bench.all refuses to write the README before this point when a peer is missing.)
    for tool, fix in missing_peers(tools).items():
        print(f"skipping {tool}: {fix}", file=sys.stderr)
        tools.remove(tool)
    compile_keyless()
    every: list[Run] = []
    name = ""
    for _ in range(max(1, args.repeat)):
        name, runs = _one_run(args, files, big, tools)
        every.extend(runs)
    caption = (
        f"{files} files of 1-20 KB + {big} x 20 MB, {name} on 127.0.0.1, {os.cpu_count()} cores,"
        f" median of {max(1, args.repeat)} run(s)"
    )
    return caption, medians(every)


def compile_keyless() -> None:
    """Byte-compile keyless' modules as installing it does: an editable install run with
    PYTHONDONTWRITEBYTECODE (as CI images often set) would otherwise compile them again in every
    run, about 0.25 s of CPU that no installed keyless pays (pip compiles what it installs)."""
    import compileall

    import keyless

    compileall.compile_dir(str(Path(keyless.__file__).parent), quiet=1)


def medians(runs: list[Run]) -> list[Run]:
    import statistics

    grouped: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        grouped.setdefault((run.step, run.tool), []).append(run)
    return [
        Run(
            tool=tool,
            step=step,
            wall=statistics.median(r.wall for r in group),
            cpu=statistics.median(r.cpu for r in group),
            objects=group[0].objects,
            sent_bytes=group[0].sent_bytes,
            peak_mb=statistics.median(r.peak_mb for r in group),
            ok=all(r.ok for r in group),
        )
        for (step, tool), group in grouped.items()
    ]


def _one_run(
    args: argparse.Namespace, files: int, big: int, tools: list[str]
) -> tuple[str, list[Run]]:
    workdir = Path(tempfile.mkdtemp(prefix="keyless-bench-"))
    server: LocalS3
    package = s3rver_package() if args.server in ("auto", "s3rver") else None
    if package is not None:
        server = S3rverServer(workdir, package)
    elif args.server == "s3rver":
        raise SystemExit("s3rver needs node and npm (apt-get install -y nodejs npm)")
    else:
        server = MotoServer(workdir)
    print(f"local S3: {server.name} at {server.url}", file=sys.stderr)
    runs: list[Run] = []
    try:
        env = _environment(server, workdir)
        sites: dict[str, Path] = {}
        print(f"generating {files} files of 1-20 KB + {big} x 20 MB ...", file=sys.stderr)
        template = workdir / "template"
        generate(template, files=files, big=big, big_mb=20)
        for i, tool in enumerate(tools):
            sites[tool] = workdir / f"site{i}"
            shutil.copytree(template, sites[tool])
            server.create_bucket(f"bench-{i}", env)
        mutations: dict[str, Callable[[Path], None]] = {
            "rebuild": rebuild,
            "1% changed": lambda root: change_share(root, 0.01),
            "same-size edit": same_size_edit,
        }
        for step in STEPS:
            for i, tool in enumerate(tools):
                if step in mutations:
                    mutations[step](sites[tool])
                wall, cpu, peak, objects, sent, ok, text = TOOLS[tool](
                    sites[tool], f"bench-{i}", env, workdir
                )
                if not ok:
                    print(f"{tool} failed at {step}:\n{text[-2000:]}", file=sys.stderr)
                runs.append(
                    Run(
                        tool=tool,
                        step=step,
                        wall=wall,
                        cpu=cpu,
                        objects=objects,
                        sent_bytes=sent,
                        peak_mb=peak,
                        ok=ok,
                    )
                )
                print(
                    f"  {step:15} {tool:18} wall {wall:6.2f} s  cpu {cpu:6.2f} s  "
                    f"sent {objects:6}  peak {peak:5.0f} MB",
                    file=sys.stderr,
                )
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return server.name, runs


def _environment(server: LocalS3, workdir: Path) -> dict[str, str]:
    endpoint = server.url
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID=server.key_id,
        AWS_SECRET_ACCESS_KEY=server.secret,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(workdir / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(workdir / "aws-credentials"),
        # rclone reads its remote from the environment, so no secret goes on a command line.
        RCLONE_CONFIG_BENCH_TYPE="s3",
        RCLONE_CONFIG_BENCH_PROVIDER="Other",
        RCLONE_CONFIG_BENCH_ENDPOINT=endpoint,
        RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=server.key_id,
        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=server.secret,
        RCLONE_CONFIG_BENCH_REGION="us-east-1",
        RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
        RCLONE_CONFIG=str(workdir / "rclone.conf"),
    )
    return env


if __name__ == "__main__":
    sys.exit(main())
