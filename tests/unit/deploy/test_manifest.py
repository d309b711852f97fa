"""The stored manifest is hostile input: bounded decompression, bounded nesting, checked schema."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from keyless.deploy.manifest import (
    Entry,
    ManifestUnreadable,
    decode,
    encode,
    json_depth,
    keeping_crc,
)
from keyless.limits import (
    MANIFEST_INFLATE_STEP_BYTES,
    MANIFEST_MAX_DEPTH,
    MANIFEST_MAX_EXPANDED_BYTES,
)
from tests.bombs import gzip_bomb

ENTRY = Entry(etag="0" * 32, md5=None, headers="a" * 16)


class CountingInflater:
    """``zlib.decompressobj`` that counts every byte it hands out."""

    def __init__(self) -> None:
        self._inner = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.produced = 0
        self.largest_ask = 0

    @property
    def eof(self) -> bool:
        return self._inner.eof

    @property
    def unconsumed_tail(self) -> bytes:
        return self._inner.unconsumed_tail

    @property
    def unused_data(self) -> bytes:
        return self._inner.unused_data

    def decompress(self, data: bytes, max_length: int = 0, /) -> bytes:
        self.largest_ask = max(self.largest_ask, max_length)
        out = self._inner.decompress(data, max_length)
        self.produced += len(out)
        return out


def test_round_trip() -> None:
    multipart = Entry(etag="1" * 32 + "-3", md5="2" * 32, headers="b" * 16)
    with_crc = Entry(etag="3" * 32, md5=None, headers="c" * 16, crc64nvme="0123456789abcdef")
    entries = {"a.html": ENTRY, "b/c.js": multipart, "d.css": with_crc}
    assert decode(encode(entries)) == entries
    assert json.loads(gzip.decompress(encode(entries)))["version"] == 2


def test_a_version_1_manifest_is_still_read_without_crcs() -> None:
    # What keyless wrote before it recorded CRCs: every entry is used, none has a CRC.
    old = {"version": 1, "objects": {"a.html": ["0" * 32, None, "a" * 16]}}
    assert decode(gzip.compress(json.dumps(old).encode(), mtime=0)) == {"a.html": ENTRY}


def test_a_confirmation_keeps_the_crc_of_the_same_etag_only() -> None:
    early = Entry(etag="0" * 32, md5=None, headers="a" * 16, crc64nvme="0123456789abcdef")
    confirmed = Entry(etag="0" * 32, md5=None, headers="a" * 16)
    assert keeping_crc(confirmed, early) == early
    assert keeping_crc(confirmed, None) == confirmed
    # Another ETag is other bytes: the early CRC says nothing of them.
    other = Entry(etag="9" * 32, md5=None, headers="a" * 16)
    assert keeping_crc(other, early) == other
    # A CRC of its own is never replaced.
    own = Entry(etag="0" * 32, md5=None, headers="a" * 16, crc64nvme="fedcba9876543210")
    assert keeping_crc(own, early) == own


def test_the_bomb_builder_makes_valid_gzip() -> None:
    assert gzip.decompress(gzip_bomb(3, valid_trailer=True)) == bytes(3 << 20)


def test_gzip_bomb_is_refused_and_never_inflated_past_the_cap() -> None:
    bomb = gzip_bomb(2048)  # about 2.1 MB that expands to 2 GiB
    assert len(bomb) < 3 << 20
    seen: list[CountingInflater] = []

    def counting() -> CountingInflater:
        seen.append(CountingInflater())
        return seen[-1]

    cap = 8 << 20
    with pytest.raises(ManifestUnreadable, match=f"expands to more than {cap} bytes"):
        decode(bomb, max_expanded=cap, inflater=counting)
    (inflater,) = seen
    assert inflater.produced == cap + 1
    assert inflater.largest_ask <= MANIFEST_INFLATE_STEP_BYTES


def test_the_production_cap_is_sized_from_objects_and_entry_budget() -> None:
    from keyless import limits

    assert MANIFEST_MAX_EXPANDED_BYTES == (
        limits.MANIFEST_MAX_OBJECTS * limits.MANIFEST_ENTRY_BUDGET_BYTES
    )
    # A real entry fits the budget with room to spare.
    one = {
        "assets/app.3f2a9c1b.js": Entry(
            etag="0" * 32 + "-99", md5="1" * 32, headers="a" * 16, crc64nvme="2" * 16
        )
    }
    assert len(gzip.decompress(encode(one))) < limits.MANIFEST_ENTRY_BUDGET_BYTES


@pytest.mark.parametrize("levels", [4, 50, 100_000])
def test_deep_nesting_is_refused_before_parsing(levels: int) -> None:
    nested = "[" * levels + "]" * levels
    text = '{"version":1,"objects":{"a":' + nested + "}}"
    with pytest.raises(ManifestUnreadable, match="nested deeper than 3 levels"):
        decode(gzip.compress(text.encode(), mtime=0))


def test_depth_ignores_brackets_inside_strings() -> None:
    text = json.dumps({"version": 1, "objects": {'[[[[{{{\\"': ["0" * 32, None, "a" * 16]}})
    assert json_depth(text.encode(), MANIFEST_MAX_DEPTH) == 3
    assert decode(gzip.compress(text.encode(), mtime=0)) == {'[[[[{{{\\"': ENTRY}
    assert json_depth(b"[[]", 3) is None
    assert json_depth(b"]]][[[", 3) is None


@pytest.mark.parametrize(
    ("document", "why"),
    [
        (b"not gzip", "not gzip"),
        (gzip.compress(b"{", mtime=0)[:-9], "truncated"),
        (gzip.compress(b'{"a" nope}', mtime=0), "not JSON"),
        (gzip.compress(b"[]", mtime=0), "not version 1 or 2"),
        (gzip.compress(b'{"version":3,"objects":{}}', mtime=0), "not version 1 or 2"),
        # JSON's true equals 1 in Python: it is still not a version.
        (gzip.compress(b'{"version":true,"objects":{}}', mtime=0), "not version 1 or 2"),
        # Each version has its entry length: a version 1 entry in a version 2 manifest...
        (
            gzip.compress(
                b'{"version":2,"objects":{"a":["e",null,"' + b"a" * 16 + b'"]}}', mtime=0
            ),
            "an entry",
        ),
        # ... and the other way round.
        (
            gzip.compress(
                b'{"version":1,"objects":{"a":["e",null,null,"' + b"a" * 16 + b'"]}}', mtime=0
            ),
            "an entry",
        ),
        # A CRC64NVME is 16 lower-case hex digits, nothing else.
        *(
            (
                gzip.compress(
                    b'{"version":2,"objects":{"a":["e",null,' + crc + b',"' + b"a" * 16 + b'"]}}',
                    mtime=0,
                ),
                "an entry",
            )
            for crc in (b'"ABCDEF0123456789"', b'"0123"', b"7", b'"0123456789abcdef0"')
        ),
        (gzip.compress(b'{"version":1}', mtime=0), "no objects"),
        (gzip.compress(b'{"version":1,"objects":{"a":"x"}}', mtime=0), "an entry is not"),
        (
            gzip.compress(b'{"version":1,"objects":{"a":[1,null,"aaaaaaaaaaaaaaaa"]}}', mtime=0),
            "an entry",
        ),
        (
            gzip.compress(b'{"version":1,"objects":{"a":["e",5,"aaaaaaaaaaaaaaaa"]}}', mtime=0),
            "an entry",
        ),
        (gzip.compress(b'{"version":1,"objects":{"a":["e",null,"XYZ"]}}', mtime=0), "an entry"),
        (gzip.compress(b'{"version":1,"objects":{}}', mtime=0) + b"junk", "trailing bytes"),
    ],
)
def test_anything_else_is_unreadable_with_a_reason(document: bytes, why: str) -> None:
    with pytest.raises(ManifestUnreadable, match=why):
        decode(document)
