"""`keyless token`: terminal refusal, piping, --write, --show-claims, --json, --ci, exit codes,
and that the token shows up nowhere but the pipe or the file it was asked for."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from keyless.cli.seams import Seams
from keyless.limits import TOKEN_REQUEST_MAX_ATTEMPTS
from keyless.testing import FakeClock
from tests.cli.helpers import Result, run_cli
from tests.github_endpoint import Reply, serve, token_reply
from tests.jwt_factory import make_token
from tests.slow_server import drip

ISSUER = "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
REPO = "{7a1e0000-0000-4000-8000-00000000000a}"
REQUEST_TOKEN = "ghs_request-bearer-fedcba9876543210"


def _bitbucket_token(**extra: object) -> str:
    return make_token(
        {"repositoryUuid": REPO, "branchName": "main", "secretish": "do-not-print", **extra},
        issuer=ISSUER,
        audience="ari:cloud:bitbucket::workspace/5c0ffee0",
        subject=f"{REPO}:{{step}}",
    )


def _bitbucket_env(token: str) -> dict[str, str]:
    return {"BITBUCKET_BUILD_NUMBER": "7", "BITBUCKET_STEP_OIDC_TOKEN": token}


def _github_env(url: str) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "ACTIONS_ID_TOKEN_REQUEST_URL": url,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
    }


def _assert_nowhere(result: Result, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout
        assert secret not in result.stderr
        # Not even a recognisable piece of it (the signature is its most secret-looking part).
        assert secret.rsplit(".", 1)[-1][:24] not in result.stdout + result.stderr


# --- delivery ----------------------------------------------------------------------------------


def test_terminal_is_refused_with_the_alternatives() -> None:
    token = _bitbucket_token()
    result = run_cli(["token"], env=_bitbucket_env(token), stdout_is_terminal=True)
    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: refusing to print the token to a terminal")
    for alternative in ("--write", "| some-command", "--show-claims"):
        assert alternative in result.stderr
    _assert_nowhere(result, token)


def test_terminal_refusal_costs_no_token_request() -> None:
    with serve([token_reply(make_token())]) as endpoint:
        result = run_cli(["token"], env=_github_env(endpoint.url), stdout_is_terminal=True)
    assert result.code == 2
    assert endpoint.requests == []


@pytest.mark.prints_secrets("stdout")  # `keyless token` prints the token
def test_pipe_gets_exactly_the_token() -> None:
    token = _bitbucket_token()
    result = run_cli(["token"], env=_bitbucket_env(token))
    assert result.code == 0
    assert result.stdout == token  # no trailing newline: botocore sends a token file verbatim
    assert result.stderr == ""


def test_write_creates_a_private_file_and_confirms_on_stderr(tmp_path: Path) -> None:
    token = _bitbucket_token()
    target = tmp_path / ".aws" / "web-identity-token"
    result = run_cli(
        ["token", "--write", str(target)], env=_bitbucket_env(token), stdout_is_terminal=True
    )
    assert result.code == 0
    assert target.read_text() == token
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert result.stdout == ""
    assert str(target) in result.stderr
    assert "Bitbucket Pipelines" in result.stderr
    assert "BITBUCKET_STEP_OIDC_TOKEN" in result.stderr
    assert re.search(r"; 20\S+Z \(expires in \d", result.stderr)
    _assert_nowhere(result, token)


def test_write_twice_replaces(tmp_path: Path) -> None:
    target = tmp_path / "token"
    first, second = _bitbucket_token(n=1), _bitbucket_token(n=2)
    assert run_cli(["token", "--write", str(target)], env=_bitbucket_env(first)).code == 0
    assert run_cli(["token", "--write", str(target)], env=_bitbucket_env(second)).code == 0
    assert target.read_text() == second


def test_write_through_a_symlink_is_refused(tmp_path: Path) -> None:
    token = _bitbucket_token()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("")
    link = tmp_path / "token"
    link.symlink_to(elsewhere)
    result = run_cli(["token", "--write", str(link)], env=_bitbucket_env(token))
    assert result.code == 2
    assert f"refusing to write {link}: it is a symbolic link" in result.stderr
    assert elsewhere.read_text() == ""
    _assert_nowhere(result, token)


# --- reports -----------------------------------------------------------------------------------


def test_show_claims_prints_safe_claims_only() -> None:
    token = _bitbucket_token()
    result = run_cli(["token", "--show-claims"], env=_bitbucket_env(token), stdout_is_terminal=True)
    assert result.code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "provider: bitbucket (Bitbucket Pipelines)"
    assert lines[1] == "source:   BITBUCKET_STEP_OIDC_TOKEN"
    assert any(line.split() == ["branchName", "main"] for line in lines)
    assert any(line.split() == ["repositoryUuid", REPO] for line in lines)
    assert any(line.strip().startswith("exp") and "(expires in 4m" in line for line in lines)
    assert "do-not-print" not in result.stdout
    assert lines[-1] == "not shown (not known to be safe to print): secretish"
    _assert_nowhere(result, token)


def test_json_is_one_document_without_the_token(tmp_path: Path) -> None:
    token = _bitbucket_token()
    result = run_cli(["token", "--json"], env=_bitbucket_env(token))
    assert result.code == 0
    document = json.loads(result.stdout)
    assert document["provider"] == "bitbucket"
    assert document["source"] == "BITBUCKET_STEP_OIDC_TOKEN"
    assert document["claims"]["repositoryUuid"] == REPO
    assert document["claims"]["iss"] == ISSUER
    assert "secretish" not in document["claims"]
    assert document["claims_not_shown"] == ["secretish"]
    assert document["expired"] is False
    assert document["expires_at"].endswith("Z")
    assert document["written"] is None
    _assert_nowhere(result, token)


def test_json_with_write_names_the_file(tmp_path: Path) -> None:
    token = _bitbucket_token()
    target = tmp_path / "t"
    result = run_cli(["token", "--json", "--write", str(target)], env=_bitbucket_env(token))
    assert result.code == 0
    assert json.loads(result.stdout)["written"] == str(target)
    assert target.read_text() == token
    _assert_nowhere(result, token)


def test_token_file_claims_are_chosen_by_issuer(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text(_bitbucket_token() + "\n")
    result = run_cli(["token", "--token-file", str(path), "--json"])
    document = json.loads(result.stdout)
    assert document["provider"] == "file"
    assert document["claims"]["branchName"] == "main"  # Bitbucket's list, from the issuer


# --- choosing the source -----------------------------------------------------------------------


@pytest.mark.prints_secrets("stdout")  # `keyless token` prints the token
def test_two_cis_need_ci_and_ci_forces_one() -> None:
    gitlab_token = make_token(issuer="https://gitlab.com")
    env = {**_bitbucket_env(_bitbucket_token()), "GITLAB_CI": "true", "ID_TOKEN": gitlab_token}
    ambiguous = run_cli(["token"], env=env)
    assert ambiguous.code == 2
    assert "several CIs detected (Bitbucket Pipelines, GitLab CI)" in ambiguous.stderr
    forced = run_cli(["token", "--ci", "gitlab"], env=env)
    assert forced.code == 0
    assert forced.stdout == gitlab_token


def test_unknown_ci_is_a_usage_error() -> None:
    result = run_cli(["token", "--ci", "jenkins"])
    assert result.code == 2
    assert "invalid choice: 'jenkins'" in result.stderr


def test_no_ci_is_exit_2_with_a_remedy() -> None:
    result = run_cli(["token", "--show-claims"])
    assert result.code == 2
    assert result.stderr.startswith("error: no CI detected")
    assert "--token-file PATH" in result.stderr
    # The laptop's way to a token, pasteable as it is:
    local_run = (
        "keyless local run --ci github --repository OWNER/REPO -- keyless token --show-claims"
    )
    assert f"\n  {local_run}\n" in result.stderr + "\n"


def test_bitbucket_step_without_oidc_shows_the_yaml() -> None:
    result = run_cli(["token"], env={"BITBUCKET_BUILD_NUMBER": "7"})
    assert result.code == 2
    assert "error: Bitbucket Pipelines: BITBUCKET_STEP_OIDC_TOKEN is not set" in result.stderr
    assert "oidc: true" in result.stderr


def test_token_env_for_another_ci_is_refused() -> None:
    result = run_cli(["token", "--token-env", "X"], env=_bitbucket_env(_bitbucket_token()))
    assert result.code == 2
    assert "--token-env X applies to GitLab CI only" in result.stderr


@pytest.mark.prints_secrets("stdout")  # `keyless token` prints the token
def test_github_through_the_cli_with_an_audience() -> None:
    token = make_token(issuer="https://token.actions.githubusercontent.com", audience="aud-x")
    with serve([token_reply(token)]) as endpoint:
        result = run_cli(["token", "--audience", "aud-x"], env=_github_env(endpoint.url))
    assert result.code == 0
    assert result.stdout == token
    assert endpoint.requests[0].query["audience"] == ["aud-x"]
    _assert_nowhere(result, REQUEST_TOKEN)


def test_github_401_is_exit_2_after_one_request() -> None:
    with serve([Reply(status=401)]) as endpoint:
        result = run_cli(["-v", "token"], env=_github_env(endpoint.url))
    assert result.code == 2
    assert len(endpoint.requests) == 1
    assert "HTTP 401" in result.stderr
    _assert_nowhere(result, REQUEST_TOKEN)


@pytest.mark.parametrize(
    ("attempt_seconds", "budget_seconds"),
    [(0.3, 1.0), (10.0, 0.6)],
    ids=["attempts-by-their-deadline", "attempt-in-flight-cut-by-the-budget"],
)
def test_github_endpoint_dripping_bytes_is_a_network_error_within_the_budget(
    monkeypatch: pytest.MonkeyPatch, attempt_seconds: float, budget_seconds: float
) -> None:
    from keyless.ci.github import token_request

    monkeypatch.setattr(token_request, "GITHUB_TOKEN_REQUEST_SECONDS", attempt_seconds)
    monkeypatch.setattr(token_request, "RETRY_TOTAL_BUDGET_SECONDS", budget_seconds)
    with drip() as server:
        result = run_cli(
            ["token", "--ci", "github"], env=_github_env(server.url + "/idtoken?api-version=2.0")
        )
        sent = server.most_sent
    assert result.code == 2
    line = result.stderr.splitlines()[0]
    assert line.startswith("error: GitHub Actions: the ID token endpoint"), line
    assert "no complete answer within" in line
    # Bounded by construction: a few attempts, none of them allowed to run on byte by byte.
    assert 1 <= server.connections <= TOKEN_REQUEST_MAX_ATTEMPTS
    assert sent < server.max_bytes // 2
    if attempt_seconds > budget_seconds:
        assert server.connections == 1  # the budget ended the one attempt it had started
    _assert_nowhere(result, REQUEST_TOKEN)


# --- refusals about the token itself -----------------------------------------------------------


def test_expired_token_is_not_delivered_but_can_be_inspected(tmp_path: Path) -> None:
    token = make_token(issuer=ISSUER, now=1_700_000_000, lifetime=300)
    env = _bitbucket_env(token)
    piped = run_cli(["token"], env=env)
    assert piped.code == 2
    assert "expired at 2023-11-14T22:18:20Z" in piped.stderr
    assert piped.stdout == ""
    target = tmp_path / "t"
    assert run_cli(["token", "--write", str(target)], env=env).code == 2
    assert not target.exists()
    shown = run_cli(["token", "--json"], env=env)
    assert shown.code == 0
    assert json.loads(shown.stdout)["expired"] is True


def test_malformed_token_is_exit_2_without_its_value() -> None:
    bogus = "eyJhbGciOiJSUzI1NiJ9.eyJub3QganNvbg.c2VjcmV0LXNpZ25hdHVyZS12YWx1ZQ"
    result = run_cli(["-v", "token"], env=_bitbucket_env(bogus))
    assert result.code == 2
    assert "malformed" in result.stderr
    _assert_nowhere(result, bogus)


# --- the token goes nowhere else ---------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "token", "--show-claims"],
        ["-v", "token", "--json"],
        ["-v", "token", "--audience", "wrong-audience"],
        ["-v", "token", "--token-env", "X"],
        ["-v", "token", "--ci", "github"],
        ["-v", "token", "--write", "{folder}"],
        ["-v", "token", "--write", "{file}/below-a-file"],
    ],
)
def test_no_stream_and_no_error_text_carries_the_token(argv: list[str], tmp_path: Path) -> None:
    token = _bitbucket_token()
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = [a.format(folder=tmp_path, file=blocker) for a in argv]
    result = run_cli(argv, env=_bitbucket_env(token), stdout_is_terminal=True)
    _assert_nowhere(result, token)


@pytest.mark.prints_secrets("stdout")  # `keyless token` prints the token
def test_clock_is_replaceable() -> None:
    token = make_token(issuer=ISSUER, now=1_000, lifetime=300)
    result = run_cli(["token"], env=_bitbucket_env(token), seams=Seams(clock=FakeClock(now=1_100)))
    assert result.code == 0
    assert result.stdout == token


def test_help_exits_0() -> None:
    assert run_cli(["token", "--help"]).code == 0
