"""The stored manifest is hostile input: bounded decompression, bounded nesting, checked schema."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from keyless.deploy.manifest import Entry, ManifestUnreadable, decode, encode, json_depth
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
    entries = {"a.html": ENTRY, "b/c.js": multipart}
    assert decode(encode(entries)) == entries


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
    one = {"assets/app.3f2a9c1b.js": Entry(etag="0" * 32, md5="1" * 32, headers="a" * 16)}
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
        (gzip.compress(b"[]", mtime=0), "not version 1"),
        (gzip.compress(b'{"version":2,"objects":{}}', mtime=0), "not version 1"),
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
