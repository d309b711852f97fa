"""What a local pipeline run runs: the pipeline Bitbucket would choose for the branch (or the
custom one asked for), the steps kept of it, the variables and who runs it. Every refusal
happens here, before anything runs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeAlias

from keyless.ci.base import JobRun
from keyless.errors import UsageError
from keyless.limits import (
    PIPELINE_MAX_PR_ID,
)
from keyless.local.pipeline.files import step_caches
from keyless.local.pipeline.model import (
    CacheSpec,
    Pipeline,
    PipelineError,
    PipelineFile,
    Step,
    Trigger,
    TriggerKind,
)
from keyless.local.pipeline.parse import load_pipeline_file
from keyless.local.pipeline.schema import validate_pipeline_file
from keyless.local.pipeline.variables import Variables, answer_prompts, load_variables
from keyless.local.worktree import git

#: The branch and commit checked out in a folder, each None when it cannot be told (not a git
#: work tree); ``keyless.local.pipeline.source.git_checkout`` asks git.
CheckoutReader: TypeAlias = Callable[[Path], tuple[str | None, str | None]]
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# --- what to run ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelinePlan:
    """A selected pipeline, the steps to run of it, and who runs it."""

    file: PipelineFile
    pipeline: Pipeline
    groups: tuple[tuple[Step, ...], ...]
    repository: str
    trigger: Trigger
    commit: str | None
    variables: Variables
    identities: Path
    #: `trigger: manual` steps run too (--manual, or --step naming one).
    manual: bool = False
    #: Steps start from the working tree as it is, uncommitted changes included.
    working_tree: bool = False

    @property
    def pr_id(self) -> int:
        """BITBUCKET_PR_ID: made up, stable for a source and destination (a PR keeps its id)."""
        text = f"{self.trigger.name}:{self.trigger.destination}".encode()
        return 1 + int.from_bytes(hashlib.sha256(text).digest()[:2], "big") % PIPELINE_MAX_PR_ID

    @property
    def branch(self) -> str | None:
        """BITBUCKET_BRANCH: the pushed or source branch; none for a tag."""
        if self.trigger.kind is TriggerKind.TAG:
            return None
        if self.trigger.kind is TriggerKind.CUSTOM:
            return self.trigger.branch
        return self.trigger.name

    @property
    def clone_dir(self) -> Path:
        """Where the steps run: the folder of the pipeline file, the repository's root."""
        return self.file.path.resolve().parent

    @property
    def deployments(self) -> tuple[str, ...]:
        names = (step.deployment for group in self.groups for step in group)
        return tuple(dict.fromkeys(name for name in names if name))


def plan_pipeline(
    path: Path,
    *,
    identities: Path,
    checkout: CheckoutReader,
    step: str | None = None,
    deployment: str | None = None,
    branch: str | None = None,
    custom: str | None = None,
    repository: str | None = None,
    variables: Path | None = None,
    tag: str | None = None,
    pull_request: str | None = None,
    values: Sequence[str] = (),
    manual: bool = False,
    working_tree: bool = False,
    notice: Callable[[str], None] | None = None,
) -> PipelinePlan:
    """Parse ``path`` and choose what to run; every refusal happens here, before anything runs.
    ``checkout`` names the branch and commit of ``path``'s folder (``source.git_checkout``)."""
    validate_pipeline_file(path, notice=notice)
    file = load_pipeline_file(path)
    clone_dir = path.resolve().parent
    checkout_branch, commit = checkout(clone_dir)
    chosen_branch = branch or checkout_branch or "main"
    trigger = _trigger(
        branch=chosen_branch, explicit_branch=branch, custom=custom, tag=tag, pr=pull_request
    )
    for name in (trigger.name, trigger.destination):
        if name is not None and trigger.kind is not TriggerKind.CUSTOM:
            try:
                JobRun(branch=name)
            except UsageError as exc:
                raise PipelineError(f"{trigger.kind.value}: {exc.message}") from None
    pipeline = file.select(trigger)
    groups = _chosen_groups(pipeline, step=step, deployment=deployment)
    _check_runnable(groups, pipeline=pipeline, caches=file.caches)
    slug = repository or default_repository(clone_dir)
    loaded = load_variables(variables) if variables is not None else Variables()
    loaded = replace(loaded, pipeline=answer_prompts(pipeline, loaded, _pairs(values)))
    return PipelinePlan(
        file=file,
        pipeline=pipeline,
        groups=groups,
        repository=slug,
        trigger=trigger,
        commit=commit,
        variables=loaded,
        identities=identities,
        manual=manual or step is not None,
        working_tree=working_tree,
    )


def _chosen_groups(
    pipeline: Pipeline, *, step: str | None, deployment: str | None
) -> tuple[tuple[Step, ...], ...]:
    """The pipeline's groups with only the steps ``--step`` and ``--deployment`` choose; refused
    when none is left."""
    groups = pipeline.groups
    if step is not None or deployment is not None:
        groups = tuple(
            kept
            for group in groups
            if (
                kept := tuple(
                    s
                    for s in group
                    if (step is None or s.name == step)
                    and (deployment is None or s.deployment == deployment)
                )
            )
        )
    if not groups:
        wanted = f"named {step!r}" if step is not None else f"deploying to {deployment!r}"
        shown = "; ".join(
            s.name + (f" (deployment: {s.deployment})" if s.deployment else "")
            for s in pipeline.steps
        )
        raise PipelineError(f"pipeline {pipeline.key} has no step {wanted}; its steps: {shown}")
    return groups


def _check_runnable(
    groups: Sequence[Sequence[Step]], *, pipeline: Pipeline, caches: Mapping[str, CacheSpec]
) -> None:
    """Refuse a chosen step keyless cannot run as Bitbucket would: an unknown cache, a
    `condition:` other than changesets, services."""
    for chosen in (s for group in groups for s in group):
        step_caches(chosen, caches)  # an unknown cache name is refused before anything runs
        if chosen.unsupported_condition:
            raise PipelineError(
                f"step {chosen.name!r} of pipeline {pipeline.key} has `condition:`"
                f" {', '.join(chosen.unsupported_condition)}, which keyless local pipeline does not"
                " evaluate (it evaluates `condition: changesets:`)",
                remedy="Choose the other steps with --step NAME, or run the pipeline in Bitbucket.",
            )
        if chosen.services:
            raise PipelineError(
                f"step {chosen.name!r} of pipeline {pipeline.key} needs services"
                f" ({', '.join(chosen.services)}): keyless local pipeline starts no service"
                " containers",
                remedy="Start the service yourself and choose the other steps with --step NAME,"
                " or run this pipeline in Bitbucket.",
            )


def _trigger(
    *, branch: str, explicit_branch: str | None, custom: str | None, tag: str | None, pr: str | None
) -> Trigger:
    given = [
        flag
        for flag, value in (("--custom", custom), ("--tag", tag), ("--pull-request", pr))
        if value is not None
    ]
    if len(given) > 1 or (explicit_branch is not None and (tag is not None or pr is not None)):
        raise PipelineError(
            f"give one of --branch, --tag, --pull-request (and --custom with --branch), not"
            f" {' and '.join(given)}"
        )
    if custom is not None:
        return Trigger(kind=TriggerKind.CUSTOM, name=custom, branch=branch)
    if tag is not None:
        return Trigger(kind=TriggerKind.TAG, name=tag)
    if pr is not None:
        source, sep, destination = pr.partition(":")
        if not sep or not source or not destination:
            raise PipelineError(
                f"--pull-request {pr!r} must be SOURCE:DEST", remedy="--pull-request feature/x:main"
            )
        return Trigger(kind=TriggerKind.PULL_REQUEST, name=source, destination=destination)
    return Trigger(kind=TriggerKind.BRANCH, name=branch)


def _pairs(values: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not _NAME.fullmatch(name):
            raise PipelineError(f"--var {item.split('=')[0]!r} must be NAME=VALUE")
        found[name] = value
    return found


def default_repository(folder: Path) -> str:
    """The repository slug of ``folder`` when --repository is not given: the last part of its git
    remote's URL (``origin``, else the only remote), as Bitbucket names a repository; else the
    folder's name."""
    remotes = (git(folder, "remote") or "").split()
    remote = "origin" if "origin" in remotes else remotes[0] if len(remotes) == 1 else None
    url = (git(folder, "remote", "get-url", remote) or "").strip() if remote else ""
    # https://bitbucket.org/acme/site.git, git@bitbucket.org:acme/site.git, /srv/git/site
    name = re.split(r"[/:]", url.rstrip("/"))[-1].removesuffix(".git") if url else ""
    return _slug(name or folder.name)


def _slug(name: str) -> str:
    text = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-._")
    return text or "repository"
