"""What keyless remembers about the objects it wrote, stored next to them in one small object.

S3's listing gives key, size and ETag but neither headers nor, for multipart or SSE-KMS objects, a
content MD5. The manifest records both per key, bound to the ETag it saw: an entry counts only
while the listed ETag is the same, so an object rewritten by any other tool is simply unknown again.
It also records the content's CRC64NVME (S3's default checksum, Amazon S3 API reference,
"Checksum"), which the next deploy compares instead of computing an MD5.

The stored manifest is untrusted input (anyone who may write the prefix may replace it), so it is
read within bounds: decompressed in steps up to ``MANIFEST_MAX_EXPANDED_BYTES``, its nesting
checked before the JSON parser sees it, every entry checked against the schema. A manifest that
fails any of these is not used at all: every object is then compared by content, as if there
were none (``ManifestUnreadable`` says why, in one line).
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from keyless.limits import (
    MANIFEST_INFLATE_STEP_BYTES,
    MANIFEST_MAX_COMPRESSED_BYTES,
    MANIFEST_MAX_DEPTH,
    MANIFEST_MAX_ETAG_CHARS,
    MANIFEST_MAX_EXPANDED_BYTES,
    MANIFEST_MAX_OBJECTS,
)

#: The manifest's key under the deploy prefix; the planner never uploads or deletes it.
MANIFEST_NAME = ".keyless-manifest.json.gz"
#: Format version written; an unknown version is ignored, which costs one re-check, never a wrong
#: skip. Version 1 (entries without a CRC) is still read.
MANIFEST_VERSION = 2
_READ_VERSIONS = {1: 3, 2: 4}  # version: entry length
#: Largest manifest read, compressed (see ``keyless.limits``).
MANIFEST_MAX_BYTES = MANIFEST_MAX_COMPRESSED_BYTES

# A JSON string (escapes included), matched without backtracking: the unrolled-loop form.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# An ETag or MD5 as keyless stores them: lower-case hex, a multipart ETag with "-N".
_HEX_TAG = re.compile(r"^[0-9a-f]{32}(-[0-9]{1,5})?$")
_DIGEST = re.compile(r"^[0-9a-f]{16,64}$")
# A CRC64NVME as keyless stores it (``local_tree.crc64nvme_hex``).
_CRC64 = re.compile(r"^[0-9a-f]{16}$")


class ManifestUnreadable(Exception):
    """The stored manifest cannot be used; ``str()`` says why in a few words."""


class Inflater(Protocol):
    """The part of ``zlib.decompressobj()`` the reader uses (a seam for tests that count)."""

    @property
    def eof(self) -> bool: ...

    @property
    def unconsumed_tail(self) -> bytes: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


def gzip_inflater() -> Inflater:
    # wbits 16 + MAX_WBITS: a gzip member (header and CRC32/size trailer checked by zlib).
    return zlib.decompressobj(16 + zlib.MAX_WBITS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    etag: str
    #: Content MD5 when the ETag is not one (multipart, SSE-KMS); None when the ETag is the MD5.
    md5: str | None
    #: ``ObjectHeaders.digest()`` of the headers keyless set.
    headers: str
    #: The content's CRC64NVME, recorded only from a read the ETag vouches for
    #: (``plan.Comparison``).
    crc64nvme: str | None = None


def keeping_crc(entry: Entry, before: Entry | None) -> Entry:
    """``entry``, with the CRC64NVME of ``before`` when it has none and both name the same ETag
    (the same bytes): an upload's confirmation keeps the CRC its early entry recorded."""
    if entry.crc64nvme is None and before is not None and before.etag == entry.etag:
        return Entry(
            etag=entry.etag, md5=entry.md5, headers=entry.headers, crc64nvme=before.crc64nvme
        )
    return entry


def encode(entries: Mapping[str, Entry]) -> bytes:
    objects = {key: [e.etag, e.md5, e.crc64nvme, e.headers] for key, e in sorted(entries.items())}
    document = {"version": MANIFEST_VERSION, "objects": objects}
    # mtime=0 keeps the bytes reproducible for the same content.
    return gzip.compress(json.dumps(document, separators=(",", ":")).encode(), mtime=0)


def decode(
    data: bytes,
    *,
    max_expanded: int = MANIFEST_MAX_EXPANDED_BYTES,
    inflater: Callable[[], Inflater] | None = None,
) -> dict[str, Entry]:
    """Entries from a stored manifest; raises ``ManifestUnreadable`` for anything else."""
    text = inflate(data, max_expanded=max_expanded, inflater=inflater or gzip_inflater)
    depth = json_depth(text, MANIFEST_MAX_DEPTH)
    if depth is None:
        raise ManifestUnreadable(f"nested deeper than {MANIFEST_MAX_DEPTH} levels, or unbalanced")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ManifestUnreadable("not JSON") from exc
    version = document.get("version") if isinstance(document, dict) else None
    # type(), not isinstance(): JSON's true is not version 1.
    if not isinstance(document, dict) or type(version) is not int or version not in _READ_VERSIONS:
        raise ManifestUnreadable(f"not version {' or '.join(map(str, _READ_VERSIONS))}")
    objects = document.get("objects")
    if not isinstance(objects, dict):
        raise ManifestUnreadable("no objects")
    if len(objects) > MANIFEST_MAX_OBJECTS:
        raise ManifestUnreadable(f"more than {MANIFEST_MAX_OBJECTS} objects")
    entries: dict[str, Entry] = {}
    for key, value in objects.items():
        entry = _entry(value, length=_READ_VERSIONS[version])
        if entry is None:
            raise ManifestUnreadable("an entry is not [etag, md5, crc64nvme, headers]")
        entries[key] = entry
    return entries


def _entry(value: object, *, length: int) -> Entry | None:
    if not isinstance(value, list) or len(value) != length:
        return None
    etag, md5, headers = value[0], value[1], value[-1]
    crc = value[2] if length == 4 else None
    # The ETag is compared as S3 lists it (whatever its form), so only its size is bounded.
    if not isinstance(etag, str) or not 0 < len(etag) <= MANIFEST_MAX_ETAG_CHARS:
        return None
    if md5 is not None and (not isinstance(md5, str) or not _HEX_TAG.match(md5)):
        return None
    if crc is not None and (not isinstance(crc, str) or not _CRC64.match(crc)):
        return None
    if not isinstance(headers, str) or not _DIGEST.match(headers):
        return None
    return Entry(etag=etag, md5=md5, headers=headers, crc64nvme=crc)


def inflate(data: bytes, *, max_expanded: int, inflater: Callable[[], Inflater]) -> bytes:
    """One gzip member, decompressed in steps: never more than ``max_expanded`` + 1 bytes are
    asked of the decompressor in all, whatever the input claims."""
    decompressor = inflater()
    out = bytearray()
    pending = data
    try:
        while not decompressor.eof:
            room = max_expanded + 1 - len(out)
            if room <= 0:
                raise ManifestUnreadable(f"expands to more than {max_expanded} bytes")
            chunk = decompressor.decompress(pending, min(room, MANIFEST_INFLATE_STEP_BYTES))
            pending = decompressor.unconsumed_tail
            if not chunk and not pending:
                raise ManifestUnreadable("truncated")
            out += chunk
    except zlib.error as exc:
        raise ManifestUnreadable("not gzip") from exc
    if len(out) > max_expanded:
        raise ManifestUnreadable(f"expands to more than {max_expanded} bytes")
    if decompressor.unused_data:
        raise ManifestUnreadable("trailing bytes after the gzip member")
    return bytes(out)


def json_depth(text: bytes, limit: int) -> int | None:
    """The nesting depth of a JSON text if it is at most ``limit``, else None (also for
    unbalanced brackets). Strings are blanked first; each round then removes the innermost
    bracket pairs, in C-speed passes (never a recursion, never more than ``limit`` passes)."""
    skeleton = _JSON_STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    for depth in range(limit + 1):
        if not skeleton:
            return depth
        # "()" marks this round's pairs so that the round removes exactly one level.
        skeleton = skeleton.replace(b"[]", b"()").replace(b"{}", b"()").replace(b"()", b"")
    return None
