"""When a manifest entry may record a CRC64NVME: only where its ETag vouches for the read the CRC
came from, so that a later deploy comparing CRCs alone never skips bytes it did not see."""

from __future__ import annotations

from pathlib import Path

from keyless.deploy.hash_ahead import HashAhead
from keyless.deploy.headers import HeaderPolicy
from keyless.deploy.journal import Journal
from keyless.deploy.local_tree import Digest, FileDigests, LocalFile, crc64nvme_hex
from keyless.deploy.manifest import Entry
from keyless.deploy.plan import Reason, Upload
from keyless.deploy.remote import entry_of
from tests.unit.deploy.fakes import md5

HEADERS = HeaderPolicy().for_key("a.txt")
FILE = LocalFile(key="a.txt", path="/site/a.txt", size=4)
CRC = crc64nvme_hex(b"same")


def _upload(reason: Reason, *, md5: str | None, crc: str | None) -> Upload:
    return Upload(key="a.txt", file=FILE, reason=reason, headers=HEADERS, md5=md5, crc64nvme=crc)


def test_a_single_part_upload_keeps_the_crc_of_the_read_whose_md5_is_its_etag() -> None:
    upload = _upload(Reason.CHANGED, md5=md5(b"same"), crc=CRC)
    assert entry_of(upload, md5(b"same")).crc64nvme == CRC
    # The file changed between that read and the upload: S3's ETag is another MD5, so the CRC
    # describes other bytes and is dropped.
    assert entry_of(upload, md5(b"else")).crc64nvme is None


def test_a_multipart_upload_records_no_crc_and_a_copy_in_place_does() -> None:
    upload = _upload(Reason.CHANGED, md5=md5(b"same"), crc=CRC)
    assert entry_of(upload, "0" * 32 + "-3").crc64nvme is None
    # A copy in place copied the object proven equal (CopySourceIfMatch): its new ETag may be
    # anything, the bytes are the ones the CRC was compared with.
    copy = _upload(Reason.HEADERS, md5=None, crc=CRC)
    assert entry_of(copy, "f" * 32, copied=True).crc64nvme == CRC
    assert entry_of(copy, "f" * 32).crc64nvme is None


def test_the_journal_keeps_an_early_crc_when_the_upload_confirms_the_same_etag() -> None:
    written: list[dict[str, Entry]] = []
    journal = Journal({}, stored={}, write=lambda e: written.append(dict(e)), clock=lambda: 0.0)
    early = Entry(etag=md5(b"same"), md5=None, headers=HEADERS.digest(), crc64nvme=CRC)
    journal.ahead({"a.txt": early})
    journal.confirm("a.txt", Entry(etag=md5(b"same"), md5=None, headers=HEADERS.digest()))
    journal.confirm("b.txt", Entry(etag=md5(b"b"), md5=None, headers=HEADERS.digest()))
    journal.flush()
    assert written[-1]["a.txt"] == early
    assert written[-1]["b.txt"].crc64nvme is None


def test_reads_ahead_compute_what_the_planner_will_ask(tmp_path: Path) -> None:
    class Counting(FileDigests):
        def __init__(self) -> None:
            self.md5s = 0

        def digest(self, file: LocalFile) -> Digest:
            self.md5s += 1
            return super().digest(file)

    for name in ("crc.txt", "md5.txt"):
        (tmp_path / name).write_bytes(b"same")
    files = [LocalFile(key=n, path=str(tmp_path / n), size=4) for n in ("crc.txt", "md5.txt")]
    entries = {
        "crc.txt": Entry(etag=md5(b"same"), md5=None, headers="a" * 16, crc64nvme=CRC),
        "md5.txt": Entry(etag=md5(b"same"), md5=None, headers="a" * 16),
    }
    inner = Counting()
    ahead = HashAhead(inner, workers=2)
    try:
        ahead.known(files, entries)
        assert ahead.crc64nvme(files[0]) == CRC
        assert ahead.digest(files[1]).md5 == md5(b"same")
        assert inner.md5s == 1  # the CRC-only file was never MD5'd
        # Asked for what was not read ahead (a stale entry): computed then, correctly.
        assert ahead.digest(files[0]).crc64nvme == CRC
        assert inner.md5s == 2
    finally:
        ahead.close()
