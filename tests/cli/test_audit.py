"""``keyless audit`` end to end in-process: formats, --output, --fail-on, --baseline, stdin."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

from tests.cli.helpers import run_cli
from tests.unit.audit.dumps import KINDS, authorization_details

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "audit-schema.json").read_text())


def _dump(tmp_path: Path, per_kind: int = 5) -> Path:
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(authorization_details(per_kind=per_kind).document))
    return path


def test_json_output_validates_against_the_documented_schema(tmp_path: Path) -> None:
    result = run_cli(["audit", str(_dump(tmp_path)), "--format", "json"])
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    jsonschema.validate(report, SCHEMA)
    assert len(report["roles"]) == 5 * len(KINDS)


def test_fail_on_sets_the_exit_code(tmp_path: Path) -> None:
    dump = _dump(tmp_path)
    assert run_cli(["audit", str(dump), "--fail-on", "critical"]).code == 1
    safe = tmp_path / "safe.json"
    document = authorization_details(per_kind=1).document
    document["RoleDetailList"] = [
        r for r in document["RoleDetailList"] if r["RoleName"].startswith("bk-pipe")
    ]
    safe.write_text(json.dumps(document))
    assert run_cli(["audit", str(safe), "--fail-on", "info"]).code == 0
    assert run_cli(["audit", str(dump)]).code == 0  # no --fail-on: a report, not a verdict


def test_baseline_reports_only_new_findings_and_output_is_written_atomically(
    tmp_path: Path,
) -> None:
    dump = _dump(tmp_path)
    baseline = tmp_path / "baseline.json"
    first = run_cli(["audit", str(dump), "--format", "json", "--output", str(baseline)])
    assert first.code == 0
    assert first.stdout == ""
    assert stat.S_IMODE(baseline.stat().st_mode) == 0o644
    assert list(tmp_path.glob(".baseline.json.*")) == []
    again = run_cli(
        ["audit", str(dump), "--baseline", str(baseline), "--fail-on", "info", "--format", "json"]
    )
    assert again.code == 0
    assert json.loads(again.stdout)["roles"] == []
    document = json.loads(dump.read_text())
    role = dict(document["RoleDetailList"][3 * 5])  # a wide-open GitHub role
    role["RoleName"], role["Arn"] = "new-role", role["Arn"].rsplit("/", 1)[0] + "/new-role"
    document["RoleDetailList"].append(role)
    dump.write_text(json.dumps(document))
    fresh = run_cli(["audit", str(dump), "--baseline", str(baseline), "--fail-on", "critical"])
    assert fresh.code == 1
    assert "new-role" in fresh.stdout
    assert "gh-open-000" not in fresh.stdout


def test_stdin_and_usage_errors(tmp_path: Path) -> None:
    text = json.dumps(authorization_details(per_kind=1).document)
    result = run_cli(["audit", "-", "--format", "sarif"], stdin=text)
    assert result.code == 0
    assert len(json.loads(result.stdout)["runs"][0]["results"]) == len(KINDS)
    assert run_cli(["audit", "--org"]).code == 2
    missing = run_cli(["audit", str(tmp_path / "nope.json")])
    assert missing.code == 2
    assert "does not exist" in missing.stderr


def test_ca_bundle_needs_check_thumbprints_and_a_file(tmp_path: Path) -> None:
    dump = _dump(tmp_path, per_kind=1)
    alone = run_cli(["audit", str(dump), "--ca-bundle", str(dump)])
    assert alone.code == 2
    assert "--ca-bundle applies to --check-thumbprints only" in alone.stderr
    missing = run_cli(
        ["audit", str(dump), "--check-thumbprints", "--ca-bundle", str(tmp_path / "no.pem")]
    )
    assert missing.code == 2
    assert "no.pem is not a file" in missing.stderr


def test_a_live_audit_without_credentials_says_how_to_get_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    result = run_cli(["audit"])
    assert result.code == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ")
    assert first.endswith("no AWS credentials for a live audit")
    assert "keyless exec --role-arn ARN -- keyless audit" in result.stderr
    assert "Traceback" not in result.stderr
