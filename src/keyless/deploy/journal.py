"""The stored manifest kept current while a deploy runs, so a deploy killed at any point (SIGKILL,
a cancelled CI job) leaves a manifest that knows what it did and the next run repeats nothing.

An entry binds an object's headers to its ETag, and is used only while the listed ETag is the
same. A single-part PUT's ETag is the body's MD5 (S3 API reference, "Common Response Headers"),
so the entry of such an upload is known before it starts: it is written *ahead*, one manifest
write per batch of uploads. If the upload never happens, the object keeps its old ETag and the
early entry is ignored; if it happened, the next run finds the object unchanged, headers
included. What cannot be known ahead (a multipart upload's ETag, a copy in place, which keeps
its ETag) is written after it is done, every ``MANIFEST_FLUSH_CHANGES`` changes or
``MANIFEST_FLUSH_SECONDS`` seconds. Every write is the whole manifest in one PUT, so the stored
one is always a complete old or a complete new version.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from keyless.deploy.manifest import Entry, keeping_crc
from keyless.deploy.plan import Digests, Upload
from keyless.errors import KeylessError
from keyless.limits import (
    MANIFEST_AHEAD_FIRST_BATCH,
    MANIFEST_AHEAD_MAX_BATCH,
    MANIFEST_FLUSH_CHANGES,
    MANIFEST_FLUSH_SECONDS,
)


class Journal:
    """The entries of one deploy and what the store holds of them.

    ``confirm`` may be called from any thread (the upload callbacks); everything else runs on the
    thread that drives the deploy, which is also the only one that writes.
    """

    def __init__(
        self,
        entries: dict[str, Entry],
        *,
        stored: Mapping[str, Entry] | None,
        write: Callable[[Mapping[str, Entry]], None],
        clock: Callable[[], float],
    ) -> None:
        #: The deploy's entries (relative keys); the caller's dict, updated in place.
        self.entries = entries
        #: None when the stored manifest is unusable: the first flush replaces it.
        self._stored: dict[str, Entry] | None = dict(stored) if stored is not None else None
        self._write = write
        self._clock = clock
        self._lock = threading.Lock()
        self._confirmed: list[tuple[str, Entry]] = []
        #: Keys whose entry differs from the stored one since the last write.
        self._dirty: set[str] = set()
        self._unwritten_since: float | None = None
        #: Manifest writes done (for tests and figures).
        self.writes = 0

    def ahead(self, entries: Mapping[str, Entry]) -> None:
        """Entries of uploads about to start: stored before any of them starts."""
        self.entries.update(entries)
        self.flush()

    def confirm(self, key: str, entry: Entry) -> None:
        """An upload succeeded (any thread)."""
        with self._lock:
            self._confirmed.append((key, entry))

    def set(self, key: str, entry: Entry) -> None:
        self._put(key, entry)
        self.flush_if_due()

    def flush_if_due(self) -> None:
        changes = self._drain()
        if not changes:
            return
        now = self._clock()
        if self._unwritten_since is None:
            self._unwritten_since = now
        if changes >= MANIFEST_FLUSH_CHANGES or now - self._unwritten_since >= (
            MANIFEST_FLUSH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        """Store the entries now if they differ from the stored ones."""
        self._drain()
        if self._stored is not None and self.entries == self._stored:
            return
        snapshot = dict(self.entries)
        self._write(snapshot)
        self.writes += 1
        self._stored = snapshot
        self._dirty.clear()
        self._unwritten_since = None

    def _drain(self) -> int:
        """Move the confirmations into ``entries``; the number of entries not yet stored."""
        with self._lock:
            confirmed, self._confirmed = self._confirmed, []
        for key, entry in confirmed:
            self._put(key, entry)
        return len(self._dirty)

    def _put(self, key: str, entry: Entry) -> None:
        entry = keeping_crc(entry, self.entries.get(key))
        self.entries[key] = entry
        if self._stored is not None and self._stored.get(key) == entry:
            self._dirty.discard(key)
        else:
            self._dirty.add(key)


def ahead_jobs(
    uploads: Sequence[Upload],
    journal: Journal,
    *,
    prefix: str,
    single_part_max: int,
    digests: Digests,
    workers: int,
) -> Iterator[Upload]:
    """``uploads`` in order, each batch's early entries stored before its first upload starts.

    The MD5s of the next batch are computed while the current one uploads.
    """
    batches: list[Sequence[Upload]] = []
    start, size = 0, MANIFEST_AHEAD_FIRST_BATCH
    while start < len(uploads):
        batches.append(uploads[start : start + size])
        start += size
        size = min(size * 4, MANIFEST_AHEAD_MAX_BATCH)
    with ThreadPoolExecutor(max_workers=workers) as pool:

        def early(batch: Sequence[Upload]) -> Future[dict[str, Entry]]:
            return pool.submit(_early_entries, batch, prefix, single_part_max, digests)

        coming = [early(batch) for batch in batches[:1]]
        for index, batch in enumerate(batches):
            entries = coming.pop().result()
            coming.extend(early(later) for later in batches[index + 1 : index + 2])
            journal.ahead(entries)
            for upload in batch:
                journal.flush_if_due()
                yield upload


def _early_entries(
    batch: Sequence[Upload], prefix: str, single_part_max: int, digests: Digests
) -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    for upload in batch:
        if upload.file.size > single_part_max:
            continue  # multipart: its ETag depends on the parts; written once it is done
        md5, crc = upload.md5, upload.crc64nvme
        if md5 is None:
            try:
                read = digests.digest(upload.file)
            except (OSError, KeylessError):
                continue  # gone or unreadable: its upload fails and says so
            md5, crc = read.md5, read.crc64nvme
        # The CRC is from the read whose MD5 is this entry's ETag: it names the same bytes.
        found[upload.key.removeprefix(prefix)] = Entry(
            etag=md5, md5=None, headers=upload.headers.digest(), crc64nvme=crc
        )
    return found
