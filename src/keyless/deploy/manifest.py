"""What keyless remembers about the objects it wrote, stored next to them in one small object.

S3's listing gives key, size and ETag but neither headers nor, for multipart or SSE-KMS objects, a
content MD5. The manifest records both per key, bound to the ETag it saw: an entry counts only
while the listed ETag is the same, so an object rewritten by any other tool is simply unknown again.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass

#: The manifest's key under the deploy prefix; the planner never uploads or deletes it.
MANIFEST_NAME = ".keyless-manifest.json.gz"
#: Format version; an unknown version is ignored, which costs one re-check, never a wrong skip.
MANIFEST_VERSION = 1
#: Largest manifest read (about 50 bytes an entry compressed: room for millions of objects).
MANIFEST_MAX_BYTES = 64 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    etag: str
    #: Content MD5 when the ETag is not one (multipart, SSE-KMS); None when the ETag is the MD5.
    md5: str | None
    #: ``ObjectHeaders.digest()`` of the headers keyless set.
    headers: str


def encode(entries: Mapping[str, Entry]) -> bytes:
    objects = {key: [e.etag, e.md5, e.headers] for key, e in sorted(entries.items())}
    document = {"version": MANIFEST_VERSION, "objects": objects}
    # mtime=0 keeps the bytes reproducible for the same content.
    return gzip.compress(json.dumps(document, separators=(",", ":")).encode(), mtime=0)


def decode(data: bytes) -> dict[str, Entry]:
    """Entries from a stored manifest; anything unreadable yields no entries (never an error)."""
    try:
        document = json.loads(gzip.decompress(data))
        if document.get("version") != MANIFEST_VERSION:
            return {}
        return {
            str(key): Entry(etag=str(etag), md5=str(md5) if md5 else None, headers=str(headers))
            for key, (etag, md5, headers) in document["objects"].items()
        }
    except (OSError, EOFError, ValueError, TypeError, KeyError, AttributeError):
        return {}
