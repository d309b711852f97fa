"""``keyless deploy`` argument errors: one line naming the value, exit code 2, no AWS call."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from keyless.cli.cmd_deploy import _TerminalProgress
from keyless.deploy.headers import HeaderPolicy
from keyless.deploy.local_tree import LocalFile
from keyless.deploy.plan import Plan, Reason, Upload
from tests.cli.helpers import run_cli


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["site", "bucket/prefix"], "destination 'bucket/prefix' is not an S3 URL"),
        (["site", "s3://Bad_Bucket"], "bucket name 'Bad_Bucket' is not valid"),
        (["site", "s3://b-1", "--acl", "public"], "--acl 'public' is not a canned ACL"),
        (["site", "s3://b-1", "--rule", "*.js"], "rule '*.js' is not GLOB:header=value"),
        (["site", "s3://b-1", "--metadata", "novalue"], "--metadata 'novalue' is not K=V"),
        (["site", "s3://b-1", "--expires", "soon"], "expires date 'soon' is not a date"),
        (["site", "s3://b-1", "--concurrency", "0"], "--concurrency 0 is out of range"),
        (["site", "s3://b-1", "--max-delete", "150"], "--max-delete 150 is not a percentage"),
        (["site", "s3://b-1", "--paths", "/x"], "--paths needs --invalidate"),
    ],
)
def test_bad_arguments(argv: list[str], message: str) -> None:
    result = run_cli(["deploy", *argv])
    assert result.code == 2
    assert f"error: {message}" in result.stderr


def test_terminal_progress_draws_one_line() -> None:
    stream = io.StringIO()
    ticks = iter(float(i) for i in range(1, 100))
    progress = _TerminalProgress(stream, clock=lambda: next(ticks))
    file = LocalFile(key="a.html", path=Path("a.html"), size=2000)
    upload = Upload(key="a.html", file=file, reason=Reason.NEW, headers=HeaderPolicy().for_key("a"))
    progress.planned(
        Plan(
            uploads=(upload, upload),
            deletes=(),
            unchanged=(),
            skipped=(),
            local_count=2,
            remote_count=0,
        )
    )
    progress.done("upload", "a.html", 2000, True)
    progress.done("upload", "b.html", 2000, True)
    progress.close()
    text = stream.getvalue()
    assert text.startswith("plan: 2 to upload (4.0 kB)")
    assert "\r[###############               ] 1/2 files, 2.0 kB/4.0 kB" in text
    assert text.endswith("2/2 files, 4.0 kB/4.0 kB\n")


def test_missing_or_empty_local_dir_is_refused_before_any_aws_call(tmp_path: Path) -> None:
    missing = run_cli(["deploy", str(tmp_path / "dist"), "s3://site-1", "--delete"])
    assert missing.code == 2
    assert f"error: LOCAL_DIR '{tmp_path / 'dist'}' does not exist" in missing.stderr
    empty = run_cli(["deploy", str(tmp_path), "s3://site-1", "--delete"])
    assert empty.code == 2
    assert "error: LOCAL_DIR is empty: refusing to deploy nothing" in empty.stderr
