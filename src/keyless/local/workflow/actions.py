"""The ``uses:`` a local job can run: ``actions/checkout`` (the working tree's files),
``actions/setup-python`` (an interpreter already on this machine), and
``aws-actions/configure-aws-credentials`` and keyless' own action (both as ``keyless action
configure-aws-credentials``, with the same inputs and outputs, docs/github-action.md). Anything
else is refused by name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

# The input table of keyless' own action: one source for both emulations.
from keyless.action import INPUTS, env_name
from keyless.limits import WORKFLOW_PYTHON_PROBE_SECONDS
from keyless.local.workflow.parse import WorkflowError
from keyless.local.worktree import TreeError, copy_files, working_tree_files

__all__ = ["ActionCommand", "ActionDone", "checkout", "resolve_action", "setup_python"]

_CHECKOUT: Final = re.compile(r"actions/checkout@\S+")
_SETUP_PYTHON: Final = re.compile(r"actions/setup-python@\S+")
_CONFIGURE: Final = re.compile(r"aws-actions/configure-aws-credentials@\S+")
_KEYLESS: Final = re.compile(r"[A-Za-z0-9-]+/keyless@\S+")
#: How keyless' action.yml runs its step: the venv's keyless program, quoted, then the command.
_KEYLESS_STEP: Final = re.compile(r"keyless[\"']?\s+action\s+configure-aws-credentials\b")
_VERSION: Final = re.compile(r"\d+(?:\.\d+){0,2}")
_PROBE: Final = "import sys; print('%d.%d.%d' % sys.version_info[:3])"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionCommand:
    """A ``uses:`` that runs as a process: its argv and the ``INPUT_*`` variables it reads."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionDone:
    """A ``uses:`` done in this process: what to log, folders for PATH, its outputs and env."""

    lines: tuple[str, ...] = ()
    path: tuple[str, ...] = ()
    outputs: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)


def is_keyless_action(uses: str, repo_dir: Path) -> bool:
    if _KEYLESS.fullmatch(uses):
        return True
    if uses.rstrip("/") in (".", "./"):
        action = repo_dir / "action.yml"
        try:
            text = action.read_text(encoding="utf-8")
        except OSError:
            return False
        return _KEYLESS_STEP.search(text) is not None
    return False


def resolve_action(uses: str, repo_dir: Path) -> str:
    """Which emulation runs ``uses``: checkout, setup-python, configure-aws-credentials or
    keyless; ``WorkflowError`` naming it for any other action."""
    if _CHECKOUT.fullmatch(uses):
        return "checkout"
    if _SETUP_PYTHON.fullmatch(uses):
        return "setup-python"
    if _CONFIGURE.fullmatch(uses):
        return "configure-aws-credentials"
    if is_keyless_action(uses, repo_dir):
        return "keyless"
    raise WorkflowError(
        f"uses: {uses} is not emulated by keyless local workflow; it runs actions/checkout,"
        " actions/setup-python, aws-actions/configure-aws-credentials and keyless' own action"
    )


def configure_command(kind: str, with_: Mapping[str, str]) -> ActionCommand:
    """``keyless action configure-aws-credentials`` with ``with:`` as ``INPUT_*`` variables and
    each input's default; inputs the action does not declare are dropped with GitHub's warning."""
    declared = {item.name: item for item in INPUTS if kind == "keyless" or not item.keyless_only}
    env = {env_name(item.name): item.default for item in declared.values()}
    unexpected = [name for name in with_ if name not in declared]
    for name, value in with_.items():
        if name in declared:
            env[env_name(name)] = value
    notes: tuple[str, ...] = ()
    if unexpected:
        valid = ", ".join(f"'{name}'" for name in declared)
        notes = (
            f"Warning: Unexpected input(s) {', '.join(map(repr, unexpected))}, valid inputs"
            f" are [{valid}]",
        )
    argv = (sys.executable, "-m", "keyless", "action", "configure-aws-credentials")
    return ActionCommand(argv=argv, env=env, notes=notes)


# --- actions/checkout ----------------------------------------------------------------------------


def checkout(repo_dir: Path, workspace: Path, with_: Mapping[str, str]) -> ActionDone:
    """The working tree's files copied into the workspace (``path:`` below it)."""
    repository = with_.get("repository", "")
    if repository:
        raise WorkflowError(
            f"actions/checkout of another repository ({repository}) is not emulated; only the"
            " working tree is checked out"
        )
    target = workspace / with_.get("path", "")
    if not target.resolve().is_relative_to(workspace.resolve()):
        raise WorkflowError("actions/checkout path: must stay inside $GITHUB_WORKSPACE")
    try:
        copied = copy_files(
            repo_dir, working_tree_files(repo_dir), target, what=f"the working tree {repo_dir}"
        ).files
    except TreeError as exc:
        raise WorkflowError(exc.message) from None
    return ActionDone(
        lines=(f"Copied {copied} files of the working tree {repo_dir} (not a clone of a commit)",)
    )


# --- actions/setup-python -------------------------------------------------------------------------


def _probe(python: Path) -> str | None:
    try:
        done = subprocess.run(  # noqa: S603 - an interpreter, a fixed program
            [str(python), "-c", _PROBE],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=WORKFLOW_PYTHON_PROBE_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = done.stdout.strip()
    return version if done.returncode == 0 and _VERSION.fullmatch(version) else None


def _matches(version: str, wanted: str) -> bool:
    return version == wanted or version.startswith(wanted + ".")


def _pyenv_root(env: Mapping[str, str]) -> Path | None:
    if env.get("PYENV_ROOT"):
        return Path(env["PYENV_ROOT"])
    pyenv = shutil.which("pyenv", path=env.get("PATH"))
    if pyenv is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - fixed pyenv arguments
            [pyenv, "root"],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=WORKFLOW_PYTHON_PROBE_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


def find_python(wanted: str, env: Mapping[str, str]) -> tuple[Path, str] | None:
    """An interpreter of version ``wanted`` (``3.12`` or ``3.12.1``) and its full version: the
    PATH's ``python3.X`` (pyenv shims skipped), else ``$(pyenv root)/versions/*``."""
    parts = wanted.split(".")
    names = [f"python{'.'.join(parts[:2])}"] if len(parts) >= 2 else []
    names += ["python3", "python"]
    seen: set[Path] = set()
    for folder in (env.get("PATH") or "").split(os.pathsep):
        if not folder or "shims" in Path(folder).parts:
            continue
        for name in names:
            candidate = Path(folder) / name
            if candidate in seen or not os.access(candidate, os.X_OK):
                continue
            seen.add(candidate)
            version = _probe(candidate)
            if version is not None and _matches(version, wanted):
                return candidate, version
    root = _pyenv_root(env)
    if root is not None and (root / "versions").is_dir():
        for version_dir in sorted((root / "versions").iterdir(), reverse=True):
            python = version_dir / "bin" / "python"
            if _matches(version_dir.name, wanted) and os.access(python, os.X_OK):
                version = _probe(python)
                if version is not None and _matches(version, wanted):
                    return python, version
    return None


def setup_python(with_: Mapping[str, str], env: Mapping[str, str]) -> ActionDone:
    wanted = with_.get("python-version", "").strip()
    if not wanted:
        raise WorkflowError(
            "actions/setup-python: give `python-version:` (python-version-file is not read here)"
        )
    if not _VERSION.fullmatch(wanted):
        raise WorkflowError(
            f"actions/setup-python: python-version {wanted!r} is not a plain version such as 3.12;"
            " ranges, lists and PyPy are not resolved here"
        )
    found = find_python(wanted, env)
    if found is None:
        raise WorkflowError(
            f"actions/setup-python: no Python {wanted} on this machine (PATH, pyenv versions);"
            f" install it (e.g. pyenv install {wanted}) or change python-version"
        )
    python, version = found
    folder = str(python.parent)
    return ActionDone(
        lines=(f"Successfully set up Python {version} from {folder} (this machine's)",),
        path=(folder,),
        outputs={"python-version": version, "python-path": str(python)},
        env={"pythonLocation": str(python.parent.parent)},
    )
