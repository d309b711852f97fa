"""Walk a local build folder the way ``keyless deploy`` sees it: S3 keys, sizes, filters, and
content digests computed only when the planner asks for them.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import cast

from keyless.errors import UsageError
from keyless.limits import (
    DEPLOY_READ_CHUNK_BYTES,
    S3_MAX_KEY_BYTES,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalFile:
    """One regular file of the build: ``key`` is its path relative to LOCAL_DIR, NFC, ``/``."""

    key: str
    #: A ``str``, not a ``Path``: at 20,000 files a ``Path`` each (its parsed parts, every name
    #: interned) costs several MB of a deploy's peak memory.
    path: str
    size: int
    excluded: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """``--exclude``/``--include`` globs on paths relative to LOCAL_DIR (and to the S3 prefix).

    ``*`` also matches ``/`` (as in ``aws s3 sync``); an ``--include`` wins over every
    ``--exclude``, so ``--exclude '*' --include '*.html'`` deploys only HTML.
    """

    exclude: tuple[str, ...] = ()
    include: tuple[str, ...] = ()

    def excluded(self, key: str) -> bool:
        if not any(fnmatchcase(key, pattern) for pattern in self.exclude):
            return False
        return not any(fnmatchcase(key, pattern) for pattern in self.include)

    def prunes(self, directory: str) -> bool:
        """True when nothing below ``directory`` can be included (so the walk skips it)."""
        if self.include:
            return False
        return any(
            pattern.endswith("/*") and fnmatchcase(directory, pattern[:-2])
            for pattern in self.exclude
        )


def walk(root: Path, filters: Filters | None = None) -> Iterator[LocalFile]:
    """Every regular file under ``root`` in a stable order, excluded ones flagged.

    Symlinks are followed while they stay inside ``root``; a link that leaves the tree, a
    dangling link and a directory loop are refused with ``UsageError`` rather than skipped, since a
    deploy that silently drops files is worse than one that stops.
    """
    filters = filters or Filters()
    if not root.exists():
        raise UsageError(
            f"LOCAL_DIR {str(root)!r} does not exist",
            remedy="Build the site first, or pass the folder that holds the build output.",
        )
    if not root.is_dir():
        raise UsageError(f"LOCAL_DIR {str(root)!r} is not a directory")
    real_root = os.path.realpath(root)
    yield from _walk(Path(root), "", real_root, (real_root,), filters)


def _walk(
    directory: Path, rel: str, real_root: str, ancestors: tuple[str, ...], filters: Filters
) -> Iterator[LocalFile]:
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError as exc:
        raise UsageError(f"cannot read folder {str(directory)!r}: {exc.strerror}") from exc
    for entry in entries:
        key = _key(rel + entry.name, entry.path)
        if entry.is_symlink():
            if filters.prunes(key):
                continue
            if filters.excluded(key):
                # Excluded paths are never touched, so an excluded link (to a file or a folder,
                # as the errors below suggest) is not even resolved.
                continue
            target = os.path.realpath(entry.path)
            if os.path.commonpath([real_root, target]) != real_root:
                raise UsageError(
                    f"symlink {key!r} points outside LOCAL_DIR (to {target!r})",
                    remedy="Copy the target into the build folder, or --exclude the link.",
                )
            try:
                mode = os.stat(target).st_mode
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise UsageError(
                        f"symlink {key!r} is a symlink loop (it never reaches a file or folder)",
                        remedy="Fix or remove the link, or --exclude it.",
                    ) from exc
                raise UsageError(
                    f"symlink {key!r} is dangling (to {target!r})",
                    remedy="Fix or remove the link, or --exclude it.",
                ) from exc
            if stat.S_ISDIR(mode):
                if target in ancestors:
                    raise UsageError(
                        f"symlink {key!r} makes a loop (to its ancestor {target!r})",
                        remedy="Remove the link, or --exclude it.",
                    )
                yield from _walk(
                    Path(entry.path), key + "/", real_root, (*ancestors, target), filters
                )
                continue
            if stat.S_ISREG(mode):
                yield _file(key, entry.path, os.stat(target).st_size, filters)
            continue
        if entry.is_dir(follow_symlinks=False):
            if not filters.prunes(key):
                real = os.path.join(ancestors[-1], entry.name)
                yield from _walk(
                    Path(entry.path), key + "/", real_root, (*ancestors, real), filters
                )
        elif entry.is_file(follow_symlinks=False):
            yield _file(key, entry.path, entry.stat(follow_symlinks=False).st_size, filters)
        # Sockets, FIFOs and devices are not content; a build never means to publish them.


def _file(key: str, path: str, size: int, filters: Filters) -> LocalFile:
    return LocalFile(key=key, path=path, size=size, excluded=filters.excluded(key))


def _key(rel: str, path: str) -> str:
    try:
        encoded = rel.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(
            f"file name {path!r} is not valid UTF-8, so it cannot be an S3 key",
            remedy="Rename the file, or --exclude it.",
        ) from exc
    # macOS (and some archivers) write NFD names; the web and S3 clients expect NFC. Measured
    # after NFC, which lengthens some names (composition exclusions such as U+0958).
    key = unicodedata.normalize("NFC", rel)
    if max(len(encoded), len(key.encode("utf-8"))) > S3_MAX_KEY_BYTES:
        raise UsageError(f"path {rel[:60]!r}... is longer than S3's {S3_MAX_KEY_BYTES}-byte keys")
    return key


class FileVanishedError(UsageError):
    """A file of the walk was deleted (or replaced by a non-file) while the deploy ran."""

    kind = "file-vanished"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"file {key!r} vanished during the deploy (deleted after LOCAL_DIR was read);"
            " nothing was deleted from S3",
            remedy="Let the build finish before deploying, then run the same deploy again.",
        )


def _readable(file: LocalFile, exc: OSError) -> UsageError:
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return FileVanishedError(file.key)
    return UsageError(f"cannot read file {file.key!r}: {exc.strerror}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Digest:
    """What one read of a file found: its MD5 and its CRC64NVME (``crc64nvme_hex``)."""

    md5: str
    crc64nvme: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PartDigests:
    """One read of a file: S3's multipart ETag for each part size asked, and its CRC64NVME."""

    etags: dict[int, str]
    crc64nvme: str


class FileDigests:
    """Content digests read from disk in chunks; the planner calls it only for same-size pairs.

    Every read also computes the file's CRC64NVME (the CRT's, hardware-accelerated: about 1% of
    an MD5's CPU), so that the manifest can record it and the next deploy compares by it alone.

    A file that cannot be read is a ``UsageError`` naming it (``FileVanishedError`` when it is
    gone), not an ``OSError``.
    """

    def digest(self, file: LocalFile) -> Digest:
        """The MD5 and the CRC64NVME, in one read."""
        crc = _crc64nvme()
        md5 = hashlib.md5(usedforsecurity=False)
        value = 0
        for chunk in self._read(file):
            md5.update(chunk)
            value = crc(chunk, value)
        return Digest(md5=md5.hexdigest(), crc64nvme=f"{value:016x}")

    def crc64nvme(self, file: LocalFile) -> str:
        """The CRC64NVME alone (no MD5: what a manifest entry that records one needs)."""
        crc = _crc64nvme()
        value = 0
        for chunk in self._read(file):
            value = crc(chunk, value)
        return f"{value:016x}"

    def multipart_etags(self, file: LocalFile, part_sizes: Sequence[int]) -> PartDigests:
        """S3's multipart ETag (MD5 of the parts' MD5s, ``-N``) for each part size, and the
        CRC64NVME, in one read."""
        crc = _crc64nvme()
        value = 0

        def chunks() -> Iterator[bytes]:
            nonlocal value
            for chunk in self._read(file):
                value = crc(chunk, value)
                yield chunk

        etags = multipart_etags_of_chunks(chunks(), part_sizes)
        return PartDigests(etags=etags, crc64nvme=f"{value:016x}")

    def _read(self, file: LocalFile) -> Iterator[bytes]:
        # Plain descriptor reads (no buffered file object): a small file is read in one call of
        # its walked size + 1 and confirmed at its end by an empty read of the same size (so a
        # file that grew since the walk is still hashed whole); big ones in chunks.
        want = min(file.size + 1, DEPLOY_READ_CHUNK_BYTES)
        try:
            fd = os.open(file.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            try:
                while chunk := os.read(fd, want):
                    yield chunk
            finally:
                os.close(fd)
        except OSError as exc:
            raise _readable(file, exc) from exc


def _crc64nvme() -> Callable[[bytes, int], int]:
    """awscrt's CRC64NVME (S3's default checksum), imported when a file is first read: the
    deploy's data plane loads the CRT anyway, ``keyless.deploy.plan``'s importers need not."""
    from awscrt.checksums import crc64nvme  # type: ignore[import-untyped]

    return cast("Callable[[bytes, int], int]", crc64nvme)


def crc64nvme_hex(data: bytes) -> str:
    """The CRC64NVME of ``data`` as the manifest stores it: 16 lower-case hex digits."""
    return f"{_crc64nvme()(data, 0):016x}"


def multipart_etags_of_chunks(chunks: Iterator[bytes], part_sizes: Sequence[int]) -> dict[int, str]:
    states = {size: _PartHasher(size) for size in part_sizes}
    for chunk in chunks:
        for state in states.values():
            state.update(chunk)
    return {size: state.etag() for size, state in states.items()}


class _PartHasher:
    __slots__ = ("_current", "_filled", "_part_size", "_parts")

    def __init__(self, part_size: int) -> None:
        self._part_size = part_size
        self._parts: list[bytes] = []
        self._current = hashlib.md5(usedforsecurity=False)
        self._filled = 0

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), self._part_size - self._filled)
            self._current.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == self._part_size:
                self._parts.append(self._current.digest())
                self._current = hashlib.md5(usedforsecurity=False)
                self._filled = 0

    def etag(self) -> str:
        parts = list(self._parts)
        if self._filled or not parts:
            parts.append(self._current.digest())
        return f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}"
