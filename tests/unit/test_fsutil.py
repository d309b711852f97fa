"""Atomic writers: secret files 0600 in 0700 folders, public files with their own mode.

Both replace atomically, refuse symlinks and leave nothing behind on failure.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyless.errors import OutputError
from keyless.fsutil import write_public_file, write_secret_file

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def loose_umask() -> Iterator[None]:
    # A umask of 0 would make a careless implementation create 0666 files and 0777 folders.
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("loose_umask")
def test_file_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    target = tmp_path / "token"
    write_secret_file(target, TOKEN)
    assert _mode(target) == 0o600


@pytest.mark.usefixtures("loose_umask")
def test_missing_parents_are_created_0700(tmp_path: Path) -> None:
    target = tmp_path / "home" / ".aws" / "web-identity-token"
    write_secret_file(target, TOKEN)
    assert _mode(tmp_path / "home") == 0o700
    assert _mode(tmp_path / "home" / ".aws") == 0o700
    assert target.read_text() == TOKEN


def test_existing_parent_keeps_its_mode(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    write_secret_file(folder / "token", TOKEN)
    assert _mode(folder) == 0o755


def test_content_is_exact_without_a_trailing_newline(tmp_path: Path) -> None:
    target = tmp_path / "token"
    write_secret_file(target, TOKEN)
    assert target.read_bytes() == TOKEN.encode()


def test_second_write_replaces_instead_of_appending(tmp_path: Path) -> None:
    target = tmp_path / "token"
    write_secret_file(target, "first.token.value")
    write_secret_file(target, TOKEN)
    assert target.read_text() == TOKEN
    assert _leftovers(tmp_path) == []


def test_replaces_a_read_only_file_left_by_chmod_400(tmp_path: Path) -> None:
    target = tmp_path / "token"
    target.write_text("old\n")
    target.chmod(0o400)
    write_secret_file(target, TOKEN)
    assert target.read_text() == TOKEN
    assert _mode(target) == 0o600


def test_replace_is_a_new_file_not_an_edit_in_place(tmp_path: Path) -> None:
    target = tmp_path / "token"
    write_secret_file(target, "first.token.value")
    before = target.stat().st_ino
    write_secret_file(target, TOKEN)
    assert target.stat().st_ino != before


def test_symlink_at_path_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("keep me")
    link = tmp_path / "token"
    link.symlink_to(elsewhere)
    with pytest.raises(OutputError, match="symbolic link") as info:
        write_secret_file(link, TOKEN)
    assert str(link) in str(info.value)
    assert elsewhere.read_text() == "keep me"
    assert link.is_symlink()
    assert _leftovers(tmp_path) == []


def test_dangling_symlink_is_refused_too(tmp_path: Path) -> None:
    link = tmp_path / "token"
    link.symlink_to(tmp_path / "does-not-exist")
    with pytest.raises(OutputError, match="symbolic link"):
        write_secret_file(link, TOKEN)
    assert not (tmp_path / "does-not-exist").exists()


def test_a_folder_at_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="not a regular file"):
        write_secret_file(tmp_path, TOKEN)


def test_parent_that_is_a_file_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match=str(blocker / "token")):
        write_secret_file(blocker / "token", TOKEN)


def test_failure_while_writing_removes_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "token"
    target.write_text("previous")

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OutputError, match="No space left") as info:
        write_secret_file(target, TOKEN)
    assert TOKEN not in str(info.value)
    assert _leftovers(tmp_path) == []
    assert target.read_text() == "previous"


def test_failure_of_the_rename_removes_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_replace(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OutputError):
        write_secret_file(tmp_path / "token", TOKEN)
    assert list(tmp_path.iterdir()) == []


def test_returns_the_path(tmp_path: Path) -> None:
    assert write_secret_file(str(tmp_path / "t"), TOKEN) == tmp_path / "t"


# --- write_public_file: the same atomic replace, for content without a secret ----------------


def test_a_public_file_gets_exactly_its_mode_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")
    old_umask = os.umask(0o077)
    try:
        written = write_public_file(target, b"<html>\n", mode=0o644)
    finally:
        os.umask(old_umask)
    assert written == target
    assert target.read_bytes() == b"<html>\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left


def test_a_public_file_is_never_written_through_a_symlink(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("keep")
    link = tmp_path / "report.json"
    link.symlink_to(elsewhere)
    with pytest.raises(OutputError, match="it is a symbolic link"):
        write_public_file(link, b"{}")
    assert elsewhere.read_text() == "keep"


def test_a_public_file_needs_its_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is not a folder"):
        write_public_file(tmp_path / "missing" / "report.json", b"{}")
    assert not (tmp_path / "missing").exists()  # unlike a secret's, its folders are not made
