"""In-memory stand-ins for the deploy planner's inputs: file contents and S3's ETags."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from keyless.deploy.local_tree import (
    Digest,
    LocalFile,
    PartDigests,
    crc64nvme_hex,
    multipart_etags_of_chunks,
)


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def multipart_etag(data: bytes, part_size: int) -> str:
    return multipart_etags_of_chunks(iter([data]), [part_size])[part_size]


class MemoryDigests:
    """``Digests`` over contents held in memory, counting reads (and MD5s) so tests see the
    laziness."""

    def __init__(self, contents: dict[str, bytes]) -> None:
        self.contents = contents
        self.reads = 0
        #: Reads that computed an MD5 (``digest`` and ``multipart_etags``; ``crc64nvme`` does not).
        self.md5_reads = 0

    def digest(self, file: LocalFile) -> Digest:
        self.reads += 1
        self.md5_reads += 1
        data = self.contents[file.path]
        return Digest(md5=md5(data), crc64nvme=crc64nvme_hex(data))

    def crc64nvme(self, file: LocalFile) -> str:
        self.reads += 1
        return crc64nvme_hex(self.contents[file.path])

    def multipart_etags(self, file: LocalFile, part_sizes: Sequence[int]) -> PartDigests:
        self.reads += 1
        self.md5_reads += 1
        data = self.contents[file.path]
        etags = multipart_etags_of_chunks(iter([data]), part_sizes)
        return PartDigests(etags=etags, crc64nvme=crc64nvme_hex(data))


def local_files(
    files: dict[str, bytes], *, excluded: frozenset[str] = frozenset()
) -> tuple[list[LocalFile], MemoryDigests]:
    entries = [
        LocalFile(key=key, path=f"/site/{key}", size=len(data), excluded=key in excluded)
        for key, data in sorted(files.items())
    ]
    return entries, MemoryDigests({f"/site/{key}": data for key, data in files.items()})
