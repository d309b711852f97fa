"""The suite's secret scanner finds a registered secret on each channel, and only there."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from keyless.errors import UsageError
from tests import secret_scan
from tests.jwt_factory import make_token


def test_minted_tokens_are_registered_and_found_on_every_channel(tmp_path: Path) -> None:
    token = make_token()
    assert token in secret_scan.found_in(f"before {token} after")
    loose = tmp_path / "loose.txt"
    loose.write_text(token)
    loose.chmod(0o644)
    private = tmp_path / "private.txt"
    private.write_text(token)
    private.chmod(0o600)
    with secret_scan.scanning(tmp_path=tmp_path) as leaks:
        UsageError(f"bad token {token}")
        logging.getLogger("keyless.test").warning("token %s", token)
        subprocess.run([sys.executable, "-c", "pass", token], check=True)  # noqa: S603
        secret_scan.observe("stdout", f"{token}\n")
    loose.chmod(0o600)  # the planted file is this test's own, not a leak of the suite's
    channels = sorted(leak.split(":")[0] for leak in leaks)
    assert channels == ["argv", "exception", "file loose.txt", "log", "stdout"]
    assert all(token not in leak for leak in leaks)  # the report abbreviates


def test_a_designed_channel_is_allowed_and_only_that_one() -> None:
    token = make_token(subject="designed")
    with secret_scan.scanning(allowed=("stdout",)) as leaks:
        secret_scan.observe("stdout", token)
        secret_scan.observe("stderr", token)
    assert [leak.split(":")[0] for leak in leaks] == ["stderr"]


def test_short_values_and_unregistered_text_are_not_secrets() -> None:
    secret_scan.register("short")
    with secret_scan.scanning() as leaks:
        secret_scan.observe("stdout", "short and harmless, sts.amazonaws.com")
    assert leaks == []
