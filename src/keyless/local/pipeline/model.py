"""The pipeline model as Bitbucket reads it: pipelines, steps, commands, pipes and triggers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeAlias

from keyless.compat import StrEnum
from keyless.errors import UsageError
from keyless.local.pipeline.branch_patterns import branch_glob

#: Pipes keyless runs itself, by name without version, and the ``keyless pipe`` that does it.
EMULATED_PIPES: Final[Mapping[str, str]] = {
    "atlassian/aws-s3-deploy": "aws-s3-deploy",
    "atlassian/aws-cloudfront-invalidate": "aws-cloudfront-invalidate",
}


class PipelineError(UsageError):
    """The pipeline file, the variables or identities file, or the selection is unusable."""

    kind = "pipeline"


# --- the pipeline file ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PipeCall:
    """``- pipe: NAME:VERSION`` with its ``variables:``, values as written (``$VAR`` unexpanded)."""

    ref: str
    variables: Mapping[str, str]

    @property
    def name(self) -> str:
        """The pipe without version or ``docker://``: ``atlassian/aws-s3-deploy``."""
        bare = self.ref.removeprefix("docker://")
        return bare.rsplit(":", 1)[0] if ":" in bare.rpartition("/")[2] else bare

    @property
    def emulated(self) -> str | None:
        return EMULATED_PIPES.get(self.name)


Command: TypeAlias = str | PipeCall


def command_text(command: Command) -> str:
    return f"pipe: {command.ref}" if isinstance(command, PipeCall) else command


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    name: str
    script: tuple[Command, ...]
    after_script: tuple[Command, ...] = ()
    oidc: bool = False
    #: `oidc: {audiences: [...]}`: added to the workspace audience.
    audiences: tuple[str, ...] = ()
    deployment: str | None = None
    image: str | None = None
    #: What Bitbucket would do that this machine does not, said once before the step runs.
    notes: tuple[str, ...] = ()
    max_time_minutes: int | None = None
    #: `trigger: manual`: the pipeline pauses before it.
    manual: bool = False
    #: `services:`: refused when the step is to run (no service containers here).
    services: tuple[str, ...] = ()
    #: `artifacts:` (globs relative to the clone) kept for the later steps.
    artifacts: tuple[ArtifactSpec, ...] = ()
    #: `artifacts: download:`: True every earlier artifact, False none, or those named.
    download_artifacts: bool | tuple[str, ...] = True
    #: `caches:` by name (predefined or under `definitions: caches:`).
    caches: tuple[str, ...] = ()
    #: `condition: changesets:`: the step runs only when a changed file counts.
    #: `condition: changesets:` of the step and of its stage: the step runs only when each holds.
    changesets: tuple[Changesets, ...] = ()
    #: Keys of `condition:` keyless does not evaluate; the step is refused when it is to run.
    unsupported_condition: tuple[str, ...] = ()
    #: `clone: enabled: false`: the step starts in an empty folder.
    clone: bool = True
    #: `fail-fast:` of the step, else of its `parallel:`: a failure stops the group's others.
    fail_fast: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactSpec:
    """One artifact of a step: a glob of the plain list (named by the glob), or an entry of
    `artifacts: upload:` (the bitbucket-pipelines schema's `artifacts_upload`)."""

    name: str
    paths: tuple[str, ...]
    ignore: tuple[str, ...] = ()
    #: `depth:`: files at most this many path segments below the clone.
    depth: int | None = None
    #: `type: shared` (the default) reaches later steps; `scoped` and `test-reports` do not.
    shared: bool = True
    #: `capture-on:` success (the default), failed or always.
    capture_on: str = "success"

    def matches(self, relative: str) -> bool:
        if self.depth is not None and relative.count("/") + 1 > self.depth:
            return False
        if not any(branch_glob(p).fullmatch(relative) for p in self.paths):
            return False
        return not any(branch_glob(p).fullmatch(relative) for p in self.ignore)


@dataclass(frozen=True, slots=True, kw_only=True)
class Changesets:
    """``condition: changesets:``: a changed file counts when it matches one of
    ``includePaths`` (any file, without them) and none of ``excludePaths``."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def counts(self, changed: str) -> bool:
        included = not self.include or any(branch_glob(p).fullmatch(changed) for p in self.include)
        return included and not any(branch_glob(p).fullmatch(changed) for p in self.exclude)


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheSpec:
    """A cache: the folder it keeps (``~`` the step's HOME, else relative to the clone) and, for
    ``key: files:``, the files whose content names it."""

    name: str
    path: str
    key_files: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomVariable:
    """One ``- name:`` of a custom pipeline's ``variables:``, asked for when it runs."""

    name: str
    default: str | None = None
    #: ``allowed-values:``: the value must be one of them (empty: any value).
    allowed: tuple[str, ...] = ()


class TriggerKind(StrEnum):
    BRANCH = "branch"
    TAG = "tag"
    PULL_REQUEST = "pull request"
    CUSTOM = "custom"


@dataclass(frozen=True, slots=True, kw_only=True)
class Trigger:
    """What started the pipeline: a push to a branch or of a tag, a pull request (source branch
    ``name`` into ``destination``), or a person running custom pipeline ``name``."""

    kind: TriggerKind
    name: str
    #: A pull request's destination branch.
    destination: str | None = None
    #: The branch a custom pipeline runs on (Bitbucket runs it against a branch's commit).
    branch: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pipeline:
    """One pipeline of the file: groups run one after another, a group's steps (a `parallel:`)
    one after another too, here."""

    key: str
    groups: tuple[tuple[Step, ...], ...]
    #: A custom pipeline's `variables:`: what Bitbucket asks for when it is run.
    prompts: tuple[CustomVariable, ...] = ()

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(step for group in self.groups for step in group)


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineFile:
    path: Path
    default: Pipeline | None
    #: `branches:`, `tags:` and `pull-requests:` in file order: (glob pattern, pipeline).
    branches: tuple[tuple[str, Pipeline], ...]
    custom: Mapping[str, Pipeline]
    tags: tuple[tuple[str, Pipeline], ...] = ()
    pull_requests: tuple[tuple[str, Pipeline], ...] = ()
    #: `definitions: caches:` by name.
    caches: Mapping[str, CacheSpec] = field(default_factory=dict)

    def select(
        self,
        trigger: Trigger | None = None,
        *,
        branch: str | None = None,
        custom: str | None = None,
    ) -> Pipeline:
        """The pipeline Bitbucket starts for ``trigger`` (Atlassian's "Pipeline start
        conditions"): a custom pipeline by name; a tag by ``tags:`` only (``default:`` runs on
        pushes "excluding tag pushes"); a pull request by its source branch under
        ``pull-requests:``; a branch by ``branches:``, else ``default:``. Within a section an exact
        name wins over glob patterns, patterns are tried in file order. ``branch`` and
        ``custom`` are short for a branch or custom trigger."""
        if trigger is None:
            if custom is not None:
                trigger = Trigger(kind=TriggerKind.CUSTOM, name=custom, branch=branch)
            else:
                trigger = Trigger(kind=TriggerKind.BRANCH, name=branch or "main")
        if trigger.kind is TriggerKind.CUSTOM:
            if trigger.name not in self.custom:
                known = ", ".join(self.custom) or "none"
                raise PipelineError(
                    f"{self.path}: no custom pipeline {trigger.name!r} (custom pipelines: {known})"
                )
            return self.custom[trigger.name]
        section, where = {
            TriggerKind.TAG: (self.tags, "tags"),
            TriggerKind.PULL_REQUEST: (self.pull_requests, "pull-requests"),
            TriggerKind.BRANCH: (self.branches, "branches"),
        }[trigger.kind]
        found = _match(section, trigger.name)
        if found is not None:
            return found
        if trigger.kind is TriggerKind.BRANCH and self.default is not None:
            return self.default
        known = ", ".join(p for p, _ in section) or "none"
        fallback = " and no `default:`" if trigger.kind is TriggerKind.BRANCH else ""
        raise PipelineError(
            f"{self.path}: no pipeline for {trigger.kind.value} {trigger.name!r}{fallback}"
            f" ({where} patterns: {known}); Bitbucket would start none",
            remedy="Choose another --branch, --tag, --pull-request SOURCE:DEST or --custom NAME.",
        )


def _match(section: tuple[tuple[str, Pipeline], ...], name: str) -> Pipeline | None:
    for pattern, pipeline in section:
        if pattern == name:
            return pipeline
    for pattern, pipeline in section:
        if branch_glob(pattern).fullmatch(name):
            return pipeline
    return None
