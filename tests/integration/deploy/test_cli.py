"""``keyless deploy`` through ``main(argv)`` against moto: output modes, refusals, invalidation."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from tests.cli.helpers import run_cli
from tests.integration.deploy.conftest import create_distribution

pytestmark = pytest.mark.integration


def _site(root: Path, count: int = 3) -> None:
    for i in range(count):
        (root / f"page{i}.html").write_text(f"<p>{i}</p>")


def _keys(bucket: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path: Path, bucket: str) -> None:
    _site(tmp_path)
    result = run_cli(["deploy", str(tmp_path), f"s3://{bucket}/www", "--dry-run"])
    assert result.code == 0, result.stderr
    assert "would upload (new) www/page0.html" in result.stderr
    assert "dry run: would upload 3" in result.stderr
    assert _keys(bucket) == []


def test_ci_lines_then_summary(tmp_path: Path, bucket: str) -> None:
    _site(tmp_path)
    result = run_cli(["deploy", str(tmp_path), f"s3://{bucket}"])
    assert result.code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("plan: 3 to upload")
    assert sorted(lines[1:4]) == [f"uploaded page{i}.html" for i in range(3)]
    assert lines[-1].startswith("uploaded 3 (")
    assert result.stdout == ""


def test_json_is_the_same_as_data(tmp_path: Path, bucket: str) -> None:
    _site(tmp_path)
    run_cli(["deploy", str(tmp_path), f"s3://{bucket}"])
    (tmp_path / "page1.html").write_text("<p>X</p>")
    result = run_cli(["deploy", str(tmp_path), f"s3://{bucket}", "--json"])
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["uploaded"] == 1
    assert document["unchanged"] == 2
    assert document["bytes"] == len("<p>X</p>")
    assert document["plan"]["uploads"] == [
        {"key": "page1.html", "reason": "changed", "size": len("<p>X</p>")}
    ]
    assert result.stderr == ""


def test_delete_guard_exit_code_and_message(tmp_path: Path, bucket: str) -> None:
    _site(tmp_path, 4)
    run_cli(["deploy", str(tmp_path), f"s3://{bucket}"])
    for i in range(1, 4):
        (tmp_path / f"page{i}.html").unlink()
    result = run_cli(["deploy", str(tmp_path), f"s3://{bucket}", "--delete"])
    assert result.code == 2
    assert "refusing to delete 3 of 4 objects (75%), more than --max-delete 50%" in result.stderr
    assert "--force" in result.stderr
    assert len(_keys(bucket)) == 5  # four pages and the manifest


def test_empty_folder_is_refused(tmp_path: Path, bucket: str) -> None:
    result = run_cli(["deploy", str(tmp_path), f"s3://{bucket}", "--delete"])
    assert result.code == 2
    assert "LOCAL_DIR is empty" in result.stderr


def test_invalidate_changed_paths(tmp_path: Path, bucket: str) -> None:
    distribution = create_distribution(bucket, reference=bucket)
    (tmp_path / "index.html").write_text("home")
    result = run_cli(
        ["deploy", str(tmp_path), f"s3://{bucket}", "--invalidate", distribution, "--json"]
    )
    assert result.code == 0, result.stderr
    invalidation = json.loads(result.stdout)["invalidation"]
    assert sorted(invalidation["paths"]) == ["/", "/index.html"]
    listed = boto3.client("cloudfront").list_invalidations(DistributionId=distribution)[
        "InvalidationList"
    ]
    assert [item["Id"] for item in listed["Items"]] == [invalidation["id"]]
