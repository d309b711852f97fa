"""``keyless local serve`` as a person runs it: a foreground process that prints its exports,
stops on SIGTERM leaving no process or port behind, and keeps its CA and issuer URLs across a
restart with the same --port."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyless.cli.console import Console
from keyless.cli.main import main
from keyless.http import UrllibClient

pytestmark = pytest.mark.integration

KEYLESS = str(Path(sys.executable).with_name("keyless"))
#: Seconds to wait for the stack to start or stop (a cold start on a busy machine included).
PROCESS_TIMEOUT_SECONDS = 120
PORTS = 6


def _free_ports() -> int:
    """A first port N such that N..N+5 are free on 127.0.0.1 right now, below the ephemeral
    range, where other processes' servers and connections on this machine do not land."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except OSError:  # not Linux: the IANA dynamic range
        low, high = 49_152, 65_535
    top = low if low > 10_000 + PORTS else 65_535
    bottom = 10_000 if top == low else high + 1
    for _ in range(200):
        first = random.randrange(bottom, top - PORTS)  # noqa: S311 - not for security
        with contextlib.ExitStack() as held:
            try:
                for port in range(first, first + PORTS):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return first
    raise AssertionError("no run of 6 free ports")


@contextlib.contextmanager
def serve(state: Path, port: int) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """``keyless local serve`` in a child process; yields it and its exports once it runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYLESS_"))}
    child = subprocess.Popen(  # noqa: S603 - fixed argv
        [KEYLESS, "local", "serve", "--state", str(state), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        exports: dict[str, str] = {}
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").rstrip("\n").partition("=")
                exports[name] = value
            if line.startswith("# keyless local stack running"):
                break
        else:
            _, err = child.communicate(timeout=PROCESS_TIMEOUT_SECONDS)
            raise AssertionError(f"serve exited with {child.returncode}: {err}")
        yield child, exports
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _stop(child: subprocess.Popen[str]) -> str:
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=PROCESS_TIMEOUT_SECONDS)
    assert child.returncode == 0, err
    return err


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_serve_prints_exports_stops_on_sigterm_and_keeps_its_identity(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port = _free_ports()
    with serve(state, port) as (child, exports):
        stack = json.loads((state / "stack.json").read_text())
        assert (state / "stack.json").stat().st_mode & 0o777 == 0o600
        assert exports["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
        assert exports["AWS_DEFAULT_REGION"] == "us-east-1"
        assert exports["AWS_ACCESS_KEY_ID"].startswith("AKIA")
        assert exports["AWS_SECRET_ACCESS_KEY"]
        assert exports["KEYLESS_LOCAL_CA_BUNDLE"] == str(state / "tls" / "ca.pem")
        assert exports["KEYLESS_LOCAL_GITHUB_ISSUER"] == f"https://127.0.0.1:{port + 2}"
        assert exports["KEYLESS_LOCAL_BITBUCKET_ISSUER_BASE"] == f"https://127.0.0.1:{port + 1}"
        # The issuers answer over HTTPS with the printed CA.
        client = UrllibClient(ca_bundle=Path(exports["KEYLESS_LOCAL_CA_BUNDLE"]))
        discovery = client.get(
            exports["KEYLESS_LOCAL_GITHUB_ISSUER"] + "/.well-known/openid-configuration"
        )
        assert discovery.status == 200
        # A second stack on the same state folder is refused while this one runs.
        second = subprocess.run(  # noqa: S603 - fixed argv
            [KEYLESS, "local", "serve", "--state", str(state)],
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT_SECONDS,
            check=False,
        )
        assert second.returncode == 2
        assert "already runs from" in second.stderr
        err = _stop(child)
        assert "stopped" in err
        assert exports["AWS_SECRET_ACCESS_KEY"] not in err
    assert _gone(stack["moto_pid"])
    assert not any(_listening(p) for p in range(port, port + PORTS))
    assert not (state / "stack.json").exists()

    with serve(state, port) as (child, again):
        # Same CA, same keys, same URLs: providers configured against the first run still match.
        assert again["KEYLESS_LOCAL_CA_THUMBPRINT"] == exports["KEYLESS_LOCAL_CA_THUMBPRINT"]
        for name in exports:
            if name.startswith("KEYLESS_LOCAL_") and name.endswith(("_ISSUER", "_ISSUER_BASE")):
                assert again[name] == exports[name]
        # moto's state does not persist: a new administrator key.
        assert again["AWS_ACCESS_KEY_ID"] != exports["AWS_ACCESS_KEY_ID"]
        _stop(child)


class _SignalledOnRunningLine(io.StringIO):
    """stdout on which the caller sends SIGTERM the moment the "running" line is flushed: the
    earliest a caller reading the exports can stop the stack."""

    def __init__(self) -> None:
        super().__init__()
        self.signalled = False

    def flush(self) -> None:
        super().flush()
        if "stack running" in self.getvalue() and not self.signalled:
            self.signalled = True
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_right_after_the_running_line_is_a_clean_stop(tmp_path: Path) -> None:
    state = tmp_path / "state"
    out, err = _SignalledOnRunningLine(), io.StringIO()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYLESS_"))}
    console = Console(stdout=out, stderr=err, env=env)
    previous = signal.getsignal(signal.SIGTERM)
    code = main(["local", "serve", "--state", str(state), "--port", str(_free_ports())], console)
    assert signal.getsignal(signal.SIGTERM) == previous
    assert out.signalled
    assert code == 0, err.getvalue()
    assert "keyless local: stopped" in err.getvalue()
    assert not (state / "stack.json").exists()
