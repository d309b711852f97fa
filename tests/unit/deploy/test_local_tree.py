"""The local walk: names as S3 keys, filters, symlinks inside/outside/looping, digests."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from pathlib import Path

import pytest

from keyless.deploy.local_tree import (
    Digest,
    FileDigests,
    Filters,
    LocalFile,
    crc64nvme_hex,
    walk,
)
from keyless.errors import UsageError
from tests.unit.deploy.fakes import multipart_etag


def _keys(root: Path, filters: Filters | None = None) -> dict[str, bool]:
    return {f.key: f.excluded for f in walk(root, filters)}


def test_names_round_trip_as_keys(tmp_path: Path) -> None:
    names = ["a b.html", "x+y.txt", "100%.txt", "c#d.css", "ünï.js"]
    (tmp_path / "sub dir").mkdir()
    for name in names:
        (tmp_path / "sub dir" / name).write_text(name)
    # An NFD name (as macOS writes them) becomes its NFC key.
    (tmp_path / unicodedata.normalize("NFD", "é.txt")).write_text("e")
    keys = _keys(tmp_path)
    assert set(keys) == {f"sub dir/{n}" for n in names} | {"é.txt"}
    assert "é.txt" in keys  # NFC spelling


def test_filters_and_pruning(tmp_path: Path) -> None:
    for rel in ["index.html", "a.log", "node_modules/x.js", "tmp/keep.txt", "tmp/drop.txt"]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    keys = _keys(tmp_path, Filters(exclude=("*.log", "node_modules/*")))
    assert keys == {
        "index.html": False,
        "a.log": True,
        "tmp/drop.txt": False,
        "tmp/keep.txt": False,
    }
    with_include = Filters(exclude=("tmp/*",), include=("tmp/keep*",))
    assert _keys(tmp_path, with_include)["tmp/keep.txt"] is False
    assert _keys(tmp_path, with_include)["tmp/drop.txt"] is True


def test_symlinks_inside_the_tree_are_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f.txt").write_text("f")
    (tmp_path / "alias").symlink_to("real")
    (tmp_path / "g.txt").symlink_to("real/f.txt")
    files = {f.key: f for f in walk(tmp_path)}
    assert set(files) == {"alias/f.txt", "g.txt", "real/f.txt"}
    assert files["g.txt"].size == 1


def test_symlink_leaving_the_tree_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    site = tmp_path / "site"
    site.mkdir()
    (site / "leak.txt").symlink_to(outside)
    with pytest.raises(UsageError, match=r"symlink 'leak\.txt' points outside LOCAL_DIR"):
        list(walk(site))
    # Excluded links are not even resolved.
    assert _keys(site, Filters(exclude=("leak.txt",))) == {}


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "back").symlink_to("..")
    with pytest.raises(UsageError, match="makes a loop"):
        list(walk(tmp_path))


def test_dangling_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "gone").symlink_to("nowhere")
    with pytest.raises(UsageError, match="dangling"):
        list(walk(tmp_path))


def test_missing_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        list(walk(tmp_path / "dist"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        list(walk(tmp_path / "file"))


@pytest.mark.skipif(os.name != "posix", reason="FIFOs are POSIX")
def test_special_files_are_not_content(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "a").write_text("a")
    assert _keys(tmp_path) == {"a": False}


def _crc64nvme_bitwise(data: bytes) -> str:
    """CRC-64/NVME from its definition (reflected polynomial 0x9A6C9329AC4BC9B5, all-ones init
    and final XOR), bit by bit: an oracle that shares no code with the CRT's."""
    crc = 0xFFFF_FFFF_FFFF_FFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x9A6C_9329_AC4B_C9B5 if crc & 1 else 0)
    return f"{crc ^ 0xFFFF_FFFF_FFFF_FFFF:016x}"


def test_crc64nvme_is_the_nvme_crc() -> None:
    # The standard check value of CRC-64/NVME, and the oracle on bytes of every value.
    assert crc64nvme_hex(b"123456789") == "ae8b14860a799888"
    assert _crc64nvme_bitwise(b"123456789") == "ae8b14860a799888"
    sample = bytes(range(256)) * 3
    assert crc64nvme_hex(sample) == _crc64nvme_bitwise(sample)


def test_digests(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)
    path = tmp_path / "f"
    path.write_bytes(data)
    file = LocalFile(key="f", path=str(path), size=len(data))
    digests = FileDigests()
    crc = crc64nvme_hex(data)
    assert digests.digest(file) == Digest(
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(), crc64nvme=crc
    )
    # Read in chunks, the CRC is still the whole file's.
    assert digests.crc64nvme(file) == crc
    sizes = [1 << 20, 5 << 20]
    parts = digests.multipart_etags(file, sizes)
    assert parts.etags == {s: multipart_etag(data, s) for s in sizes}
    assert parts.crc64nvme == crc
    assert digests.multipart_etags(file, [1 << 20]).etags[1 << 20].endswith("-4")
    assert digests.multipart_etags(file, [5 << 20]).etags[5 << 20].endswith("-1")


@pytest.mark.parametrize("walked", [0, 5, 100, 4096])
def test_md5_reads_the_whole_file_whatever_size_the_walk_saw(tmp_path: Path, walked: int) -> None:
    # The walked size only sizes the reads: a file that grew or shrank since is hashed whole.
    data = os.urandom(3000)
    path = tmp_path / "f"
    path.write_bytes(data)
    file = LocalFile(key="f", path=str(path), size=walked)
    assert FileDigests().digest(file).md5 == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert FileDigests().crc64nvme(file) == _crc64nvme_bitwise(data)


def test_excluding_a_linked_folder_excludes_it_unresolved(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("home")
    (site / "linkdir").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UsageError, match="symlink 'linkdir' points outside"):
        list(walk(site))
    # What the message suggests works for a linked folder too.
    assert set(_keys(site, Filters(exclude=("linkdir",)))) == {"index.html"}


def test_symlink_cycle_is_called_a_loop_not_dangling(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(UsageError, match="symlink 'a' is a symlink loop") as raised:
        list(walk(tmp_path))
    assert "dangling" not in str(raised.value)


def test_a_file_that_vanished_is_named(tmp_path: Path) -> None:
    (tmp_path / "gone.html").write_text("x")
    (file,) = list(walk(tmp_path))
    (tmp_path / "gone.html").unlink()
    with pytest.raises(UsageError, match=r"file 'gone\.html' vanished during the deploy"):
        FileDigests().digest(file)
    with pytest.raises(UsageError, match=r"file 'gone\.html' vanished during the deploy"):
        FileDigests().crc64nvme(file)
    with pytest.raises(UsageError, match=r"file 'gone\.html' vanished during the deploy"):
        FileDigests().multipart_etags(file, [5 << 20])
