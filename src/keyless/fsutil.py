"""Writing files safely: atomic, never through a symlink, never appended; secrets owner-only.

The widely copied snippet (``echo $TOKEN >> ~/.aws/web-identity-token; chmod 400 ...``) appends a
second token on a re-run, leaves the file readable between creation and ``chmod``, adds a newline
botocore sends verbatim, and fails where ``~/.aws`` does not exist
(docs/security-model.md#token-files).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from keyless.errors import OutputError

__all__ = ["write_public_file", "write_secret_file"]

_FILE_MODE = 0o600
_DIR_MODE = 0o700
# O_NOFOLLOW is POSIX; where it is missing, O_EXCL on a fresh random name already refuses links.
_CREATE_FLAGS = (
    os.O_CREAT
    | os.O_EXCL
    | os.O_WRONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def write_secret_file(path: str | os.PathLike[str], data: str) -> Path:
    """Replace ``path`` with exactly ``data`` (UTF-8, no newline added), mode 0600.

    - the content goes to a temporary file in the same folder, created with
      ``O_CREAT|O_EXCL|O_WRONLY`` and mode 0600 from the start (no readable window before a
      chmod), fsynced, then ``os.replace``-d over ``path``: readers see the old file or the new
      one, never a half-written or appended one;
    - missing parent folders are created with mode 0700;
    - a symlink at ``path`` is refused (it could point the secret anywhere); symlinks in the
      parent folders are followed as usual;
    - on any failure the temporary file is removed and ``OutputError`` names ``path``.

    Returns ``path`` as a ``Path``.
    """
    target = Path(path)
    _make_private_dirs(target.parent, target)
    return _replace(target, data.encode("utf-8"), _FILE_MODE)


def write_public_file(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> Path:
    """Replace ``path`` with exactly ``data`` as ``write_secret_file`` does (temporary file
    created exclusively, fsynced, renamed over ``path``; a symlink refused), for content that
    holds no secret: a report, a certificate, an index. ``mode`` is set exactly; the folder
    must exist. Returns ``path`` as a ``Path``."""
    target = Path(path)
    if not target.parent.is_dir():
        raise OutputError(f"cannot write {target}: {target.parent} is not a folder")
    return _replace(target, data, mode)


def _replace(target: Path, payload: bytes, mode: int) -> Path:
    try:
        info = target.lstat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    if info is not None and stat.S_ISLNK(info.st_mode):
        raise OutputError(
            f"refusing to write {target}: it is a symbolic link",
            remedy="Remove the link or choose another path; keyless never writes through links.",
        )
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise OutputError(f"refusing to write {target}: it exists and is not a regular file")

    parent = target.parent
    import secrets  # here: its hmac, hashlib and random are start-up time for every command

    temporary = parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(temporary, _CREATE_FLAGS, _FILE_MODE)  # 0600 until it holds its content
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have removed bits; make it exactly ``mode``
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
        raise
    _fsync_dir(parent)
    return target


def _make_private_dirs(folder: Path, target: Path) -> None:
    """Create ``folder`` and its missing ancestors with mode 0700 (exactly, whatever the umask)."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=_DIR_MODE)
            directory.chmod(_DIR_MODE)
        except FileExistsError:
            continue  # created meanwhile by someone else: use it as it is
        except OSError as exc:
            raise OutputError(
                f"cannot create {directory} for {target}: {exc.strerror or exc}"
            ) from exc
    if not folder.is_dir():
        raise OutputError(f"cannot write {target}: {folder} is not a folder")


def _fsync_dir(folder: Path) -> None:
    # Makes the rename durable across a crash; best effort where folders cannot be opened.
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
