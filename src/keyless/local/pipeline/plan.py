"""What a local pipeline run runs: the pipeline Bitbucket would choose for the branch (or the
custom one asked for), the steps kept of it, the variables and who runs it. Every refusal
happens here, before anything runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeAlias

from keyless.ci.base import JobRun
from keyless.errors import UsageError
from keyless.local.pipeline.parse import (
    Pipeline,
    PipelineError,
    PipelineFile,
    Step,
    Variables,
    load_pipeline_file,
    load_variables,
)

#: The branch and commit checked out in a folder, each None when it cannot be told (not a git
#: work tree); ``keyless.local.pipeline.run.git_checkout`` asks git.
CheckoutReader: TypeAlias = Callable[[Path], tuple[str | None, str | None]]

# --- what to run ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelinePlan:
    """A selected pipeline, the steps to run of it, and who runs it."""

    file: PipelineFile
    pipeline: Pipeline
    groups: tuple[tuple[Step, ...], ...]
    repository: str
    branch: str
    commit: str | None
    variables: Variables
    identities: Path

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
) -> PipelinePlan:
    """Parse ``path`` and choose what to run; every refusal happens here, before anything runs.
    ``checkout`` names the branch and commit of ``path``'s folder (``run.git_checkout``)."""
    file = load_pipeline_file(path)
    clone_dir = path.resolve().parent
    checkout_branch, commit = checkout(clone_dir)
    chosen_branch = branch or checkout_branch or "main"
    pipeline = file.select(branch=chosen_branch, custom=custom)
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
    slug = repository or _slug(clone_dir.name)
    loaded = load_variables(variables) if variables is not None else Variables()
    if pipeline.variables:
        loaded = replace(loaded, repository={**pipeline.variables, **loaded.repository})
    try:
        JobRun(branch=chosen_branch)
    except UsageError as exc:
        raise PipelineError(f"--branch: {exc.message}") from None
    return PipelinePlan(
        file=file,
        pipeline=pipeline,
        groups=groups,
        repository=slug,
        branch=chosen_branch,
        commit=commit,
        variables=loaded,
        identities=identities,
    )


def _slug(name: str) -> str:
    text = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-._")
    return text or "repository"
