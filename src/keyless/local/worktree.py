"""Files of a local job: a working tree's files copied into a job's folder, a commit cloned into
it with git, and sets of files copied in and out (artifacts, caches), all within the bounds of
``keyless.limits``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from keyless.errors import UsageError
from keyless.limits import LOCAL_GIT_SECONDS, LOCAL_TREE_MAX_BYTES, LOCAL_TREE_MAX_FILES

__all__ = [
    "Copied",
    "TreeError",
    "clone_commit",
    "copy_files",
    "git",
    "git_root",
    "has_uncommitted_changes",
    "tree_files",
    "working_tree_files",
]


class TreeError(UsageError):
    """A tree too large to copy, or a git command that failed."""

    kind = "files"


@dataclass(frozen=True, slots=True, kw_only=True)
class Copied:
    files: int
    bytes: int


def git(folder: Path, *argv: str, timeout: float = LOCAL_GIT_SECONDS) -> str | None:
    """``git -C folder ARGV``'s output, or None when git is missing or the command fails."""
    program = shutil.which("git")
    if program is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - fixed git arguments
            [program, "-C", str(folder), *argv],
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None


def git_root(folder: Path) -> Path | None:
    """The top of the git work tree ``folder`` is in, or None."""
    top = git(folder, "rev-parse", "--show-toplevel")
    return Path(top.strip()).resolve() if top and top.strip() else None


def has_uncommitted_changes(folder: Path) -> bool:
    """Whether ``folder``'s work tree differs from its commit (untracked, not ignored, included)."""
    status = git(folder, "status", "--porcelain", "--untracked-files=normal")
    return bool(status and status.strip())


def working_tree_files(folder: Path) -> list[Path]:
    """The files of ``folder`` a clone would have plus the untracked ones git does not ignore;
    outside git, every file but ``.git``. Stops listing past ``LOCAL_TREE_MAX_FILES``."""
    listed = git(folder, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listed is not None:
        return [Path(name) for name in listed.split("\0") if name]
    found: list[Path] = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            found.append((Path(parent) / name).relative_to(folder))
            if len(found) > LOCAL_TREE_MAX_FILES:
                return found
    return found


def tree_files(folder: Path) -> list[Path]:
    """Every file below ``folder`` (symbolic links not followed), relative to it; stops listing
    past ``LOCAL_TREE_MAX_FILES``."""
    found: list[Path] = []
    for parent, _dirs, files in os.walk(folder):
        for name in files:
            found.append((Path(parent) / name).relative_to(folder))
            if len(found) > LOCAL_TREE_MAX_FILES:
                return found
    return sorted(found)


def copy_files(source: Path, files: Iterable[Path], target: Path, *, what: str) -> Copied:
    """Copy ``files`` (relative to ``source``) to the same places below ``target``. Regular files
    only: a symbolic link is not followed, so nothing outside ``source`` is copied. More than
    ``LOCAL_TREE_MAX_FILES`` files or ``LOCAL_TREE_MAX_BYTES`` bytes is refused, naming ``what``."""
    chosen = list(files)
    if len(chosen) > LOCAL_TREE_MAX_FILES:
        raise TreeError(
            f"{what} has more than {LOCAL_TREE_MAX_FILES} files; leave out generated ones"
        )
    count = size = 0
    for relative in chosen:
        origin = source / relative
        if origin.is_symlink() or not origin.is_file():
            continue
        size += origin.stat().st_size
        if size > LOCAL_TREE_MAX_BYTES:
            raise TreeError(f"{what} holds more than {LOCAL_TREE_MAX_BYTES} bytes")
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(origin, destination)
        count += 1
    return Copied(files=count, bytes=size)


def clone_commit(repository: Path, target: Path, *, commit: str, branch: str | None) -> None:
    """``git clone`` ``repository`` into ``target`` and check out ``commit`` (on ``branch`` when
    given, else detached), as Bitbucket clones a step's repository."""
    if git(repository, "clone", "--quiet", "--no-checkout", str(repository), str(target)) is None:
        raise TreeError(f"git could not clone {repository} into {target}")
    where = ["-B", branch, commit] if branch else ["--detach", commit]
    if git(target, "checkout", "--quiet", "--force", *where) is None:
        raise TreeError(f"git could not check out {commit[:12]} in the clone of {repository}")
