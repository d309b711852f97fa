"""SIGKILL a real ``keyless deploy`` at seeded random points, run it again, compare by content.

What must hold whatever the point: nothing is deleted before every upload finished, the rerun
converges to the source exactly, and it sends only what the killed run had not stored (no
repeated upload, no repeated copy in place: the manifest was kept current).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest

from keyless.deploy.manifest import MANIFEST_NAME
from tests.cli.helpers import run_cli

pytestmark = pytest.mark.integration

#: Seeds of the kill points (each picks after how many observed uploads the kill comes).
SEEDS = (1, 7, 42, 2024)
NEW_FILES = 40
OLD_FILES = 4
_FLAGS = ("--delete", "--force", "--concurrency", "2")
# "PUT /bucket/key", "POST /bucket?delete" (DeleteObjects) as moto's server logs them.
_REQUEST = re.compile(r'"(PUT|POST|DELETE) /[^/ ?]+/?([^ ?]*)(\?[^ ]*)? HTTP')


def _content(i: int) -> bytes:
    return hashlib.sha256(bytes([i])).digest() * 512  # 16 kB, distinct


def _remote(bucket: str) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="www/").get("Contents", [])
    return {
        item["Key"].removeprefix("www/"): s3.get_object(Bucket=bucket, Key=item["Key"])[
            "Body"
        ].read()
        for item in listed
        if not item["Key"].endswith(MANIFEST_NAME)
    }


def _settle_server(before: set[threading.Thread]) -> None:
    """Wait for the in-process moto server to finish the requests the killed child had sent.

    A PUT can be wholly received before the SIGKILL and stored a moment after it; reading the
    bucket before that would count it as not stored, and the rerun would rightly skip it. The
    server runs each connection in a ``process_request_thread``; the ones started while the
    child ran are the child's, and each ends once the child's socket is closed.
    """
    deadline = time.monotonic() + 60
    for thread in set(threading.enumerate()) - before:
        if "process_request_thread" not in thread.name:
            continue
        while True:
            try:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
                break
            except RuntimeError:  # listed as soon as start() is called, joinable a moment later
                assert time.monotonic() < deadline, "a moto server thread never started"
                time.sleep(0.01)
        assert not thread.is_alive(), "the moto server is still serving the killed child"


def _killed_deploy(site: Path, bucket: str, after: int) -> int:
    """Run the deploy in a child and SIGKILL it once ``after`` uploads were reported."""
    before = set(threading.enumerate())
    child = subprocess.Popen(  # noqa: S603 - keyless itself, fixed arguments
        [sys.executable, "-m", "keyless", "deploy", str(site), f"s3://{bucket}/www", *_FLAGS],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=dict(os.environ),
        text=True,
    )
    assert child.stderr is not None
    seen = 0
    try:
        for line in child.stderr:
            seen += line.startswith("uploaded www/")
            if seen >= after:
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.wait(timeout=120)
        child.stderr.close()
    _settle_server(before)
    return seen


@pytest.mark.parametrize("seed", SEEDS)
def test_killed_deploy_then_rerun_converges_and_repeats_nothing(
    tmp_path: Path, bucket: str, seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    old = {f"old{i}.txt": b"old %d" % i for i in range(OLD_FILES)}
    for name, data in old.items():
        (site / name).write_bytes(data)
    assert run_cli(["deploy", str(site), f"s3://{bucket}/www"]).code == 0
    for name in old:
        (site / name).unlink()
    new = {f"new{i:02}.bin": _content(i) for i in range(NEW_FILES)}
    for name, data in new.items():
        (site / name).write_bytes(data)

    after = random.Random(seed).randint(1, NEW_FILES - 5)  # noqa: S311 - a test's kill point
    _killed_deploy(site, bucket, after)

    remote = _remote(bucket)
    stored = {name for name, data in new.items() if remote.get(name) == data}
    assert len(stored) >= after
    if set(old) - set(remote):
        # Something was deleted: then every upload had finished before it.
        assert stored == set(new), "an object was deleted before every upload finished"

    caplog.clear()  # moto runs in this process: the killed child's requests are logged too
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        again = run_cli(["deploy", str(site), f"s3://{bucket}/www", "--delete", "--force"])
    assert again.code == 0, again.stderr
    assert _remote(bucket) == new
    writes = [
        (m.group(1), m.group(2))
        for m in (_REQUEST.search(r.getMessage()) for r in caplog.records)
        if m and not (m.group(1) == "PUT" and m.group(2).endswith(MANIFEST_NAME))
    ]
    # PUT covers uploads and copies in place (a copy is a PUT with x-amz-copy-source).
    sent = sorted(key.removeprefix("www/") for method, key in writes if method == "PUT")
    assert sent == sorted(set(new) - stored), "the rerun repeated work the killed run had done"
    deletes = [key for method, key in writes if method != "PUT"]
    assert len(deletes) == (1 if set(old) & set(remote) else 0)  # one DeleteObjects at most
