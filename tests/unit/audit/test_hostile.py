"""keyless audit on hostile input: every bound (input length, nesting, role count, endless
paging, Terraform length and nesting, trust text nesting) holds exactly at its limit and refuses
one past it with one line, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from keyless.audit import inventory, live, offline, terraform
from keyless.audit.live import live_inventory
from keyless.audit.offline import load_inputs, load_text, read_input
from keyless.audit.report import build_report
from keyless.errors import AwsError, UsageError
from keyless.jsonlimits import json_depth
from keyless.limits import JSON_MAX_DEPTH
from tests.cli.helpers import run_cli
from tests.unit.audit.dumps import ACCOUNT, GH, authorization_details, trust


def _nested(depth: int) -> Any:
    """A JSON value nesting exactly ``depth`` arrays."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def _dump_of_depth(depth: int) -> str:
    """A valid dump (one role) whose deepest value, a tag, nests ``depth`` levels in all."""
    document: dict[str, Any] = authorization_details(per_kind=1, service_roles=0).document
    document["RoleDetailList"] = document["RoleDetailList"][:1]
    document["Tags"] = _nested(depth - 1)  # the dump's own object is the first level
    text = json.dumps(document)
    assert json_depth(text) == depth
    return text


def test_input_nesting_is_read_at_the_limit_and_refused_past_it() -> None:
    report = build_report(load_text("dump.json", _dump_of_depth(JSON_MAX_DEPTH)))
    assert len(report.roles) == 1
    with pytest.raises(UsageError, match=f"more than {JSON_MAX_DEPTH} levels deep") as caught:
        load_text("dump.json", _dump_of_depth(JSON_MAX_DEPTH + 1))
    assert "\n" not in str(caught.value)


def test_a_very_deep_input_is_refused_on_the_command_line_without_a_traceback(
    tmp_path: Path,
) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    result = run_cli(["audit", str(path)])
    assert result.code == 2
    assert "deep.json" in result.stderr
    assert f"more than {JSON_MAX_DEPTH} levels deep" in result.stderr
    assert "Traceback" not in result.stderr


def test_input_length_is_read_at_the_limit_and_refused_past_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = json.dumps(authorization_details(per_kind=1, service_roles=0).document)
    monkeypatch.setattr(offline, "AUDIT_INPUT_MAX_CHARS", len(text))
    path = tmp_path / "dump.json"
    path.write_text(text)
    assert read_input(str(path), None)[1] == text
    path.write_text(text + " ")
    with pytest.raises(UsageError, match=f"longer than {len(text):,} characters"):
        read_input(str(path), None)


def test_stdin_is_bounded_like_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    text = json.dumps(authorization_details(per_kind=1, service_roles=0).document)
    monkeypatch.setattr(offline, "AUDIT_INPUT_MAX_CHARS", len(text))
    result = run_cli(["audit", "-", "--format", "json"], stdin=text)
    assert result.code == 0, result.stderr
    result = run_cli(["audit", "-"], stdin=text + "\n\n")
    assert result.code == 2
    assert "<stdin> is longer than" in result.stderr


def _dump_with_roles(count: int) -> str:
    document = authorization_details(per_kind=1, service_roles=count).document
    document["RoleDetailList"] = document["RoleDetailList"][-count:]
    assert len(document["RoleDetailList"]) == count
    return json.dumps(document)


def test_role_count_is_read_at_the_limit_and_refused_past_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inventory, "AUDIT_MAX_ROLES", 30)
    at_limit = tmp_path / "thirty.json"
    at_limit.write_text(_dump_with_roles(30))
    assert len(load_inputs([str(at_limit)]).roles) == 30
    one_more = tmp_path / "one.json"
    one_more.write_text(_dump_with_roles(1))
    with pytest.raises(UsageError, match="more than 30 roles") as caught:
        load_inputs([str(at_limit), str(one_more)])
    assert "\n" not in str(caught.value)


class _EndlessIam:
    """An IAM endpoint that pages ``list_roles`` without end: a fresh marker every time or,
    with ``same_marker``, the same one again."""

    def __init__(self, *, same_marker: bool, per_page: int) -> None:
        self.same_marker = same_marker
        self.per_page = per_page
        self.pages = 0

    def list_open_id_connect_providers(self) -> Mapping[str, Any]:
        return {"OpenIDConnectProviderList": []}

    def list_roles(self, **params: Any) -> Mapping[str, Any]:
        self.pages += 1
        marker = "again" if self.same_marker else f"m{self.pages}"
        roles = [
            {
                "RoleName": f"r{self.pages}-{n}",
                "Arn": f"arn:aws:iam::{ACCOUNT}:role/r{self.pages}-{n}",
                "AssumeRolePolicyDocument": quote(json.dumps(trust("sts.example.com", None))),
            }
            for n in range(self.per_page)
        ]
        return {"Roles": roles, "IsTruncated": True, "Marker": marker}


def test_a_live_account_paging_the_same_marker_again_is_stopped() -> None:
    iam = _EndlessIam(same_marker=True, per_page=1)
    with pytest.raises(AwsError, match="without a new Marker"):
        live_inventory(None, client=iam, sleep=lambda _: None)  # type: ignore[arg-type]
    assert iam.pages == 2


def test_a_live_account_paging_past_the_role_limit_is_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live, "AUDIT_MAX_ROLES", 30)
    iam = _EndlessIam(same_marker=False, per_page=10)
    with pytest.raises(AwsError, match="more than 30 items"):
        live_inventory(None, client=iam, sleep=lambda _: None)  # type: ignore[arg-type]
    assert iam.pages == 4  # 30 items are read; the page that brings 40 stops it


def _terraform(depth: int) -> str:
    inner = "true"
    for _ in range(depth - 2):  # the role's block and the jsonencode object are two levels
        inner = f"[{inner}]"
    return f"""
resource "aws_iam_role" "deploy" {{
  name = "deploy"
  assume_role_policy = jsonencode({{
    Version = "2012-10-17"
    Statement = [{{
      Effect = "Allow"
      Principal = {{ Federated = "arn:aws:iam::{ACCOUNT}:oidc-provider/{GH}" }}
      Action = "sts:AssumeRoleWithWebIdentity"
      Condition = {{ StringLike = {{ "{GH}:sub" = "repo:acme/site:*" }} }}
    }}]
    Junk = {inner}
  }})
}}
"""


def test_terraform_nesting_is_read_at_the_limit_and_refused_past_it() -> None:
    text = _terraform(JSON_MAX_DEPTH)
    assert json_depth(text) == JSON_MAX_DEPTH
    assert [role.role_name for role in load_text("main.tf", text).roles] == ["deploy"]
    with pytest.raises(UsageError, match=f"main.tf nests .* more than {JSON_MAX_DEPTH}"):
        load_text("main.tf", _terraform(JSON_MAX_DEPTH + 1))


def test_terraform_length_is_read_at_the_limit_and_refused_past_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = _terraform(4)
    monkeypatch.setattr(terraform, "AUDIT_HCL_MAX_CHARS", len(text))
    assert len(load_text("main.tf", text).roles) == 1
    with pytest.raises(UsageError, match=f"main.tf is {len(text) + 1} characters"):
        load_text("main.tf", text + "\n")


def test_a_trust_text_nesting_too_deep_is_a_finding_not_a_crash() -> None:
    deep = '{"Statement": ' + "[" * 10_000 + "]" * 10_000 + ', "x": ":oidc-provider/"}'
    page = {
        "Roles": [
            {
                "RoleName": "deep",
                "Arn": f"arn:aws:iam::{ACCOUNT}:role/deep",
                "AssumeRolePolicyDocument": quote(deep),
            }
        ]
    }
    report = build_report(load_text("roles.json", json.dumps(page)))
    (role,) = report.roles
    assert [f.rule for f in role.findings] == ["trust-unreadable"]


def test_a_baseline_nesting_too_deep_is_refused(tmp_path: Path) -> None:
    dump = tmp_path / "dump.json"
    dump.write_text(json.dumps(authorization_details(per_kind=1).document))
    baseline = tmp_path / "baseline.json"
    baseline.write_text('{"roles": ' + "[" * 1000 + "]" * 1000 + "}")
    result = run_cli(["audit", str(dump), "--baseline", str(baseline)])
    assert result.code == 2
    assert f"baseline {baseline.as_posix()} nests" in result.stderr
