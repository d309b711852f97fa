"""What a step's folder holds besides its clone: the artifacts of earlier steps, and caches kept
in the state folder between runs, as Atlassian's "Use artifacts in steps" and "Cache
dependencies" describe them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final

from keyless.limits import LOCAL_TREE_MAX_FILES, PIPELINE_CACHE_MAX_AGE_DAYS
from keyless.local.pipeline.branch_patterns import branch_glob
from keyless.local.pipeline.model import CacheSpec, PipelineError, Step
from keyless.local.worktree import TreeError, copy_files, tree_files

#: Bitbucket's predefined caches and the folders they keep ("Cache dependencies": ~ is the
#: step's HOME, other paths are relative to the clone). `docker` caches image layers: no
#: emulation here.
PREDEFINED_CACHES: Final[Mapping[str, str]] = {
    "composer": "~/.composer/cache",
    "dotnetcore": "~/.nuget/packages",
    "gradle": "~/.gradle/caches",
    "ivy2": "~/.ivy2/cache",
    "maven": "~/.m2/repository",
    "node": "node_modules",
    "pip": "~/.cache/pip",
    "sbt": "~/.sbt",
}
#: Below the state folder: the caches kept between runs, one folder per repository.
CACHES_FOLDER: Final = "pipeline-caches"
_SAVED: Final = "saved"
_SECONDS_PER_DAY: Final = 86_400

# --- artifacts -----------------------------------------------------------------------------------


def _files(clone: Path) -> Iterator[Path]:
    """Files below ``clone`` (relative paths), in a stable order; ``.git`` left out."""
    for parent, dirs, files in os.walk(clone):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(files):
            yield (Path(parent) / name).relative_to(clone)


def _matching(clone: Path, patterns: Sequence[str]) -> Iterator[Path]:
    for relative in _files(clone):
        if any(branch_glob(pattern).fullmatch(relative.as_posix()) for pattern in patterns):
            yield relative


_NAME_FILE: Final = "name"


def collect_artifacts(step: Step, clone: Path, target: Path, *, passed: bool) -> list[str]:
    """Copy the files of ``clone`` that each of ``step``'s artifacts matches to a folder of its
    own below ``target`` (its name beside them), when its ``capture-on`` holds for the step's
    result; the log lines. Scoped artifacts and test reports are not kept: no later step gets
    them."""
    lines: list[str] = []
    total = 0
    for index, spec in enumerate(step.artifacts):
        if spec.capture_on != "always" and (spec.capture_on == "success") != passed:
            continue
        matched = []
        for relative in _files(clone):
            if spec.matches(relative.as_posix()):
                matched.append(relative)
                if total + len(matched) > LOCAL_TREE_MAX_FILES:
                    raise TreeError(
                        f"the artifacts of step {step.name!r} are more than"
                        f" {LOCAL_TREE_MAX_FILES} files; narrow its `artifacts:` globs"
                    )
        total += len(matched)
        if not spec.shared:
            lines.append(f"artifact {spec.name}: {len(matched)} files, not passed on (not shared)")
            continue
        lines.append(f"artifact {spec.name}: {len(matched)} files")
        folder = target / str(index)
        copy_files(clone, matched, folder / "files", what=f"the artifacts of step {step.name!r}")
        (folder / _NAME_FILE).write_text(spec.name, encoding="utf-8")
    return lines


def kept_artifacts(pending: Path) -> list[tuple[str, Path]]:
    """What ``collect_artifacts`` kept below ``pending``: (name, folder of its files), in order."""
    if not pending.is_dir():
        return []
    found = []
    for folder in sorted(pending.iterdir(), key=lambda p: int(p.name)):
        found.append((folder.joinpath(_NAME_FILE).read_text(encoding="utf-8"), folder / "files"))
    return found


def download_artifacts(
    kept: Mapping[str, Path], clone: Path, wanted: bool | tuple[str, ...]
) -> list[str]:
    """The artifacts kept so far (all of them, or those ``wanted`` by name), put at their places
    in ``clone``, in the order they were made; the log lines."""
    if wanted is False:
        return []
    names = list(kept) if wanted is True else list(wanted)
    lines = []
    for name in names:
        folder = kept.get(name)
        if folder is None:
            lines.append(f"artifact {name}: no earlier step kept it")
            continue
        what = f"artifact {name}"
        copied = copy_files(folder, tree_files(folder), clone, what=what)
        lines.append(f"artifact {name}: {copied.files} files")
    return lines


# --- caches --------------------------------------------------------------------------------------


def step_caches(step: Step, defined: Mapping[str, CacheSpec]) -> tuple[CacheSpec, ...]:
    """The caches ``step`` names; ``PipelineError`` for one neither predefined nor defined."""
    found = []
    for name in step.caches:
        if name in defined:
            found.append(defined[name])
        elif name in PREDEFINED_CACHES:
            found.append(CacheSpec(name=name, path=PREDEFINED_CACHES[name]))
        elif name == "docker":
            continue  # said in the step's setup: image layers are this machine's own
        else:
            known = ", ".join([*PREDEFINED_CACHES, *defined])
            raise PipelineError(
                f"step {step.name!r} uses cache {name!r}, which is neither predefined nor under"
                f" `definitions: caches:` (caches: {known})"
            )
    return tuple(found)


def cache_folder(spec: CacheSpec, *, clone: Path, home: Path) -> Path | None:
    """Where ``spec`` lives in the step: ``~`` is HOME, other paths are below the clone; None for
    a path outside both (keyless does not write into this machine's own folders)."""
    text = spec.path
    if text == "~" or text.startswith("~/"):
        base, rest = home, text[2:]
    else:
        base, rest = clone, text
    if Path(rest).is_absolute():
        return None
    folder = (base / rest).resolve()
    return folder if folder.is_relative_to(base.resolve()) else None


def _key(spec: CacheSpec, clone: Path) -> str:
    """The cache's name in the state folder: its name, plus for ``key: files:`` a hash of those
    files' content (a new hash is a new cache, as in Bitbucket)."""
    if not spec.key_files:
        return spec.name
    digest = hashlib.sha256()
    for relative in _matching(clone, spec.key_files):
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256((clone / relative).read_bytes()).digest())
    return f"{spec.name}-{digest.hexdigest()[:16]}"


def restore_cache(spec: CacheSpec, *, root: Path, clone: Path, home: Path) -> str:
    """Put the kept cache in place (one expired after a week is dropped first); the log line."""
    folder = cache_folder(spec, clone=clone, home=home)
    if folder is None:
        return f"cache {spec.name}: {spec.path} is outside the clone and HOME, not kept here"
    kept = root / _key(spec, clone)
    saved = kept / _SAVED
    if saved.is_file():
        age = time.time() - saved.stat().st_mtime
        if age > PIPELINE_CACHE_MAX_AGE_DAYS * _SECONDS_PER_DAY:
            shutil.rmtree(kept, ignore_errors=True)
    files = kept / "files"
    if not saved.is_file() or not files.is_dir():
        return f"cache {spec.name}: not found"
    copied = copy_files(files, tree_files(files), folder, what=f"cache {spec.name}")
    return f"cache {spec.name}: restored {copied.files} files into {spec.path}"


def save_cache(spec: CacheSpec, *, root: Path, clone: Path, home: Path) -> str:
    """Keep the step's cache folder unless a cache of that key is kept already (Bitbucket does not
    update a cache until it expires); the log line. Written in full before it is named."""
    folder = cache_folder(spec, clone=clone, home=home)
    if folder is None:
        return f"cache {spec.name}: not saved ({spec.path} is outside the clone and HOME)"
    kept = root / _key(spec, clone)
    if (kept / _SAVED).is_file():
        return f"cache {spec.name}: kept as it was (a cache is not updated until it expires)"
    if not folder.is_dir():
        return f"cache {spec.name}: not saved ({spec.path} does not exist)"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=root))
    try:
        copied = copy_files(
            folder, tree_files(folder), partial / "files", what=f"cache {spec.name}"
        )
        (partial / _SAVED).write_text("")
        shutil.rmtree(kept, ignore_errors=True)
        os.replace(partial, kept)
    except TreeError as exc:
        return f"cache {spec.name}: not saved ({exc.message})"
    except OSError as exc:
        return f"cache {spec.name}: not saved ({exc.strerror})"
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return f"cache {spec.name}: saved {copied.files} files of {spec.path}"
