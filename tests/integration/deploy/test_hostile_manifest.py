"""A hostile stored manifest (a gzip bomb, deep nesting) costs a re-check, never the deploy."""

from __future__ import annotations

import functools
import gzip
import zlib
from pathlib import Path

import boto3
import pytest

from keyless.cli.seams import Seams
from keyless.deploy import apply, manifest
from keyless.limits import MANIFEST_MAX_EXPANDED_BYTES
from tests.bombs import gzip_bomb
from tests.cli.helpers import run_cli
from tests.unit.deploy.test_manifest import CountingInflater

pytestmark = pytest.mark.integration

KEY = "www/" + manifest.MANIFEST_NAME


def _deep() -> bytes:
    levels = 200_000
    return gzip.compress(
        ('{"version":1,"objects":{"a":' + "[" * levels + "]" * levels + "}}").encode(), mtime=0
    )


@pytest.mark.parametrize(
    ("stored", "why"),
    [
        (lambda: gzip_bomb(2048), f"expands to more than {MANIFEST_MAX_EXPANDED_BYTES} bytes"),
        (_deep, "nested deeper than 3 levels, or unbalanced"),
    ],
    ids=["gzip-bomb-2GiB", "nested-200k"],
)
def test_deploy_succeeds_with_a_notice_and_rewrites_the_manifest(
    tmp_path: Path,
    bucket: str,
    stored: object,
    why: str,
) -> None:
    s3 = boto3.client("s3")
    (tmp_path / "index.html").write_text("home")
    assert run_cli(["deploy", str(tmp_path), f"s3://{bucket}/www"]).code == 0
    assert callable(stored)
    s3.put_object(Bucket=bucket, Key=KEY, Body=stored())
    (tmp_path / "new.html").write_text("new")
    inflaters: list[CountingInflater] = []

    def counting() -> CountingInflater:
        inflaters.append(CountingInflater())
        return inflaters[-1]

    seams = Seams(deploy=functools.partial(apply.deploy, inflater=counting))
    result = run_cli(["deploy", str(tmp_path), f"s3://{bucket}/www"], seams=seams)
    assert result.code == 0, result.stderr
    notices = [line for line in result.stderr.splitlines() if line.startswith("notice:")]
    assert notices == [
        f"notice: ignoring the manifest s3://{bucket}/{KEY} ({why}): every object is compared"
        " by content, and the manifest is written anew"
    ]
    # Memory bounded by construction: never more than the cap came out of the decompressor.
    assert inflaters[0].produced <= MANIFEST_MAX_EXPANDED_BYTES + 1
    # The re-check: index.html's content matched (its headers unknown, so set again in place).
    assert "uploaded www/new.html" in result.stderr
    assert "headers www/index.html" in result.stderr
    body = s3.get_object(Bucket=bucket, Key=KEY)["Body"].read()
    assert set(manifest.decode(body, inflater=lambda: zlib.decompressobj(31))) == {
        "index.html",
        "new.html",
    }
