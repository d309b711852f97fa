"""MD5s of the local files computed ahead of the planner, while the bucket is still being listed."""

from __future__ import annotations

from collections import deque
from collections.abc import Container, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from keyless.deploy.local_tree import FileDigests, LocalFile
from keyless.deploy.plan import RemoteObject
from keyless.errors import UsageError
from keyless.limits import DEPLOY_HASH_AHEAD, DEPLOY_HASH_BATCH


class HashAhead:
    """``FileDigests`` that compute MD5s ahead of the planner on a few threads (file reads and
    hashlib release the GIL), so the planner finds them done: a no-change run is bound by hashing.

    Files the manifest knows (their objects were there last time) are hashed from the start, in
    listing order and in batches, while the listing is still coming; any other file as soon as
    its object is listed with the same size. Only the planner decides what an MD5 means.
    """

    def __init__(self, inner: FileDigests, *, workers: int) -> None:
        self._inner = inner
        self._pool = ThreadPoolExecutor(max_workers=workers)
        #: By key: the file, its batch and its place in the batch.
        self._started: dict[str, tuple[LocalFile, Future[list[str | None]], int]] = {}

    def known(self, local: Iterable[LocalFile], keys: Container[str]) -> None:
        """Start hashing the files whose (relative) key is in ``keys``, likeliest first."""
        files = sorted((f for f in local if not f.excluded and f.key in keys), key=_by_key)
        for start in range(0, len(files), DEPLOY_HASH_BATCH):
            self._submit(files[start : start + DEPLOY_HASH_BATCH])

    def ahead(
        self, remote: Iterable[RemoteObject], local: Iterable[LocalFile], prefix: str
    ) -> Iterator[RemoteObject]:
        files = {f.key: f for f in local if not f.excluded}
        window: deque[RemoteObject] = deque()
        for obj in remote:
            rel = obj.key[len(prefix) :] if obj.key.startswith(prefix) else None
            file = files.get(rel) if rel is not None and rel not in self._started else None
            # Only where the planner will ask for an MD5: same size, not a multipart ETag.
            if file and file.size == obj.size and ("-" not in obj.etag or obj.md5):
                self._submit([file])
            window.append(obj)
            if len(window) > DEPLOY_HASH_AHEAD:
                yield window.popleft()
        yield from window

    def _submit(self, files: list[LocalFile]) -> None:
        batch = self._pool.submit(self._md5s, files)
        for index, file in enumerate(files):
            self._started[file.key] = (file, batch, index)

    def _md5s(self, files: list[LocalFile]) -> list[str | None]:
        # A file that cannot be read here is read again by the planner, which reports it.
        found: list[str | None] = []
        for file in files:
            try:
                found.append(self._inner.md5(file))
            except (OSError, UsageError):
                found.append(None)
        return found

    def md5(self, file: LocalFile) -> str:
        started = self._started.pop(file.key, None)
        if started is not None and started[0] is file:
            digest = started[1].result()[started[2]]
            if digest is not None:
                return digest
        return self._inner.md5(file)

    def multipart_etags(self, file: LocalFile, part_sizes: Sequence[int]) -> dict[int, str]:
        return self._inner.multipart_etags(file, part_sizes)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _by_key(file: LocalFile) -> str:
    # Code point order is UTF-8 byte order, the order of S3's listing.
    return file.key
