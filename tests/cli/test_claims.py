"""``keyless claims``: redaction, --all, --verify verdicts and exit codes, stdin, errors, and never
a token or signature in any output."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyless import claims_view
from keyless.cli.seams import Seams
from keyless.local.issuer import LocalIssuer
from keyless.testing import FakeClock
from tests.cli.helpers import Result, run_cli
from tests.fixtures.issuer import BITBUCKET_PATH
from tests.slow_server import drip, tls_files

AUDIENCE = "ari:cloud:bitbucket::workspace/0f5e3c0e-4f5e-4d4a-9f0e-2b1d8d9c7a11"
REDACTED_TEXT = claims_view.REDACTED
PRIVATE_VALUE = "jane.doe@example.test"
CLAIMS = {"sub": "{repo}:{step}", "aud": AUDIENCE, "user_email": PRIVATE_VALUE}

#: What this test's runs printed, and every token it wrote: no output may contain any part of one.
_OUTPUTS: list[str] = []
_SEEN_TOKENS: list[str] = []


@pytest.fixture(autouse=True)
def _no_token_in_any_output() -> Iterator[None]:
    _OUTPUTS.clear()
    _SEEN_TOKENS.clear()
    yield
    for output in _OUTPUTS:
        for token in _SEEN_TOKENS:
            for part in [token, *token.split(".")]:
                if len(part) > 8:
                    assert part not in output


def run(argv: list[str], *, stdin: str = "", seams: Seams | None = None) -> Result:
    result = run_cli(argv, stdin=stdin, seams=seams)
    _OUTPUTS.append(result.stdout + result.stderr)
    return result


def write_token(tmp_path: Path, token: str, *, name: str = "token.jwt") -> Path:
    _SEEN_TOKENS.append(token)
    path = tmp_path / name
    path.write_text(token + "\n", encoding="utf-8")
    return path


def mint(issuer: LocalIssuer, **claims: object) -> str:
    token = issuer.mint(BITBUCKET_PATH, {**CLAIMS, **claims})
    _SEEN_TOKENS.append(token)
    return token


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_shows_safe_claims_and_redacts_the_rest(local_issuer: LocalIssuer, tmp_path: Path) -> None:
    path = write_token(tmp_path, mint(local_issuer))
    result = run(["claims", str(path)])
    assert result.code == 0, result.stderr
    assert "{repo}:{step}" in result.stdout
    assert AUDIENCE in result.stdout
    assert local_issuer.issuer_url(BITBUCKET_PATH) in result.stdout
    assert re.search(r"user_email\s+<redacted>", result.stdout)
    assert PRIVATE_VALUE not in result.stdout + result.stderr
    assert "NOT verified" in result.stdout
    assert "--all shows them" in result.stdout


def test_all_shows_every_claim(local_issuer: LocalIssuer, tmp_path: Path) -> None:
    path = write_token(tmp_path, mint(local_issuer))
    result = run(["claims", str(path), "--all"])
    assert result.code == 0
    assert PRIVATE_VALUE in result.stdout
    assert "<redacted>" not in result.stdout


def test_json_document(local_issuer: LocalIssuer, tmp_path: Path) -> None:
    path = write_token(tmp_path, mint(local_issuer))
    result = run(["claims", str(path), "--json"])
    assert result.code == 0
    document = json.loads(result.stdout)
    assert document["verified"] is False
    assert document["verification"] is None
    assert document["claims"]["user_email"] == "<redacted>"
    assert document["claims"]["sub"] == "{repo}:{step}"
    assert document["redacted"] == ["user_email"]
    assert document["header"]["alg"] == "RS256"
    assert set(document["times"]) == {"iat", "nbf", "exp"}
    assert result.stderr == ""


def test_a_ci_provider_widens_the_safe_claims(local_issuer: LocalIssuer, tmp_path: Path) -> None:
    # Bitbucket's provider module declares branchName safe; the token's (unverified) iss picks it.
    bitbucket_issuer = (
        "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
    )
    token = mint(local_issuer, iss=bitbucket_issuer, branchName="release/1.2")
    result = run(["claims", str(write_token(tmp_path, token)), "--json"])
    document = json.loads(result.stdout)
    assert document["provider"] == "bitbucket"
    assert document["claims"]["branchName"] == "release/1.2"
    assert document["claims"]["user_email"] == "<redacted>"


def test_relative_times(local_issuer: LocalIssuer, tmp_path: Path) -> None:
    now = 1_800_000_000
    seams = Seams(clock=FakeClock(now=now))
    token = mint(local_issuer, iat=now - 70, nbf=now - 70, exp=now + 250)
    result = run(["claims", str(write_token(tmp_path, token))], seams=seams)
    assert "2027-01-15T08:04:10Z (expires in 4m 10s)" in result.stdout
    assert "(issued 1m 10s ago)" in result.stdout
    token = mint(local_issuer, iat=now - 480, exp=now - 180)
    result = run(["claims", str(write_token(tmp_path, token, name="old.jwt"))], seams=seams)
    assert "(expired 3m ago)" in result.stdout


def test_reads_stdin_and_strips_the_newline(local_issuer: LocalIssuer) -> None:
    token = mint(local_issuer)
    for argv in (["claims", "-"], ["claims"]):
        result = run(argv, stdin=token + "\r\n")
        assert result.code == 0, result.stderr
        assert "{repo}:{step}" in result.stdout


@pytest.mark.parametrize("stdin", ["", "\n", "   \n\n"])
def test_empty_input_is_refused(stdin: str) -> None:
    result = run(["claims", "-"], stdin=stdin)
    assert result.code == 2
    assert "empty" in one_line(result.stderr)


def test_missing_file_is_one_line_exit_2(tmp_path: Path) -> None:
    result = run(["claims", str(tmp_path / "absent.jwt")])
    assert result.code == 2
    assert one_line(result.stderr) == f"error: token file {tmp_path / 'absent.jwt'} does not exist"
    assert result.stdout == ""


def test_malformed_token_is_exit_2_without_verify_and_1_with(tmp_path: Path) -> None:
    path = write_token(tmp_path, "eyJhbGciOiJSUzI1NiJ9.not-json-at-all.c2ln")
    result = run(["claims", str(path)])
    assert result.code == 2
    assert "error: token payload is not" in one_line(result.stderr)
    result = run(["claims", str(path), "--verify", "--audience", AUDIENCE])
    assert result.code == 1
    assert "FAILED, check 'format'" in result.stdout


def test_verify_passes(local_issuer: LocalIssuer, tmp_path: Path) -> None:
    path = write_token(tmp_path, mint(local_issuer))
    argv = ["claims", str(path), "--verify", "--audience", AUDIENCE]
    result = run([*argv, "--ca-bundle", str(local_issuer.ca_bundle)])
    assert result.code == 0, result.stdout + result.stderr
    assert "token: verified" in result.stdout
    assert "verification: OK" in result.stdout
    assert "issuer taken from the token's own 'iss'" in result.stdout

    pinned = [*argv, "--issuer", local_issuer.issuer_url(BITBUCKET_PATH), "--json"]
    result = run([*pinned, "--ca-bundle", str(local_issuer.ca_bundle)])
    document = json.loads(result.stdout)
    assert result.code == 0
    assert document["verified"] is True
    assert document["verification"]["result"] == "ok"
    assert document["verification"]["issuer_from_token"] is False


@pytest.mark.parametrize(
    ("claims", "extra", "check"),
    [
        ({}, ["--audience", "sts.amazonaws.com"], "audience"),
        ({"iat": 1_000, "nbf": 1_000, "exp": 2_000}, ["--audience", AUDIENCE], "expired"),
        ({}, ["--audience", AUDIENCE, "--issuer", "https://127.0.0.1:1/other"], "issuer"),
    ],
    ids=["audience", "expired", "issuer"],
)
def test_verify_fails_with_exit_1_naming_the_check(
    local_issuer: LocalIssuer,
    tmp_path: Path,
    claims: dict[str, object],
    extra: list[str],
    check: str,
) -> None:
    path = write_token(tmp_path, mint(local_issuer, **claims))
    argv = ["claims", str(path), "--verify", "--ca-bundle", str(local_issuer.ca_bundle), *extra]
    result = run(argv)
    assert result.code == 1, result.stdout + result.stderr
    assert f"verification: FAILED, check '{check}'" in result.stdout
    assert "token: NOT verified" in result.stdout
    result = run([*argv, "--json"])
    assert result.code == 1
    document = json.loads(result.stdout)
    assert document["verification"]["check"] == check
    assert document["verified"] is False


def test_verify_of_a_forged_signature_fails(local_issuer: LocalIssuer, tmp_path: Path) -> None:
    header, payload, _ = mint(local_issuer).split(".")
    _, _, other_signature = mint(local_issuer, sub="other").split(".")
    path = write_token(tmp_path, f"{header}.{payload}.{other_signature}")
    ca = str(local_issuer.ca_bundle)
    result = run(["claims", str(path), "--verify", "--audience", AUDIENCE, "--ca-bundle", ca])
    assert result.code == 1
    assert "check 'signature'" in result.stdout


def test_verify_needs_an_audience(local_issuer: LocalIssuer, tmp_path: Path) -> None:
    path = write_token(tmp_path, mint(local_issuer))
    result = run(["claims", str(path), "--verify"])
    assert result.code == 2
    assert "--verify needs --audience" in result.stderr
    assert "proves nothing" in result.stderr  # the remedy explains why


@pytest.mark.parametrize(
    "flag", [["--audience", "a"], ["--issuer", "https://x.test"], ["--ca-bundle", "ca.pem"]]
)
def test_verification_flags_need_verify(
    local_issuer: LocalIssuer, tmp_path: Path, flag: list[str]
) -> None:
    path = write_token(tmp_path, mint(local_issuer))
    result = run(["claims", str(path), *flag])
    assert result.code == 2
    assert "only with --verify" in one_line(result.stderr)


def test_unreachable_issuer_is_exit_2(local_issuer: LocalIssuer, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"https://127.0.0.1:{probe.getsockname()[1]}"
    path = write_token(tmp_path, mint(local_issuer, iss=closed))
    result = run(["claims", str(path), "--verify", "--audience", AUDIENCE])
    assert result.code == 2
    assert "cannot fetch the discovery document" in one_line(result.stderr)


def test_issuer_dripping_bytes_is_exit_2_within_the_deadline(
    local_issuer: LocalIssuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyless.tokens import jwks

    monkeypatch.setattr(jwks, "OIDC_DISCOVERY_REQUEST_SECONDS", 0.5)
    files = tls_files(tmp_path / "tls")
    with drip(tls=files) as server:
        path = write_token(tmp_path, mint(local_issuer, iss=server.url))
        argv = ["claims", str(path), "--verify", "--audience", AUDIENCE]
        result = run([*argv, "--ca-bundle", str(files.ca_bundle)])
        sent = server.most_sent
    assert result.code == 2
    line = one_line(result.stderr)
    assert "cannot fetch the discovery document" in line
    assert "no complete answer within 0.5 s" in line
    assert server.connections == 1
    assert sent < server.max_bytes // 2


def test_missing_ca_bundle_is_exit_2(local_issuer: LocalIssuer, tmp_path: Path) -> None:
    path = write_token(tmp_path, mint(local_issuer))
    argv = ["claims", str(path), "--verify", "--audience", AUDIENCE]
    result = run([*argv, "--ca-bundle", str(tmp_path / "nope.pem")])
    assert result.code == 2
    assert "CA bundle" in one_line(result.stderr)


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(["claims", "--help"])  # argparse prints help to the process's stdout
    assert result.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "1 with --verify: the token failed a check" in text
    assert "2 a usage error" in text


def test_duration_formatting() -> None:
    assert claims_view.duration(0) == "0s"
    assert claims_view.duration(59) == "59s"
    assert claims_view.duration(180) == "3m"
    assert claims_view.duration(250) == "4m 10s"
    assert claims_view.duration(3_600 + 300) == "1h 5m"
    assert claims_view.duration(86_400 * 2 + 3_600 * 3 + 59) == "2d 3h"
    assert claims_view.duration(3_600 + 7) == "1h"


def test_a_local_stack_token_shows_its_cis_claims(tmp_path: Path) -> None:
    from tests.jwt_factory import make_token

    issuer = "https://127.0.0.1:45002"
    token = make_token({"repository": "octo-org/site", "environment": "production"}, issuer=issuer)
    path = write_token(tmp_path, token)
    unknown = run(["claims", str(path), "--json"])
    assert json.loads(unknown.stdout)["provider"] is None
    assert json.loads(unknown.stdout)["claims"]["repository"] == REDACTED_TEXT
    env = {"KEYLESS_LOCAL_GITHUB_ISSUER": issuer}
    local = run_cli(["claims", str(path), "--json"], env=env)
    _OUTPUTS.append(local.stdout + local.stderr)
    document = json.loads(local.stdout)
    assert document["provider"] == "github"
    assert document["claims"]["repository"] == "octo-org/site"
    assert document["claims"]["environment"] == "production"
    human = run_cli(["claims", str(path)], env=env)
    _OUTPUTS.append(human.stdout + human.stderr)
    assert re.search(r"^  repository\s+octo-org/site$", human.stdout, re.MULTILINE)


def test_verify_trusts_the_exported_local_ca_for_a_loopback_issuer(
    local_issuer: LocalIssuer, tmp_path: Path
) -> None:
    # `keyless local serve` exports KEYLESS_LOCAL_CA_BUNDLE; without it the local CA is unknown.
    path = write_token(tmp_path, mint(local_issuer))
    argv = ["claims", str(path), "--verify", "--audience", AUDIENCE]
    without = run_cli(argv)
    assert without.code == 2
    assert "CERTIFICATE_VERIFY_FAILED" in one_line(without.stderr)
    exported = run_cli(argv, env={"KEYLESS_LOCAL_CA_BUNDLE": str(local_issuer.ca_bundle)})
    assert exported.code == 0, exported.stdout + exported.stderr
    assert "verification: OK" in exported.stdout


def test_an_unusable_exported_local_ca_is_one_line_naming_the_variable(
    local_issuer: LocalIssuer, tmp_path: Path
) -> None:
    path = write_token(tmp_path, mint(local_issuer))
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    result = run_cli(
        ["claims", str(path), "--verify", "--audience", AUDIENCE],
        env={"KEYLESS_LOCAL_CA_BUNDLE": str(garbage)},
    )
    assert result.code == 2
    assert one_line(result.stderr) == (
        f"error: KEYLESS_LOCAL_CA_BUNDLE {garbage} holds no usable certificate"
    )
