"""Fuzzing the deploy manifest reader: it reads an object anyone who may write the prefix may
replace, so every input either decodes to valid entries or is refused as ``ManifestUnreadable``,
and inflation never asks the decompressor for more than the cap allows."""

from __future__ import annotations

import gzip
import json
import zlib

from hypothesis import given
from hypothesis import strategies as st

from keyless.deploy.manifest import Entry, Inflater, ManifestUnreadable, decode, encode
from tests.unit.fuzz import fuzz

HEX = "0123456789abcdef"
etags = st.text(HEX, min_size=32, max_size=32)
entries = st.builds(
    Entry,
    etag=etags,
    md5=st.none() | st.text(HEX, min_size=32, max_size=32),
    headers=st.text(HEX, min_size=16, max_size=64),
)
keys = st.text(min_size=1, max_size=40)


class CountingInflater:
    """zlib's decompressor, counting the bytes it was asked for and gave."""

    def __init__(self) -> None:
        self._inner = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.asked = 0
        self.given = 0

    @property
    def eof(self) -> bool:
        return self._inner.eof

    @property
    def unconsumed_tail(self) -> bytes:
        return self._inner.unconsumed_tail

    @property
    def unused_data(self) -> bytes:
        return self._inner.unused_data

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        self.asked += max_length
        chunk = self._inner.decompress(data, max_length)
        self.given += len(chunk)
        return chunk


def _decode_or_refuse(data: bytes, *, cap: int = 1 << 20) -> dict[str, Entry] | None:
    made: list[CountingInflater] = []

    def inflater() -> Inflater:
        made.append(CountingInflater())
        return made[-1]

    reason = ""
    try:
        found = decode(data, max_expanded=cap, inflater=inflater)
    except ManifestUnreadable as refused:
        reason, found = str(refused), None
    assert found is not None or reason  # a refusal says why, in a few words
    # Never more than the cap (plus the one byte that proves it was exceeded) is inflated.
    assert all(m.given <= cap + 1 for m in made)
    return found


@fuzz
@given(st.dictionaries(keys, entries, max_size=20))
def test_what_keyless_writes_it_reads_back(written: dict[str, Entry]) -> None:
    assert decode(encode(written)) == written


@fuzz
@given(st.binary(max_size=2000))
def test_random_bytes_are_refused_not_raised(data: bytes) -> None:
    _decode_or_refuse(data)


@fuzz
@given(st.dictionaries(keys, entries, min_size=1, max_size=10), st.data())
def test_a_damaged_manifest_is_refused_or_still_valid(
    written: dict[str, Entry], data: st.DataObject
) -> None:
    blob = bytearray(encode(written))
    cut = data.draw(st.integers(0, len(blob)), label="truncate at")
    flips = data.draw(st.lists(st.integers(0, len(blob) - 1), max_size=4), label="flip bytes")
    for at in flips:
        blob[at] ^= 0xFF
    found = _decode_or_refuse(bytes(blob[:cut]) if cut < len(blob) else bytes(blob))
    if found is not None:
        assert all(isinstance(e, Entry) for e in found.values())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)


@fuzz
@given(json_values)
def test_any_json_document_is_refused_or_valid(document: object) -> None:
    data = gzip.compress(json.dumps(document).encode(), mtime=0)
    _decode_or_refuse(data)


@fuzz
@given(st.integers(1, 4096), st.integers(0, 200_000))
def test_inflation_stops_at_the_cap(cap: int, size: int) -> None:
    data = gzip.compress(b"0" * size, mtime=0)
    found = _decode_or_refuse(data, cap=cap)
    assert found is None  # zeros are never a manifest, whatever their size
