"""``keyless deploy`` (the CLI's own code path) through a fault proxy in front of moto's S3.

Each case deploys an old site cleanly, then a new one (new, changed, header-only and deleted
files) with one fault class armed on one kind of request: the native client's uploads, listing
and manifest read, or botocore's copies in place and deletes. The bucket must then hold exactly
the new site, checked by content straight from moto (every key, its bytes and headers); the proxy
counts the attempts each request took. Faults that persist must fail the deploy after a known
number of attempts with one line of error and nothing deleted; a 403 must not be retried.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from keyless.deploy.manifest import MANIFEST_NAME
from keyless.limits import S3_CONTROL_MAX_ATTEMPTS, S3_MAX_ATTEMPTS
from tests import faultproxy as fp
from tests.cli.helpers import Result, run_cli

pytestmark = pytest.mark.integration

OLD = {
    "index.html": b"<p>old home</p>",
    "keep.css": b"body{}",
    "restyle.js": b"console.log(1)",
    "gone.txt": b"to be deleted",
}
NEW = {
    "index.html": b"<p>new home!</p>",
    "keep.css": b"body{}",
    "restyle.js": b"console.log(1)",
    "added/page.html": b"<p>new page</p>",
}
#: restyle.js changes headers only: a CopyObject in place (botocore), not an upload.
NEW_RULE = "restyle.js:cache-control=no-cache"
#: Transient faults are injected this many times on the chosen request, then it goes through.
TRANSIENT = 2


def _write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _stored(moto_url: str, bucket: str) -> dict[str, tuple[bytes, str, str | None]]:
    """Every object under www/ read from moto itself: bytes, Content-Type, Cache-Control."""
    s3 = boto3.client("s3", endpoint_url=moto_url)
    found: dict[str, tuple[bytes, str, str | None]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="www/"):
        for item in page.get("Contents", []):
            got: Any = s3.get_object(Bucket=bucket, Key=item["Key"])
            found[item["Key"]] = (got["Body"].read(), got["ContentType"], got.get("CacheControl"))
    return found


def _deploy(site: Path, bucket: str, *extra: str) -> Result:
    return run_cli(
        ["deploy", str(site), f"s3://{bucket}/www", "--delete", "--max-delete", "100", *extra]
    )


@pytest.fixture
def sites(tmp_path: Path, proxy: fp.FaultProxy, bucket: str) -> tuple[Path, str]:
    """The old site deployed without faults; returns the new site's folder and the bucket."""
    old, new = tmp_path / "old", tmp_path / "new"
    _write(old, OLD)
    _write(new, NEW)
    first = _deploy(old, bucket)
    assert first.code == 0, first.stderr
    proxy.clear()
    return new, bucket


def _assert_converged(moto_url: str, bucket: str) -> None:
    stored = _stored(moto_url, bucket)
    manifest = stored.pop(f"www/{MANIFEST_NAME}")
    assert manifest[1] == "application/gzip"
    assert {key: body for key, (body, _, _) in stored.items()} == {
        f"www/{rel}": data for rel, data in NEW.items()
    }
    assert stored["www/index.html"][1:] == ("text/html; charset=utf-8", None)
    assert stored["www/restyle.js"][1:] == ("text/javascript; charset=utf-8", "no-cache")
    assert stored["www/keep.css"][1:] == ("text/css; charset=utf-8", None)


def _one_line_error(result: Result) -> str:
    assert result.code == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# (name, fault, method, path pattern, query pattern)
_DATA_PUT = ("PUT", r"/www/index\.html$", None)
_LISTING = ("GET", r"^/faults-\d+$", r"list-type=2")
_MANIFEST = ("GET", rf"/www/{MANIFEST_NAME}$", None)
_COPY = ("PUT", r"/www/restyle\.js$", None)
_DELETE = ("POST", r"^/faults-\d+$", r"delete")

TRANSIENT_CASES = [
    ("upload-503-slowdown", fp.SLOW_DOWN, *_DATA_PUT),
    ("upload-500", fp.INTERNAL_ERROR, *_DATA_PUT),
    ("upload-reset", fp.RESET, *_DATA_PUT),
    ("upload-closed", fp.CLOSE, *_DATA_PUT),
    ("upload-slow", fp.delay(0.5), *_DATA_PUT),
    ("listing-truncated", fp.TRUNCATE, *_LISTING),
    ("manifest-truncated", fp.TRUNCATE, *_MANIFEST),
    ("copy-500", fp.INTERNAL_ERROR, *_COPY),
    ("copy-reset", fp.RESET, *_COPY),
    ("delete-throttling", fp.throttling(flavor="s3"), *_DELETE),
    ("delete-503-slowdown", fp.SLOW_DOWN, *_DELETE),
    ("delete-truncated", fp.TRUNCATE, *_DELETE),
]


@pytest.mark.parametrize(
    ("fault", "method", "path", "query"),
    [case[1:] for case in TRANSIENT_CASES],
    ids=[case[0] for case in TRANSIENT_CASES],
)
def test_converges_through_transient_faults(
    sites: tuple[Path, str],
    proxy: fp.FaultProxy,
    moto_url: str,
    fault: fp.Fault,
    method: str,
    path: str,
    query: str | None,
) -> None:
    new, bucket = sites
    rule = fp.Rule(fault=fault, method=method, path=path, query=query, times=TRANSIENT)
    proxy.add(rule)
    result = _deploy(new, bucket, "--rule", NEW_RULE)
    assert result.code == 0, result.stderr
    _assert_converged(moto_url, bucket)
    # Each fault cost exactly one more attempt of that request, no more (a delay costs none).
    expected = 1 if fault.kind == "delay" else TRANSIENT + 1
    hits = [s for s in proxy.log if rule.matches(s.method, s.path, s.query)]
    assert rule.injected == (1 if fault.kind == "delay" else TRANSIENT)
    assert len(hits) == expected, [(s.method, s.path, s.outcome) for s in hits]
    # And a rerun has nothing left to do.
    proxy.clear()
    again = _deploy(new, bucket, "--rule", NEW_RULE, "--json")
    assert again.code == 0, again.stderr
    assert '"uploaded": 0' in again.stdout
    assert '"deleted": 0' in again.stdout
    assert proxy.count("PUT") == 0


PERSISTENT_CASES = [
    ("upload-503", fp.SLOW_DOWN, *_DATA_PUT, S3_MAX_ATTEMPTS, "SLOW_DOWN"),
    ("upload-reset", fp.RESET, *_DATA_PUT, S3_MAX_ATTEMPTS, "AWS_IO_SOCKET_CLOSED"),
    ("listing-truncated", fp.TRUNCATE, *_LISTING, S3_MAX_ATTEMPTS, "cannot reach S3"),
    ("copy-500", fp.INTERNAL_ERROR, *_COPY, S3_CONTROL_MAX_ATTEMPTS, "InternalError"),
    # Not retryable: one attempt only.
    ("upload-403", fp.ACCESS_DENIED, *_DATA_PUT, 1, "AccessDenied"),
    ("copy-403", fp.ACCESS_DENIED, *_COPY, 1, "access denied"),
    ("delete-403", fp.ACCESS_DENIED, *_DELETE, 1, "access denied"),
]


@pytest.mark.parametrize(
    ("fault", "method", "path", "query", "attempts", "named"),
    [case[1:] for case in PERSISTENT_CASES],
    ids=[case[0] for case in PERSISTENT_CASES],
)
def test_gives_up_after_bounded_attempts(
    sites: tuple[Path, str],
    proxy: fp.FaultProxy,
    moto_url: str,
    fault: fp.Fault,
    method: str,
    path: str,
    query: str | None,
    attempts: int,
    named: str,
) -> None:
    new, bucket = sites
    # Far more faults than any bound: the deploy must stop by itself.
    rule = fp.Rule(fault=fault, method=method, path=path, query=query, times=100)
    proxy.add(rule)
    result = _deploy(new, bucket, "--rule", NEW_RULE, "--concurrency", "1")
    line = _one_line_error(result)
    assert named in line
    assert rule.matched == attempts, [(s.method, s.path, s.outcome) for s in proxy.log]
    stored = _stored(moto_url, bucket)
    if method != "POST":
        # Stopped before the deletes: nothing removed, gone.txt still there.
        assert stored["www/gone.txt"][0] == OLD["gone.txt"]
        assert proxy.count("POST") == 0
