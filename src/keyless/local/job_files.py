"""The folders ``keyless local run`` gives a command besides its variables: a private HOME (as
``local pipeline`` and ``local workflow`` do) and, as a GitHub job, the runner's environment
files; after the command, what it wrote to them, told by name, never by value.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from keyless.limits import WORKFLOW_STEP_SUMMARY_MAX_BYTES
from keyless.local.workflow.commands import (
    FileCommandError,
    Masker,
    parse_env_file,
    parse_path_file,
    read_command_file,
)

__all__ = ["JobFolders", "job_folders"]

#: The files GitHub's runner creates for every step and names in these variables (GitHub Docs,
#: "Workflow commands for GitHub Actions": environment files; "Variables": default variables).
#: The names are the runner's own (``_runner_file_commands/set_env_<uuid>``, ...).
_GITHUB_FILES: Final = {
    "GITHUB_ENV": "set_env",
    "GITHUB_OUTPUT": "set_output",
    "GITHUB_PATH": "add_path",
    "GITHUB_STATE": "save_state",
    "GITHUB_STEP_SUMMARY": "step_summary",
}
#: The files that hold ``NAME=value`` lines, whose values may be secrets.
_NAME_VALUE_FILES: Final = ("GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_STATE")


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFolders:
    """The job's private HOME and, for GitHub, its environment files (name -> path)."""

    home: Path
    files: Mapping[str, Path] = field(default_factory=dict)

    def variables(self) -> dict[str, str]:
        return {"HOME": str(self.home), **{name: str(path) for name, path in self.files.items()}}

    def report(self) -> list[str]:
        """What the command wrote to the environment files, one line each (plus the summary's
        lines, indented). Values are never shown: the command's ``::add-mask::`` lines went to
        the terminal, not through keyless, so any value may be a secret; the summary is shown
        with every value written to the other files masked."""
        masker = Masker()
        lines: list[str] = []
        for name in _NAME_VALUE_FILES:
            if name not in self.files:
                continue
            try:
                pairs = parse_env_file(read_command_file(self.files[name], what=name), what=name)
            except FileCommandError as exc:
                lines.append(f"${name} is unusable (a GitHub runner would fail the step): {exc}")
                continue
            for _, value in pairs:
                masker.add(value)
            if pairs:
                names = ", ".join(dict.fromkeys(pair_name for pair_name, _ in pairs))
                lines.append(f"${name} got {names} (values not shown)")
        if "GITHUB_PATH" in self.files:
            try:
                folders = parse_path_file(
                    read_command_file(self.files["GITHUB_PATH"], what="GITHUB_PATH")
                )
            except FileCommandError as exc:
                lines.append(f"$GITHUB_PATH is unusable: {exc}")
            else:
                if folders:
                    lines.append(f"$GITHUB_PATH got {', '.join(masker(f) for f in folders)}")
        summary = self.files.get("GITHUB_STEP_SUMMARY")
        size = summary.stat().st_size if summary is not None and summary.exists() else 0
        if size > WORKFLOW_STEP_SUMMARY_MAX_BYTES:
            lines.append(
                f"$GITHUB_STEP_SUMMARY has {size} bytes, more than the"
                f" {WORKFLOW_STEP_SUMMARY_MAX_BYTES} GitHub accepts"
            )
        elif size and summary is not None:
            text = masker(summary.read_text(encoding="utf-8", errors="replace")).rstrip("\n")
            lines.append("$GITHUB_STEP_SUMMARY:")
            lines.extend("  " + line for line in text.splitlines())
        return lines


def job_folders(workdir: Path, *, github: bool, home: Path | None = None) -> JobFolders:
    """Create a private HOME in ``workdir`` (or use ``home``, the user's choice) and, for a
    GitHub job, its empty environment files (0600, in a folder only this user can read)."""
    if home is None:
        home = workdir / "home"
        home.mkdir(mode=0o700)
    home = home.absolute()
    if not github:
        return JobFolders(home=home)
    folder = workdir / "temp" / "_runner_file_commands"
    folder.mkdir(mode=0o700, parents=True)
    token = uuid.uuid4()
    files = {name: folder / f"{stem}_{token}" for name, stem in _GITHUB_FILES.items()}
    for path in files.values():
        path.touch(mode=0o600)
    return JobFolders(home=home, files=files)
