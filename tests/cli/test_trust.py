"""``keyless trust build|check|lint`` driven through ``main(argv)``: exit codes, output shapes,
one-line errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keyless.trust.model import loads_policy
from tests.cli.helpers import run_cli
from tests.jwt_factory import make_token
from tests.trust_policies import github_trust

GH = "token.actions.githubusercontent.com"
GH_ISS = f"https://{GH}"
ACCOUNT = "123456789012"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{GH}"
BB_WS = "11111111-1111-4111-8111-111111111111"
BB_REPO = "22222222-2222-4222-8222-222222222222"
BB_ENV = "33333333-3333-4333-8333-333333333333"


def _write(tmp_path: Path, name: str, content: Any) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return str(path)


def _built(tmp_path: Path, *scope: str) -> str:
    result = run_cli(["trust", "build", *scope, "--account-id", ACCOUNT])
    assert result.code == 0, result.stderr
    return _write(tmp_path, "policy.json", result.stdout)


GITHUB_ENV = ("--ci", "github", "--repository", "acme/app", "--environment", "prod")


# --- build -------------------------------------------------------------------------------------


def test_build_prints_the_policy_and_says_who_can_assume() -> None:
    result = run_cli(["trust", "build", *GITHUB_ENV, "--account-id", ACCOUNT])
    assert result.code == 0
    policy = loads_policy(result.stdout)
    assert policy.statements[0].federated == (PROVIDER,)
    assert "environment 'prod'" in result.stderr


@pytest.mark.parametrize(
    "scope",
    [
        (
            "--ci",
            "bitbucket",
            "--workspace",
            "acme",
            "--workspace-uuid",
            BB_WS,
            "--repository-uuid",
            BB_REPO,
            "--environment-uuid",
            BB_ENV,
        ),
        GITHUB_ENV,
        (
            "--ci",
            "github",
            "--repository",
            "a/b",
            "--ref",
            "main",
            "--owner-id",
            "1",
            "--repository-id",
            "2",
        ),
        ("--ci", "gitlab", "--project", "g/p", "--ref", "v1", "--ref-type", "tag"),
        ("--ci", "gitlab", "--project", "g/p", "--gitlab-url", "https://gitlab.example.com"),
        ("--ci", "circleci", "--org-id", BB_WS, "--project-id", BB_REPO),
        ("--ci", "buildkite", "--organization", "acme", "--pipeline", "app", "--branch", "main"),
    ],
)
@pytest.mark.parametrize("output", ["json", "terraform", "cloudformation"])
def test_build_every_ci_and_format(scope: tuple[str, ...], output: str) -> None:
    result = run_cli(["trust", "build", *scope, "--format", output])
    assert result.code == 0, result.stderr
    if output == "json":
        loads_policy(result.stdout)
        assert "ACCOUNT_ID" in result.stderr
    elif output == "cloudformation":
        assert json.loads(result.stdout)["Resources"]["KeylessRole"]["Type"] == "AWS::IAM::Role"
    else:
        assert "jsonencode(" in result.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ci", "github"], "--ci github needs --repository"),
        (
            ["--ci", "github", "--repository", "a/b", "--workspace", "x"],
            "--workspace is a bitbucket and terraform flag",
        ),
        (["--ci", "bitbucket", "--workspace", "a"], "needs --workspace-uuid --repository-uuid"),
        (["--ci", "circleci", "--org-id", "x", "--project-id", "y"], "is not a UUID"),
        ([*GITHUB_ENV, "--account-id", "12"], "12 digits"),
        (
            ["--ci", "gitlab", "--project", "g/p", "--branch", "main"],
            "--branch is a buildkite flag",
        ),
    ],
)
def test_build_refuses_bad_scope_flags_with_exit_2(argv: list[str], message: str) -> None:
    result = run_cli(["trust", "build", *argv])
    assert result.code == 2
    assert message in result.stderr.splitlines()[0]
    assert result.stdout == ""


def test_build_unknown_ci_is_a_usage_error() -> None:
    result = run_cli(["trust", "build", "--ci", "jenkins"])
    assert result.code == 2
    assert "invalid choice" in result.stderr


# --- check -------------------------------------------------------------------------------------


def _claims(tmp_path: Path, **claims: Any) -> str:
    base = {"iss": GH_ISS, "aud": "sts.amazonaws.com", "sub": "repo:acme/app:environment:prod"}
    return _write(tmp_path, "claims.json", {**base, **claims})


def test_check_allows_with_exit_0(tmp_path: Path) -> None:
    policy = _built(tmp_path, *GITHUB_ENV)
    result = run_cli(
        [
            "trust",
            "check",
            "--policy",
            policy,
            "--claims",
            _claims(tmp_path),
            "--provider-arn",
            PROVIDER,
        ]
    )
    assert result.code == 0
    assert result.stdout.startswith("Decision: allow")
    assert "account in the provider ARN was not checked" not in result.stdout


def test_check_denies_with_exit_1_and_marks_the_failing_row(tmp_path: Path) -> None:
    policy = _built(tmp_path, *GITHUB_ENV)
    claims = _claims(tmp_path, sub="repo:acme/app:ref:refs/heads/main")
    result = run_cli(["trust", "check", "--policy", policy, "--claims", claims])
    assert result.code == 1
    assert result.stdout.startswith("Decision: deny (implicit-deny)")
    failing = [line for line in result.stdout.splitlines() if line.startswith(">")]
    assert len(failing) == 1
    assert f"{GH}:sub" in failing[0]
    assert "repo:acme/app:environment:prod" in failing[0]
    assert "repo:acme/app:ref:refs/heads/main" in failing[0]
    assert "FAIL" in failing[0]
    assert "account in the provider ARN was not checked" in result.stdout


def test_check_json_shape(tmp_path: Path) -> None:
    policy = _built(tmp_path, *GITHUB_ENV)
    claims = _claims(tmp_path, sub="repo:evil/app:environment:prod")
    result = run_cli(["trust", "check", "--policy", policy, "--claims", claims, "--json"])
    assert result.code == 1
    document = json.loads(result.stdout)
    assert document["decision"] == "deny"
    assert document["decision_detail"] == "implicit-deny"
    assert document["reason"]
    rows = document["conditions"]
    assert [row["result"] for row in rows] == ["pass", "fail"]
    for row in rows:
        assert {"operator", "key", "values", "actual", "result"} <= set(row)
    assert rows[1]["actual"] == "repo:evil/app:environment:prod"
    assert rows[1]["values"] == ["repo:acme/app:environment:prod"]


def test_check_reads_a_token_without_verifying_it(tmp_path: Path) -> None:
    policy = _built(tmp_path, *GITHUB_ENV)
    token = make_token(issuer=GH_ISS, subject="repo:acme/app:environment:prod", now=1_000)
    path = _write(tmp_path, "token.jwt", token + "\n")
    result = run_cli(["trust", "check", "--policy", policy, "--token", path, "--json"])
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["decision"] == "allow"
    assert token not in result.stdout + result.stderr


def test_check_unexposed_claim_shows_null_actual(tmp_path: Path) -> None:
    prefix = "api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{prefix}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {f"{prefix}:branchName": "main"}},
            }
        ],
    }
    claims = {"iss": f"https://{prefix}", "sub": "{r}:{s}", "aud": "x", "branchName": "main"}
    result = run_cli(
        [
            "trust",
            "check",
            "--policy",
            _write(tmp_path, "p.json", policy),
            "--claims",
            _write(tmp_path, "c.json", claims),
            "--json",
        ]
    )
    assert result.code == 1
    (row,) = json.loads(result.stdout)["conditions"]
    assert row["actual"] is None
    assert "Bitbucket Pipelines" in row["note"]


def test_check_issuer_flag_overrides(tmp_path: Path) -> None:
    policy = _built(tmp_path, *GITHUB_ENV)
    claims = _write(
        tmp_path, "c.json", {"sub": "repo:acme/app:environment:prod", "aud": "sts.amazonaws.com"}
    )
    missing = run_cli(["trust", "check", "--policy", policy, "--claims", claims])
    assert missing.code == 2
    assert "iss" in missing.stderr
    given = run_cli(["trust", "check", "--policy", policy, "--claims", claims, "--issuer", GH_ISS])
    assert given.code == 0


def test_check_array_aud_is_indeterminate(tmp_path: Path) -> None:
    policy = _built(tmp_path, *GITHUB_ENV)
    claims = _claims(tmp_path, aud=["sts.amazonaws.com", "other"])
    result = run_cli(["trust", "check", "--policy", policy, "--claims", claims])
    assert result.code == 1
    assert "(indeterminate)" in result.stdout.splitlines()[0]


@pytest.mark.parametrize(
    ("policy", "claims", "message"),
    [
        (None, "{}", "policy file {dir}/missing.json does not exist"),
        ('{\n  "Statement": [\n', "{}", "not valid JSON at line 3, column 1"),
        ('{"Statement": [{"Effect": "allow", "Action": "x"}]}', "{}", "Statement[0].Effect"),
        ('{"Version": "2012-10-17", "Statement": []}', "[1, 2]", "must hold a JSON object"),
        ('{"Version": "2012-10-17", "Statement": []}', '{"a": 1,,}', "claims file"),
        ('{"Version": "2012-10-17", "Statement": []}', "", "is empty"),
    ],
)
def test_check_bad_files_give_one_line_errors_and_exit_2(
    tmp_path: Path, policy: str | None, claims: str, message: str
) -> None:
    policy_path = (
        str(tmp_path / "missing.json") if policy is None else _write(tmp_path, "p.json", policy)
    )
    claims_path = _write(tmp_path, "c.json", claims)
    result = run_cli(["trust", "check", "--policy", policy_path, "--claims", claims_path])
    assert result.code == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ")
    assert message.format(dir=tmp_path) in first
    assert "Traceback" not in result.stderr


def test_check_bad_token_and_provider_arn(tmp_path: Path) -> None:
    policy = _built(tmp_path, *GITHUB_ENV)
    token = _write(tmp_path, "t.jwt", "not-a-token")
    result = run_cli(["trust", "check", "--policy", policy, "--token", token])
    assert result.code == 2
    claims = _claims(tmp_path)
    bad_arn = run_cli(
        ["trust", "check", "--policy", policy, "--claims", claims, "--provider-arn", "x"]
    )
    assert bad_arn.code == 2
    assert "--provider-arn" in bad_arn.stderr


def test_check_needs_exactly_one_of_token_and_claims(tmp_path: Path) -> None:
    policy = _built(tmp_path, *GITHUB_ENV)
    assert run_cli(["trust", "check", "--policy", policy]).code == 2
    claims = _claims(tmp_path)
    both = run_cli(["trust", "check", "--policy", policy, "--claims", claims, "--token", claims])
    assert both.code == 2


# --- lint --------------------------------------------------------------------------------------

BROAD = github_trust("repo:acme*")


def test_lint_clean_policy_exits_0(tmp_path: Path) -> None:
    policy = _built(
        tmp_path,
        "--ci",
        "github",
        "--repository",
        "a/b",
        "--environment",
        "prod",
        "--owner-id",
        "1",
        "--repository-id",
        "2",
    )
    result = run_cli(["trust", "lint", policy])
    assert result.code == 0, result.stdout
    assert "0 at or above medium" in result.stderr


def test_lint_findings_exit_1_with_file_line_and_fix(tmp_path: Path) -> None:
    path = _write(tmp_path, "broad.json", BROAD)
    result = run_cli(["trust", "lint", path])
    assert result.code == 1
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"{path}:")
    assert "critical [subject-wildcard-tenant]" in first
    assert result.stdout.splitlines()[1].startswith("    fix: ")


def test_lint_fail_on_threshold(tmp_path: Path) -> None:
    low_only = _built(tmp_path, *GITHUB_ENV)  # name-only subject: a low finding
    assert run_cli(["trust", "lint", low_only]).code == 0
    assert run_cli(["trust", "lint", low_only, "--fail-on", "low"]).code == 1
    broad = _write(tmp_path, "broad.json", BROAD)
    assert run_cli(["trust", "lint", broad, "--fail-on", "critical"]).code == 1


def test_lint_json_is_a_list_of_findings(tmp_path: Path) -> None:
    path = _write(tmp_path, "broad.json", BROAD)
    result = run_cli(["trust", "lint", path, "--format", "json"])
    assert result.code == 1
    findings = json.loads(result.stdout)
    assert isinstance(findings, list)
    assert {"rule", "severity", "message", "statement", "fix", "file", "line"} <= set(findings[0])
    assert findings[0]["statement"] == 0
    assert findings[0]["file"] == path


def test_lint_sarif_shape(tmp_path: Path) -> None:
    path = _write(tmp_path, "broad.json", BROAD)
    result = run_cli(["trust", "lint", path, "--format", "sarif"])
    assert result.code == 1
    log = json.loads(result.stdout)
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    assert run["tool"]["driver"]["name"] == "keyless"
    result_ids = {r["ruleId"] for r in run["results"]}
    assert "subject-wildcard-tenant" in result_ids
    region = run["results"][0]["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] >= 1


def test_lint_reads_get_role_output(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "role.json", {"Role": {"RoleName": "x", "AssumeRolePolicyDocument": BROAD}}
    )
    result = run_cli(["trust", "lint", path, "--format", "json"])
    assert result.code == 1
    assert json.loads(result.stdout)[0]["rule"] == "subject-wildcard-tenant"


def _listed_roles() -> dict[str, Any]:
    """An `aws iam list-roles` page: a service role, a broad OIDC role, a pinned one."""
    service = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    pinned = json.loads(json.dumps(BROAD))
    pinned["Statement"][0]["Condition"]["StringLike"] = {
        f"{GH}:sub": "repo:acme/app:environment:prod"
    }
    return {
        "Roles": [
            {
                "RoleName": name,
                "Arn": f"arn:aws:iam::{ACCOUNT}:role/{name}",
                **{"AssumeRolePolicyDocument": document},
            }
            for name, document in (("web", service), ("broad", BROAD), ("pinned", pinned))
        ]
    }


def test_lint_reads_a_list_roles_page_and_names_each_role(tmp_path: Path) -> None:
    path = _write(tmp_path, "roles.json", _listed_roles())
    result = run_cli(["trust", "lint", path, "--format", "json"])
    assert result.code == 1
    findings = json.loads(result.stdout)
    assert {f["role"] for f in findings if f["severity"] in ("high", "critical")} == {"broad"}
    worst = findings[0]
    assert worst["location"].startswith("Roles[1].AssumeRolePolicyDocument.Statement[0]")
    line = Path(path).read_text().splitlines()[worst["line"] - 1]
    assert "repo:acme*" in line  # the broad role's sub, not the pinned role's
    text = run_cli(["trust", "lint", path])
    assert f"{path}:{worst['line']}: critical [subject-wildcard-tenant] role broad: " in text.stdout
    assert "in 1 file(s) (3 role(s))" in text.stderr
    log = json.loads(run_cli(["trust", "lint", path, "--format", "sarif"]).stdout)
    first = log["runs"][0]["results"][0]
    assert first["message"]["text"].startswith("role broad: ")
    assert first["locations"][0]["physicalLocation"]["region"]["startLine"] == worst["line"]


def test_lint_reads_iam_output_on_stdin(tmp_path: Path) -> None:
    result = run_cli(["trust", "lint", "-", "--format", "json"], stdin=json.dumps(_listed_roles()))
    assert result.code == 1
    assert {f["file"] for f in json.loads(result.stdout)} == {"-"}


def test_lint_names_the_role_whose_trust_cannot_be_read(tmp_path: Path) -> None:
    page = _listed_roles()
    page["Roles"][2]["AssumeRolePolicyDocument"]["Statement"][0]["Effect"] = "allow"
    path = _write(tmp_path, "roles.json", page)
    result = run_cli(["trust", "lint", path])
    assert result.code == 2
    assert (
        f'policy file {path}: Roles[2] (RoleName "pinned").AssumeRolePolicyDocument:'
        " Statement[0].Effect:" in result.stderr
    )
    assert len(result.stderr.strip().splitlines()) <= 2  # the error and its remedy, no traceback


def test_check_refuses_several_roles_and_reads_one(tmp_path: Path) -> None:
    claims = _write(
        tmp_path, "claims.json", {"iss": GH_ISS, "aud": "sts.amazonaws.com", "sub": "repo:acme/x"}
    )
    several = _write(tmp_path, "roles.json", _listed_roles())
    refused = run_cli(["trust", "check", "--policy", several, "--claims", claims])
    assert refused.code == 2
    assert "holds the trust policies of 3 roles; trust check evaluates one" in refused.stderr
    one = _write(tmp_path, "one.json", {"Roles": [_listed_roles()["Roles"][1]]})
    assert run_cli(["trust", "check", "--policy", one, "--claims", claims]).code == 0


def test_lint_several_files_and_a_bad_one(tmp_path: Path) -> None:
    good = _built(tmp_path, *GITHUB_ENV)
    broad = _write(tmp_path, "broad.json", BROAD)
    both = run_cli(["trust", "lint", good, broad, "--format", "json"])
    assert {f["file"] for f in json.loads(both.stdout)} == {good, broad}
    bad = _write(
        tmp_path,
        "bad.json",
        {
            "Statement": [
                {"Effect": "Allow", "Action": "x", "Condition": {"StringEqual": {"k": "v"}}}
            ]
        },
    )
    result = run_cli(["trust", "lint", good, bad])
    assert result.code == 2
    assert "Statement[0].Condition.StringEqual: unknown condition operator" in result.stderr
    missing = run_cli(["trust", "lint", str(tmp_path / "nope.json")])
    assert missing.code == 2
    assert "does not exist" in missing.stderr


def test_help_names_the_default_fail_on() -> None:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert run_cli(["trust", "lint", "--help"]).code == 0
    assert "default: medium" in buffer.getvalue()


def test_check_reads_the_token_from_stdin_with_dash(tmp_path: Path) -> None:
    policy = tmp_path / "trust.json"
    policy.write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {
                            "Federated": "arn:aws:iam::123456789012:oidc-provider/"
                            "token.actions.githubusercontent.com"
                        },
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {
                            "StringEquals": {
                                "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                                "token.actions.githubusercontent.com:sub": (
                                    "repo:o/r:ref:refs/heads/main"
                                ),
                            }
                        },
                    }
                ],
            }
        )
    )
    claims = {
        "iss": "https://token.actions.githubusercontent.com",
        "aud": "sts.amazonaws.com",
        "sub": "repo:o/r:ref:refs/heads/main",
    }
    allowed = run_cli(
        ["trust", "check", "--policy", str(policy), "--claims", "-"], stdin=json.dumps(claims)
    )
    assert allowed.code == 0, allowed.stderr
    claims["sub"] = "repo:o/r:ref:refs/heads/dev"
    denied = run_cli(
        ["trust", "check", "--policy", str(policy), "--claims", "-"], stdin=json.dumps(claims)
    )
    assert denied.code == 1
    empty = run_cli(["trust", "check", "--policy", str(policy), "--token", "-"], stdin="")
    assert empty.code == 2
    assert "standard input is empty" in empty.stderr


def test_lint_refuses_a_file_past_the_output_limit_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyless.cli import cmd_trust

    path = _write(tmp_path, "roles.json", _listed_roles())
    size = len(Path(path).read_text())
    monkeypatch.setattr(cmd_trust, "IAM_OUTPUT_MAX_CHARS", size)
    assert run_cli(["trust", "lint", path]).code == 1  # at the limit: read and linted
    monkeypatch.setattr(cmd_trust, "IAM_OUTPUT_MAX_CHARS", size - 1)
    refused = run_cli(["trust", "lint", path])
    assert refused.code == 2
    assert f"policy file {path} is larger than {size - 1} characters" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.parametrize(
    ("workspace", "phase", "code"),
    [("prod", "apply", 0), ("prod", "plan", 1), ("staging", "apply", 1)],
)
def test_check_an_hcp_terraform_run_against_the_built_trust(
    tmp_path: Path, workspace: str, phase: str, code: int
) -> None:
    scope = ("--ci", "terraform", "--organization", "acme", "--project", "Default Project")
    policy = _built(tmp_path, *scope, "--workspace", "prod")
    claims = {
        "iss": "https://app.terraform.io",
        "aud": "aws.workload.identity",
        "sub": f"organization:acme:project:Default Project:workspace:{workspace}:run_phase:{phase}",
        "terraform_run_phase": phase,
    }
    result = run_cli(
        ["trust", "check", "--policy", policy, "--claims", _write(tmp_path, "c.json", claims)]
    )
    assert result.code == code, result.stdout
    assert run_cli(["trust", "lint", policy]).code == 0  # the built trust lints clean


def test_lint_text_escapes_a_role_name_from_the_file(tmp_path: Path) -> None:
    page = _listed_roles()
    page["Roles"][1]["RoleName"] = "broad\x1b[2J\nforged: clean"
    result = run_cli(["trust", "lint", _write(tmp_path, "roles.json", page)])
    assert "\x1b" not in result.stdout
    assert "role broad\\x1b[2J\\x0aforged: clean: " in result.stdout


def test_build_takes_the_issuer_of_the_scope(tmp_path: Path) -> None:
    issuer = "https://127.0.0.1:45001/2.0/workspaces/acme/pipelines-config/identity/oidc"
    scope = ["--ci", "bitbucket", "--workspace", "acme", "--workspace-uuid", BB_WS]
    scope += ["--repository-uuid", BB_REPO, "--issuer", issuer]
    result = run_cli(["trust", "build", *scope, "--account-id", ACCOUNT])
    assert result.code == 0, result.stderr
    statement = json.loads(result.stdout)["Statement"][0]
    prefix = issuer.removeprefix("https://")
    assert statement["Principal"]["Federated"] == f"arn:aws:iam::{ACCOUNT}:oidc-provider/{prefix}"
    assert f"{prefix}:sub" in statement["Condition"]["StringLike"]
    bad = run_cli(["trust", "build", *scope[:-1], "http://127.0.0.1:45001/x"])
    assert bad.code == 2
    assert "--issuer http://127.0.0.1:45001/x is not an https URL" in bad.stderr


def test_lint_knows_the_local_stacks_issuers_from_its_variables(tmp_path: Path) -> None:
    base = "https://127.0.0.1:45001"
    issuer = f"{base}/2.0/workspaces/acme/pipelines-config/identity/oidc"
    scope = ["--ci", "bitbucket", "--workspace", "acme", "--workspace-uuid", BB_WS]
    built = run_cli(["trust", "build", *scope, "--repository-uuid", BB_REPO, "--issuer", issuer])
    path = _write(tmp_path, "trust.json", built.stdout)
    unknown = run_cli(["trust", "lint", path, "--format", "json"])
    assert [f["rule"] for f in json.loads(unknown.stdout)] == ["unknown-issuer"]
    env = {"KEYLESS_LOCAL_BITBUCKET_ISSUER_BASE": base}
    known = run_cli(["trust", "lint", path, "--format", "json"], env=env)
    assert known.code == 1  # a repository-wide deploy role is high (docs/lint-severity.md)
    # Bitbucket's subject grammar applies: the repository-wide `sub` is Bitbucket's finding.
    assert [f["rule"] for f in json.loads(known.stdout)] == ["subject-repo-wide"]


def test_check_says_an_allow_once(tmp_path: Path) -> None:
    policy = _built(tmp_path, *GITHUB_ENV)
    result = run_cli(["trust", "check", "--policy", policy, "--claims", _claims(tmp_path)])
    assert result.code == 0
    assert result.stdout.splitlines()[0] == "Decision: allow"
    assert "(allow)" not in result.stdout
    assert "So IAM allows" not in result.stdout  # no closing paragraph restating the verdict


def test_check_never_wraps_inside_a_quoted_value(tmp_path: Path) -> None:
    policy = _built(tmp_path, *GITHUB_ENV)
    long_sub = "repo:acme/app:ref:refs/heads/" + "feature-" * 20
    claims = _claims(tmp_path, sub=long_sub)
    result = run_cli(["trust", "check", "--policy", policy, "--claims", claims])
    assert result.code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "Decision: deny (implicit-deny)"
    assert sum(line.startswith("Decision:") for line in lines) == 1
    assert "So IAM denies" not in result.stdout
    reason = next(line for line in lines if line.startswith("Reason:"))
    assert f'but the request has "{long_sub}"' in reason  # whole, on one line
    assert any(line.startswith("Note: The token comes from") for line in lines)
