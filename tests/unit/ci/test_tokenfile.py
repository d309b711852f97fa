"""Token files: --token-file, KEYLESS_TOKEN_FILE, AWS_WEB_IDENTITY_TOKEN_FILE."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.ci.tokenfile import PROVIDER as tokenfile
from keyless.ci.tokenfile import read_token_file
from keyless.errors import CredentialError, TokenError
from keyless.testing import NO_HTTP
from tests.jwt_factory import make_token


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_no_file_variable_is_none() -> None:
    assert tokenfile.obtain({}, audience=None, http=NO_HTTP) is None
    assert not tokenfile.in_ci({"AWS_ROLE_ARN": "arn:aws:iam::1:role/x"})


def test_keyless_variable_comes_before_the_aws_one(tmp_path: Path) -> None:
    mine, aws = make_token(subject="mine"), make_token(subject="aws")
    env = {
        "KEYLESS_TOKEN_FILE": str(_write(tmp_path / "mine", mine)),
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(_write(tmp_path / "aws", aws)),
    }
    obtained = tokenfile.obtain(env, audience=None, http=NO_HTTP)
    assert obtained is not None
    assert obtained.token == mine
    assert obtained.provider == "file"
    assert obtained.source == f"KEYLESS_TOKEN_FILE {tmp_path / 'mine'}"


def test_aws_variable_alone_is_read(tmp_path: Path) -> None:
    token = make_token()
    env = {"AWS_WEB_IDENTITY_TOKEN_FILE": str(_write(tmp_path / "t", token + "\n"))}
    obtained = tokenfile.obtain(env, audience=None, http=NO_HTTP)
    assert obtained is not None
    assert obtained.token == token  # the newline `echo` leaves is dropped


def test_symlinked_file_is_read(tmp_path: Path) -> None:
    # Kubernetes projects service-account tokens through symlinks: reading follows them.
    token = make_token()
    real = _write(tmp_path / "real", token)
    link = tmp_path / "link"
    link.symlink_to(real)
    assert read_token_file(link, origin="--token-file").token == token


def test_missing_file_is_a_credential_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(CredentialError) as info:
        tokenfile.obtain({"KEYLESS_TOKEN_FILE": str(missing)}, audience=None, http=NO_HTTP)
    assert info.value.message == f"Token file: {missing} (from KEYLESS_TOKEN_FILE) does not exist"
    assert info.value.remedy is not None
    assert "keyless token --write" in info.value.remedy


def test_unreadable_path_is_a_credential_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="cannot read"):
        read_token_file(tmp_path, origin="--token-file")


def test_appended_file_is_refused_with_the_explanation(tmp_path: Path) -> None:
    first, second = make_token(subject="1"), make_token(subject="2")
    path = _write(tmp_path / "t", f"{first}\n{second}\n")
    with pytest.raises(TokenError) as info:
        read_token_file(path, origin="--token-file")
    error = info.value
    assert "several lines" in error.message
    assert error.remedy is not None
    assert ">>" in error.remedy
    assert first not in error.diagnostics()
    assert second not in error.diagnostics()


def test_binary_file_is_a_token_error(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TokenError, match="is not a JWT"):
        read_token_file(path, origin="--token-file")


def test_audience_check(tmp_path: Path) -> None:
    path = _write(tmp_path / "t", make_token(audience="sts.amazonaws.com"))
    assert read_token_file(path, origin="x", audience="sts.amazonaws.com").token
    with pytest.raises(CredentialError, match=r"has audience 'sts\.amazonaws\.com', not 'other'"):
        read_token_file(path, origin="x", audience="other")


def test_claims_no_issuer() -> None:
    assert not tokenfile.owns_issuer("https://token.actions.githubusercontent.com")
