"""``keyless trust lint|check`` and ``doctor --policy`` on hostile inputs from the adversarial
review: wildcard runs that made the regex matcher backtrack for minutes, and documents nested
100,000 deep. Each finishes normally (a hang guard, no timing) with its usual exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keyless import limits
from keyless.limits import JSON_MAX_DEPTH
from keyless.trust.work import counted
from tests.cli.helpers import Result, run_cli
from tests.hang_guard import within_guard
from tests.trust_policies import github_trust

GH = "token.actions.githubusercontent.com"
CLAIMS = {"iss": f"https://{GH}", "aud": "sts.amazonaws.com", "sub": "repo:" + "b" * 400}


def _policy(sub: str) -> dict[str, Any]:
    return github_trust(sub)


def _write(tmp_path: Path, name: str, content: Any) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def _run(argv: list[str]) -> Result:
    return within_guard(lambda: run_cli(argv))


def test_lint_of_5000_stars_reports_the_wildcard(tmp_path: Path) -> None:
    policy = _write(tmp_path, "p.json", _policy("repo:" + "*" * 5000 + "a"))
    result = _run(["trust", "lint", policy])
    assert result.code == 1
    assert "subject-wildcard-tenant" in result.stdout


def test_check_of_five_stars_against_a_405_character_subject_denies(tmp_path: Path) -> None:
    policy = _write(tmp_path, "p.json", _policy("repo:*****a"))
    claims = _write(tmp_path, "c.json", CLAIMS)
    result = _run(["trust", "check", "--policy", policy, "--claims", claims])
    assert result.code == 1
    assert "implicit-deny" in result.stdout


def test_check_of_five_stars_that_match_allows(tmp_path: Path) -> None:
    policy = _write(tmp_path, "p.json", _policy("repo:*****b"))
    claims = _write(tmp_path, "c.json", CLAIMS)
    assert _run(["trust", "check", "--policy", policy, "--claims", claims]).code == 0


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _one_line_error(result: Result, needle: str) -> None:
    assert result.code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "internal error" not in result.stderr
    assert "Traceback" not in result.stderr


def test_lint_and_check_of_a_100k_deep_policy_name_the_limit(tmp_path: Path) -> None:
    policy = _write(tmp_path, "deep.json", _deep(100_000))
    claims = _write(tmp_path, "c.json", CLAIMS)
    limit = f"more than {JSON_MAX_DEPTH} levels"
    _one_line_error(_run(["trust", "lint", policy]), limit)
    _one_line_error(_run(["trust", "check", "--policy", policy, "--claims", claims]), limit)


def test_check_of_100k_deep_claims_names_the_limit(tmp_path: Path) -> None:
    policy = _write(tmp_path, "p.json", _policy("repo:*"))
    claims = _write(tmp_path, "c.json", '{"sub": ' + _deep(100_000) + "}")
    result = _run(["trust", "check", "--policy", policy, "--claims", claims])
    _one_line_error(result, f"more than {JSON_MAX_DEPTH} levels")


def test_doctor_with_a_100k_deep_policy_names_the_limit(tmp_path: Path) -> None:
    policy = _write(tmp_path, "deep.json", _deep(100_000))
    result = _run(["doctor", "--policy", policy])
    _one_line_error(result, f"more than {JSON_MAX_DEPTH} levels")


def test_a_policy_one_level_within_the_limit_reaches_the_grammar(tmp_path: Path) -> None:
    policy = _write(tmp_path, "p.json", _deep(JSON_MAX_DEPTH))
    result = _run(["trust", "lint", policy])
    _one_line_error(result, "must be a JSON object")


def test_lint_at_the_statement_limit_locates_each_finding_in_its_own_statement(
    tmp_path: Path,
) -> None:
    statement = _policy("repo:acme/*")["Statement"][0]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{**statement, "Sid": f"S{i}"} for i in range(limits.POLICY_MAX_STATEMENTS)],
    }
    text = json.dumps(policy, indent=2)
    path = _write(tmp_path, "p.json", text)
    with counted() as work:
        result = _run(["trust", "lint", path, "--format", "json"])
    findings = json.loads(result.stdout)
    assert len(findings) >= limits.POLICY_MAX_STATEMENTS
    lines = [f["line"] for f in findings if f["location"].startswith("Statement[999]")]
    assert lines
    assert min(lines) > text.count("\n") * 0.99
    # One pass over the text, then each finding's own two statements: a few times the text in
    # all. Searching the whole text per finding scanned it once per finding (1,000+ times).
    assert len(text) <= work.located <= 12 * len(text)


def test_lint_of_many_roles_indexes_the_files_lines_once(tmp_path: Path) -> None:
    statement = _policy("repo:acme/*")["Statement"][0]
    roles = [
        {
            "RoleName": f"r{i}",
            "Arn": f"arn:aws:iam::123456789012:role/r{i}",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [statement]},
        }
        for i in range(1000)
    ]
    text = json.dumps({"Roles": roles}, indent=2)
    path = _write(tmp_path, "roles.json", text)
    with counted() as work:
        result = _run(["trust", "lint", path, "--format", "json"])
    findings = json.loads(result.stdout)
    last = [f["line"] for f in findings if f["role"] == "r999"]
    assert last
    assert min(last) > text.count("\n") * 0.99
    # The file's lines once, each role's policy once, each finding's statement: a few times the
    # text. Indexing (or counting) the lines before each role cost the text once per role.
    assert len(text) <= work.located <= 6 * len(text)
