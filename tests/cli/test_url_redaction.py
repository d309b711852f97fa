"""No URL keyless prints shows its user info (``user:password@``) or a token request URL's query,
whichever input brought it: --issuer, a token's ``iss``, ACTIONS_ID_TOKEN_REQUEST_URL,
AWS_ENDPOINT_URL(_STS). Each is refused with one line naming the redacted URL, exit 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from keyless.urls import redact_urls
from tests.cli.helpers import run_cli
from tests.jwt_factory import make_token

SECRET = "Pw0rdSecret9"
URL = f"https://deployer:{SECRET}@127.0.0.1:9"
UUID = "0d9b4a1e-7f3c-4c2a-9b1e-5a6f7c8d9e01"
SCOPE = ["--ci", "bitbucket", "--workspace", "acme", "--workspace-uuid", UUID]
SCOPE += ["--repository-uuid", UUID]
PROVISION = ["provision", *SCOPE, "--role-name", "deploy", "--s3-deploy", "b-1"]
GITHUB = {"GITHUB_ACTIONS": "true", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "bearer-value"}
KEYS = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "x"}
ROLE = "arn:aws:iam::123456789012:role/deploy"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token.jwt"
    path.write_text(make_token(issuer=URL, audience="sts.amazonaws.com"), encoding="utf-8")
    return path


Case = tuple[Callable[[Path], list[str]], dict[str, str]]

CASES: dict[str, Case] = {
    "provision --issuer": (lambda t: [*PROVISION, "--issuer", URL, "--emit", "terraform"], {}),
    "provision --issuer, query": (
        lambda t: [*PROVISION, "--issuer", f"{URL}/?k={SECRET}", "--thumbprint", "a" * 40],
        {},
    ),
    "claims --verify, iss": (
        lambda t: ["claims", str(t), "--verify", "--audience", "sts.amazonaws.com"],
        {},
    ),
    "claims --verify --issuer": (
        lambda t: ["claims", str(t), "--verify", "--audience", "a", "--issuer", URL],
        {},
    ),
    "token, request URL": (
        lambda t: ["token", "--ci", "github"],
        {**GITHUB, "ACTIONS_ID_TOKEN_REQUEST_URL": f"{URL}/idtoken?sig={SECRET}"},
    ),
    "whoami, AWS_ENDPOINT_URL": (lambda t: ["whoami"], {**KEYS, "AWS_ENDPOINT_URL": URL}),
    "assume, AWS_ENDPOINT_URL_STS": (
        lambda t: ["assume", "--role-arn", ROLE, "--token-file", str(t)],
        {"AWS_ENDPOINT_URL_STS": URL},
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
@pytest.mark.parametrize("verbose", [[], ["-v"]], ids=["plain", "verbose"])
def test_no_password_in_any_output(case: str, verbose: list[str], token_file: Path) -> None:
    argv, env = CASES[case]
    result = run_cli([*verbose, *argv(token_file)], env=env)
    assert result.code == 2, result.stderr
    assert SECRET not in result.stdout + result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: "), first
    assert "***@127.0.0.1:9" in first, first


def test_doctor_shows_no_password_of_the_tokens_issuer(token_file: Path) -> None:
    result = run_cli(["doctor", "--token-file", str(token_file)])
    assert SECRET not in result.stdout + result.stderr
    assert "***@127.0.0.1:9" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"x {URL}/p y", "x https://***@127.0.0.1:9/p y"),
        (f'"{URL}/"', '"https://***@127.0.0.1:9/"'),
        ("a@b https://host/p?q=a@b", "a@b https://host/p?q=a@b"),
        ("s3://bucket/key", "s3://bucket/key"),
    ],
)
def test_redact_urls_in_text(text: str, shown: str) -> None:
    assert redact_urls(text) == shown
