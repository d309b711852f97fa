"""``keyless deploy`` through ``main(argv)`` against moto: output modes, refusals, invalidation."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from keyless.cli.seams import Seams
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
        {
            "key": "page1.html",
            "reason": "changed",
            "size": len("<p>X</p>"),
            "headers": {"Content-Type": "text/html; charset=utf-8"},
        }
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


# --- hostile file names: escaped in every human line, exact in --json ---------------------------

HOSTILE = {
    "\x1b[31mred.html": "\\x1b[31mred.html",
    "two\nwould delete index.html": "two\\x0awould delete index.html",
    "cr\rover.html": "cr\\x0dover.html",
    "::add-mask::secret.html": "::add-mask::secret.html",
    "\u202eevil.html": "\\u202eevil.html",
}


def _assert_clean(text: str) -> None:
    assert not any(ch in text for ch in "\x1b\r\u202e\u2028")
    for line in text.splitlines():
        assert not line.lstrip().startswith("::"), line


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "real"])
def test_hostile_file_names_are_escaped_in_human_output(
    tmp_path: Path, bucket: str, dry_run: bool
) -> None:
    # moto cannot store a key with a line feed (S3 can): that one is planned only.
    names = {k: v for k, v in HOSTILE.items() if dry_run or "\n" not in k}
    for name in names:
        (tmp_path / name).write_text("x")
    argv = ["deploy", str(tmp_path), f"s3://{bucket}"] + (["--dry-run"] if dry_run else [])
    result = run_cli(argv)
    assert result.code == 0, result.stderr
    _assert_clean(result.stderr)
    lines = result.stderr.splitlines()
    verb = "would upload (new)" if dry_run else "uploaded"
    assert {f"{verb} {shown}" for shown in names.values()} <= set(lines)
    assert sum(line.startswith(f"{verb} ") for line in lines) == len(names) + (not dry_run)
    assert not any(line.startswith("would delete") for line in lines)
    # The same names, exact, in --json (JSON escapes them itself).
    again = run_cli([*argv, "--json"])
    keys = {u["key"] for u in json.loads(again.stdout)["plan"]["uploads"]}
    assert keys == (set(names) if dry_run else set())
    if not dry_run:
        assert set(_keys(bucket)) == {*names, ".keyless-manifest.json.gz"}


def test_hostile_name_in_an_error_is_escaped(tmp_path: Path, bucket: str) -> None:
    (tmp_path / "index.html").write_text("home")
    (tmp_path / "::warning::\x1b[2J").symlink_to("nowhere")
    result = run_cli(["deploy", str(tmp_path), f"s3://{bucket}"])
    assert result.code == 2
    _assert_clean(result.stderr)
    assert result.stderr.startswith("error: symlink '::warning::\\x1b[2J' is dangling")


# --- errors a deploy can meet: one line naming the value -----------------------------------------


def test_excluding_a_linked_folder_deploys_without_it(tmp_path: Path, bucket: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("home")
    (site / "linkdir").symlink_to(outside, target_is_directory=True)
    refused = run_cli(["deploy", str(site), f"s3://{bucket}"])
    assert refused.code == 2
    assert "--exclude the link" in refused.stderr
    result = run_cli(["deploy", str(site), f"s3://{bucket}", "--exclude", "linkdir"])
    assert result.code == 0, result.stderr
    assert _keys(bucket) == [".keyless-manifest.json.gz", "index.html"]


def test_a_file_deleted_mid_deploy_is_named_and_nothing_is_deleted(
    tmp_path: Path, bucket: str
) -> None:
    import keyless.deploy.apply as apply

    _site(tmp_path, 2)
    run_cli(["deploy", str(tmp_path), f"s3://{bucket}"])
    (tmp_path / "page1.html").unlink()
    (tmp_path / "gone.html").write_text("soon gone")
    from keyless.deploy.plan import build_plan as planner

    def plan_then_lose_a_file(*args: Any, **kwargs: Any) -> Any:
        plan = planner(*args, **kwargs)
        (tmp_path / "gone.html").unlink()  # the build's cleanup racing the deploy
        return plan

    seams = Seams(deploy=functools.partial(apply.deploy, planner=plan_then_lose_a_file))
    argv = ["deploy", str(tmp_path), f"s3://{bucket}", "--delete", "--force"]
    result = run_cli(argv, seams=seams)
    assert result.code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: file 'gone.html' vanished during the deploy (deleted after LOCAL_DIR was read);"
        " nothing was deleted from S3"
    ]
    assert "RuntimeError" not in result.stderr
    assert "page1.html" in _keys(bucket)


# --- what a dry run states, why objects are skipped, an invalidation that fails ------------------


def _headers_site(root: Path) -> list[str]:
    (root / "assets").mkdir()
    (root / "assets" / "app.js").write_text("x")
    (root / "index.html").write_text("home")
    return [
        "--rule",
        "assets/*:cache-control=public, max-age=31536000, immutable",
        "--rule",
        "index.html:cache-control=no-cache",
    ]


def test_dry_run_states_the_invalidation_and_the_headers(tmp_path: Path, bucket: str) -> None:
    rules = _headers_site(tmp_path)
    argv = ["deploy", str(tmp_path), f"s3://{bucket}/www", *rules, "--invalidate", "E2EXAMPLE123"]
    result = run_cli([*argv, "--dry-run"])
    assert result.code == 0, result.stderr
    lines = result.stderr.splitlines()
    at = lines.index("would upload (new) www/assets/app.js")
    assert lines[at + 1] == (
        "  with Content-Type: text/javascript; charset=utf-8"
        " | Cache-Control: public, max-age=31536000, immutable"
    )
    at = lines.index("would upload (new) www/index.html")
    assert lines[at + 1] == (
        "  with Content-Type: text/html; charset=utf-8 | Cache-Control: no-cache"
    )
    assert (
        "would invalidate in CloudFront distribution E2EXAMPLE123:"
        " /www/ /www/assets/app.js /www/index.html"
    ) in lines
    assert lines[-1].endswith("nothing changed; would invalidate 3 paths")
    document = json.loads(run_cli([*argv, "--dry-run", "--json"]).stdout)
    assert document["invalidation"] == {
        "distribution": "E2EXAMPLE123",
        "id": None,
        "paths": ["/www/", "/www/assets/app.js", "/www/index.html"],
    }
    uploads = {u["key"]: u["headers"] for u in document["plan"]["uploads"]}
    assert uploads["www/index.html"] == {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-cache",
    }
    assert _keys(bucket) == []


def test_the_summary_counts_the_skipped_objects_by_reason(tmp_path: Path, bucket: str) -> None:
    _site(tmp_path, 3)
    run_cli(["deploy", str(tmp_path), f"s3://{bucket}"])
    (tmp_path / "page1.html").unlink()
    (tmp_path / "page2.html").unlink()
    (tmp_path / "draft.html").write_text("wip")
    for extra in ([], ["--dry-run"]):
        result = run_cli(["deploy", str(tmp_path), f"s3://{bucket}", "--exclude", "draft*", *extra])
        assert result.code == 0, result.stderr
        lines = result.stderr.splitlines()
        assert "skipped 3" in lines[-2] or "3 skipped" in lines[-2]
        assert lines[-1] == "skipped: 2 not in LOCAL_DIR (no --delete), 1 excluded"


def test_a_missing_distribution_is_named_after_the_upload_summary(
    tmp_path: Path, bucket: str
) -> None:
    (tmp_path / "index.html").write_text("home")
    argv = ["deploy", str(tmp_path), f"s3://{bucket}", "--invalidate", "E2EXAMPLE123"]
    result = run_cli(argv)
    assert result.code == 2
    lines = result.stderr.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.startswith("uploaded 1 ("))
    assert lines[summary + 1] == (
        "error: deployed, but not invalidated:"
        " CloudFront distribution 'E2EXAMPLE123' does not exist in this account"
    )
    assert "aws cloudfront list-distributions" in result.stderr
    assert "The objects are deployed" in result.stderr
    assert "no such bucket" not in result.stderr
    assert _keys(bucket) == [".keyless-manifest.json.gz", "index.html"]
    # --json: the deploy's document, the error in its invalidation, and exit 2.
    (tmp_path / "index.html").write_text("home, again")
    again = run_cli([*argv, "--json"])
    assert again.code == 2
    document = json.loads(again.stdout)
    assert document["uploaded"] == 1
    assert document["invalidation"]["distribution"] == "E2EXAMPLE123"
    assert document["invalidation"]["id"] is None
    assert document["invalidation"]["error"]["error"] == "aws"
    assert "does not exist" in document["invalidation"]["error"]["message"]
