"""Digests of the local files computed ahead of the planner, while the bucket is still being
listed."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from keyless.deploy.local_tree import Digest, FileDigests, LocalFile, PartDigests
from keyless.deploy.manifest import Entry
from keyless.deploy.plan import RemoteObject
from keyless.errors import UsageError
from keyless.limits import DEPLOY_HASH_AHEAD, DEPLOY_HASH_BATCH

#: What a read computes: the CRC64NVME alone (the object's CRC is known), or MD5 and CRC.
_CRC, _DIGEST = "crc", "digest"


class HashAhead:
    """``FileDigests`` that read ahead of the planner on a few threads (file reads, hashlib and
    the CRT's CRC release the GIL), so the planner finds them done: a no-change run is bound by
    reading.

    Files the manifest knows (their objects were there last time) are read from the start, in
    listing order and in batches, while the listing is still coming; any other file as soon as
    its object is listed with the same size. Each read computes what the planner will ask for:
    the CRC alone where the manifest records the object's CRC, else MD5 and CRC. Only the planner
    decides what a digest means.
    """

    def __init__(self, inner: FileDigests, *, workers: int) -> None:
        self._inner = inner
        self._pool = ThreadPoolExecutor(max_workers=workers)
        #: By key: the file, what its read computes, its batch and its place in the batch.
        self._started: dict[str, tuple[LocalFile, str, Future[list[Digest | str | None]], int]] = {}

    def known(self, local: Iterable[LocalFile], entries: Mapping[str, Entry]) -> None:
        """Start reading the files whose (relative) key has a manifest entry, likeliest first."""
        files = sorted((f for f in local if not f.excluded and f.key in entries), key=_by_key)
        for kind in (_CRC, _DIGEST):
            chosen = [f for f in files if (entries[f.key].crc64nvme is None) is (kind == _DIGEST)]
            for start in range(0, len(chosen), DEPLOY_HASH_BATCH):
                self._submit(chosen[start : start + DEPLOY_HASH_BATCH], kind)

    def ahead(
        self, remote: Iterable[RemoteObject], local: Iterable[LocalFile], prefix: str
    ) -> Iterator[RemoteObject]:
        files = {f.key: f for f in local if not f.excluded}
        window: deque[RemoteObject] = deque()
        for obj in remote:
            rel = obj.key[len(prefix) :] if obj.key.startswith(prefix) else None
            file = files.get(rel) if rel is not None and rel not in self._started else None
            # Only where the planner will ask: same size, and a CRC known or an MD5 to compare
            # (a multipart ETag without either is recomputed by the planner, part by part).
            if file and file.size == obj.size:
                if obj.crc64nvme is not None:
                    self._submit([file], _CRC)
                elif "-" not in obj.etag or obj.md5:
                    self._submit([file], _DIGEST)
            window.append(obj)
            if len(window) > DEPLOY_HASH_AHEAD:
                yield window.popleft()
        yield from window

    def _submit(self, files: list[LocalFile], kind: str) -> None:
        batch = self._pool.submit(self._read, files, kind)
        for index, file in enumerate(files):
            self._started[file.key] = (file, kind, batch, index)

    def _read(self, files: list[LocalFile], kind: str) -> list[Digest | str | None]:
        # A file that cannot be read here is read again by the planner, which reports it.
        found: list[Digest | str | None] = []
        for file in files:
            try:
                found.append(
                    self._inner.crc64nvme(file) if kind == _CRC else self._inner.digest(file)
                )
            except (OSError, UsageError):
                found.append(None)
        return found

    def _ready(self, file: LocalFile, kind: str) -> Digest | str | None:
        started = self._started.pop(file.key, None)
        if started is None or started[0] is not file or started[1] != kind:
            return None
        return started[2].result()[started[3]]

    def digest(self, file: LocalFile) -> Digest:
        found = self._ready(file, _DIGEST)
        return found if isinstance(found, Digest) else self._inner.digest(file)

    def crc64nvme(self, file: LocalFile) -> str:
        found = self._ready(file, _CRC)
        return found if isinstance(found, str) else self._inner.crc64nvme(file)

    def multipart_etags(self, file: LocalFile, part_sizes: Sequence[int]) -> PartDigests:
        return self._inner.multipart_etags(file, part_sizes)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _by_key(file: LocalFile) -> str:
    # Code point order is UTF-8 byte order, the order of S3's listing.
    return file.key
