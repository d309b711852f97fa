"""Benchmark the local stack's STS gateway under load: 32 clients, each on its own kept-alive
connection, send ``AssumeRoleWithWebIdentity`` with a valid token as fast as they are answered
for a fixed time; the figure is exchanges per second with no 5xx. Goal: at least 200/s.

The stack (issuer, gateway; moto in its child process) runs in this process, the clients in a
child process of their own, so they do not share the gateway's interpreter. Besides the rate it
reports latency percentiles and the CPU seconds the gateway's process and moto spent per
exchange, which says where the time goes.

    make bench BENCH=exchange        # or: .venv/bin/python -m bench.exchange [--clients N]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

CLIENTS = 32
SECONDS = 10.0
WARMUP_SECONDS = 1.0
GOAL_PER_SECOND = 200.0
#: Seconds one request may take before the client counts it as failed.
REQUEST_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    clients: int
    seconds: float
    ok: int
    client_errors: int
    server_errors: int
    failures: int
    p50_ms: float
    p99_ms: float
    gateway_cpu: float
    moto_cpu: float

    @property
    def per_second(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


# --- the client process ----------------------------------------------------------------------


def _client_main(url: str, role_arn: str, token_file: str, clients: int, seconds: float) -> None:
    parts = urlsplit(url)
    body = urlencode(
        {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": role_arn,
            "RoleSessionName": "bench",
            "WebIdentityToken": Path(token_file).read_text().strip(),
        }
    ).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    statuses: list[int] = []
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    window: list[float] = []

    def worker() -> None:
        connection = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=REQUEST_TIMEOUT_SECONDS
        )
        start.wait()
        while True:
            began = time.perf_counter()
            if began >= window[1]:
                break
            try:
                connection.request("POST", "/", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                status = -1
            ended = time.perf_counter()
            if began >= window[0] and ended <= window[1]:
                with lock:
                    statuses.append(status)
                    latencies.append(ended - began)
        connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    now = time.perf_counter()
    window.extend([now + WARMUP_SECONDS, now + WARMUP_SECONDS + seconds])
    start.wait()
    for thread in threads:
        thread.join()
    latencies.sort()
    print(
        json.dumps(
            {
                "ok": statuses.count(200),
                "client_errors": sum(1 for s in statuses if 400 <= s < 500),
                "server_errors": sum(1 for s in statuses if s >= 500),
                "failures": statuses.count(-1),
                "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
                "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
            }
        )
    )


# --- the bench ---------------------------------------------------------------------------------


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a running process (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(clients: int = CLIENTS, seconds: float = SECONDS) -> Result:
    from bench.localstack import provisioned

    with (
        tempfile.TemporaryDirectory(prefix="keyless-bench-") as scratch,
        provisioned(Path(scratch)) as setup,
    ):
        argv = [
            sys.executable,
            "-m",
            "bench.exchange",
            "--client",
            setup.stack.endpoint_url,
            setup.role_arn,
            str(setup.token_file),
            "--clients",
            str(clients),
            "--seconds",
            str(seconds),
        ]
        moto_before = _cpu_of(setup.stack.moto_pid)
        mine = resource.getrusage(resource.RUSAGE_SELF)
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        after = resource.getrusage(resource.RUSAGE_SELF)
        moto_cpu = _cpu_of(setup.stack.moto_pid) - moto_before
    gateway_cpu = (after.ru_utime + after.ru_stime) - (mine.ru_utime + mine.ru_stime)
    counts = json.loads(out)
    return Result(
        clients=clients,
        # The warm-up is excluded from the counts but its CPU is not: scale it out.
        seconds=seconds,
        gateway_cpu=gateway_cpu * seconds / (seconds + WARMUP_SECONDS),
        moto_cpu=moto_cpu * seconds / (seconds + WARMUP_SECONDS),
        **counts,
    )


def describe(result: Result) -> str:
    done = max(result.ok, 1)
    return (
        f"{result.clients} clients, {result.seconds:.0f} s: {result.per_second:.0f} exchanges/s"
        f" (goal {GOAL_PER_SECOND:.0f}/s), {result.server_errors} 5xx, {result.failures} no"
        f" answer, {result.client_errors} 4xx; latency p50 {result.p50_ms:.0f} ms, p99"
        f" {result.p99_ms:.0f} ms; CPU per exchange: gateway process"
        f" {1000 * result.gateway_cpu / done:.1f} ms, moto {1000 * result.moto_cpu / done:.1f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--client", nargs=3, metavar=("URL", "ROLE_ARN", "TOKEN_FILE"))
    args = parser.parse_args(argv)
    if args.client:
        url, role_arn, token_file = args.client
        _client_main(url, role_arn, token_file, clients=args.clients, seconds=args.seconds)
        return 0
    print(describe(run(args.clients, args.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
