"""A deploy whose AWS configuration the environment decides alone reaches S3 without boto3: the
SDK is loaded only for what needs it (copies in place, deletes, CloudFront)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

pytestmark = pytest.mark.integration

#: Runs one deploy in a fresh interpreter; prints its exit code and whether boto3 was loaded.
_PROBE = """
import io, json, sys
from contextlib import redirect_stderr, redirect_stdout
from keyless.cli.main import main
out = io.StringIO()
with redirect_stdout(out), redirect_stderr(io.StringIO()):
    code = main(sys.argv[1:])
sys.__stdout__.write(json.dumps(
    {"code": code, "boto3": "boto3" in sys.modules, "result": json.loads(out.getvalue())}
))
"""


def _deploy(site: Path, target: str, *extra: str) -> dict[str, object]:
    done = subprocess.run(  # noqa: S603 - fixed interpreter and code
        [sys.executable, "-c", _PROBE, "deploy", str(site), target, "--json", *extra],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
    )
    found: dict[str, object] = json.loads(done.stdout)
    return found


def test_uploads_need_no_boto3_and_deletes_load_it(bucket: str, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    for name in ("index.html", "app.js", "old.css"):
        (site / name).write_text(f"<!-- {name} -->")

    first = _deploy(site, f"s3://{bucket}")
    assert (first["code"], first["boto3"]) == (0, False)
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]}
    assert {"index.html", "app.js", "old.css"} <= keys

    (site / "index.html").write_text("<!-- changed -->")
    again = _deploy(site, f"s3://{bucket}")
    assert (again["code"], again["boto3"]) == (0, False)

    (site / "old.css").unlink()
    deleting = _deploy(site, f"s3://{bucket}", "--delete")
    assert (deleting["code"], deleting["boto3"]) == (0, True)
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]}
    assert "old.css" not in keys


def test_a_config_file_sends_the_deploy_through_boto3(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>hi</h1>")
    result = _deploy(site, f"s3://{bucket}")
    assert (result["code"], result["boto3"]) == (0, True)
