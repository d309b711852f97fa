"""Where a step's files come from, as Bitbucket clones them: a fresh clone of the commit for every
step (or, with ``--working-tree`` or outside git, a copy of the working tree's files), and the
files a commit changed, for ``condition: changesets:``.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from keyless.limits import PIPELINE_GIT_CHECKOUT_SECONDS
from keyless.local.pipeline.model import PipelineError, TriggerKind
from keyless.local.pipeline.plan import PipelinePlan
from keyless.local.worktree import (
    clone_commit,
    copy_files,
    git,
    git_root,
    has_uncommitted_changes,
    working_tree_files,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    folder: Path
    #: The commit each step's clone checks out; None: each step gets a copy of the working tree.
    commit: str | None
    branch: str | None
    #: Said once before the first step: how this differs from Bitbucket's clone.
    notice: str | None
    #: The files `condition: changesets:` looks at; None when git cannot tell.
    changed: frozenset[str] | None

    def fill(self, target: Path) -> str:
        """Put the step's files in ``target`` (an empty folder); the log line."""
        if self.commit is not None:
            clone_commit(self.folder, target, commit=self.commit, branch=self.branch)
            on = f" on branch {self.branch}" if self.branch else ""
            return f"cloned commit {self.commit[:7]}{on} into {target}"
        copied = copy_files(
            self.folder,
            working_tree_files(self.folder),
            target,
            what=f"the working tree {self.folder}",
        )
        return f"copied {copied.files} files of the working tree {self.folder} into {target}"


def read_source(plan: PipelinePlan) -> Source:
    """How the steps of ``plan`` get their files, and what changed for its changesets."""
    folder = plan.clone_dir
    root = git_root(folder)
    commit = plan.commit
    wants_changes = any(step.changesets for group in plan.groups for step in group)
    changed = _changed(folder, plan) if wants_changes and commit and root else None
    notice: str | None = None
    if plan.working_tree:
        notice = (
            "--working-tree: each step starts from a copy of the working tree, uncommitted"
            " changes included (Bitbucket clones the commit)"
        )
        return Source(folder=folder, commit=None, branch=None, notice=notice, changed=changed)
    if root is None or commit is None or root != folder:
        why = (
            "not a git repository with a commit"
            if root is None or commit is None
            else f"not the root of the git repository {root}"
        )
        notice = f"{folder} is {why}: each step starts from a copy of its files, not a clone"
        return Source(folder=folder, commit=None, branch=None, notice=notice, changed=changed)
    if has_uncommitted_changes(folder):
        notice = (
            "uncommitted changes are not in the steps' clones (Bitbucket clones the commit);"
            " --working-tree includes them"
        )
    return Source(folder=folder, commit=commit, branch=plan.branch, notice=notice, changed=changed)


def _changed(folder: Path, plan: PipelinePlan) -> frozenset[str]:
    """Atlassian ("Step options", condition): a pull request's pipeline looks at every commit of
    the pull request (the diff from where it left the destination); any other pipeline only at
    the last commit."""
    commit = str(plan.commit)
    if plan.trigger.kind is TriggerKind.PULL_REQUEST:
        destination = str(plan.trigger.destination)
        base = None
        for ref in (destination, f"origin/{destination}"):
            base = git(folder, "merge-base", ref, commit)
            if base:
                break
        if not base:
            raise PipelineError(
                f"condition: changesets: the destination branch {destination!r} is not in the"
                f" repository at {folder}",
                remedy=f"git fetch origin {destination}  (or give the destination that exists)",
            )
        listed = git(folder, "diff", "--name-only", "-z", base.strip(), commit)
    elif git(folder, "rev-parse", "--verify", "--quiet", f"{commit}^") is not None:
        listed = git(folder, "diff", "--name-only", "-z", f"{commit}^", commit)
    else:  # the first commit: every file it has is new
        listed = git(folder, "ls-tree", "-r", "--name-only", "-z", commit)
    if listed is None:
        raise PipelineError(f"condition: changesets: git could not list what {commit[:7]} changed")
    return frozenset(name for name in listed.split("\0") if name)


def git_checkout(folder: Path) -> tuple[str | None, str | None]:
    """The branch and commit checked out in ``folder`` when it is a git work tree."""

    def git(*argv: str) -> str | None:
        try:
            done = subprocess.run(  # noqa: S603 - fixed git arguments
                ["git", "-C", str(folder), *argv],  # noqa: S607 - git from PATH, as a person runs it
                capture_output=True,
                text=True,
                timeout=PIPELINE_GIT_CHECKOUT_SECONDS,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    branch = git("symbolic-ref", "--quiet", "--short", "HEAD")
    commit = git("rev-parse", "--verify", "--quiet", "HEAD")
    if commit is not None and not re.fullmatch(r"[0-9a-f]{40}", commit):
        commit = None
    return branch, commit
