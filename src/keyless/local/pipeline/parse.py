"""Reading ``bitbucket-pipelines.yml`` and the variables file: the pipeline model (pipelines,
steps, commands and pipes) as Bitbucket reads it, within the bounds of ``keyless.yamlsafe``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, TypeAlias

from keyless.compat import StrEnum
from keyless.errors import UsageError
from keyless.yamlsafe import load_yaml_file

#: Pipes keyless runs itself, by name without version, and the ``keyless pipe`` that does it.
EMULATED_PIPES: Final[Mapping[str, str]] = {
    "atlassian/aws-s3-deploy": "aws-s3-deploy",
    "atlassian/aws-cloudfront-invalidate": "aws-cloudfront-invalidate",
}
#: Keys of a step keyless reads, or knows and leaves alone (anything else is reported: a typo
#: such as `odic: true` must not pass silently).
_STEP_KEYS: Final = frozenset(
    {
        "name",
        "script",
        "after-script",
        "oidc",
        "deployment",
        "image",
        "services",
        "trigger",
        "max-time",
        "condition",
        "caches",
        "artifacts",
        "size",
        "clone",
        "runs-on",
        "fail-fast",
        "output-variables",
    }
)
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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


_STARSTAR: Final = "\x00**"
_STAR: Final = "\x00*"
_ANY: Final = "\x00?"
#: A branch glob state: element index, alternative (-1 outside `{...}`), offset in it.
_State: TypeAlias = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class BranchGlob:
    """Bitbucket's branch globs: ``*`` within a path segment, ``**`` across ``/``, ``{a,b}``.

    Matched by following every state at once (an NFA), so the work is at most the branch's
    length times the pattern's, where a backtracking regex took exponential time on ``*a*a*a``.
    """

    elements: tuple[str | tuple[str, ...], ...]

    def fullmatch(self, text: str) -> bool:
        states = self._closure({(0, -1, 0)})
        for char in text:
            states = self._closure(self._step(states, char))
            if not states:
                return False
        return (len(self.elements), -1, 0) in states

    def _closure(self, states: set[_State]) -> set[_State]:
        done: set[_State] = set()
        pending = list(states)
        while pending:
            state = pending.pop()
            if state in done:
                continue
            done.add(state)
            index, option, offset = state
            if index == len(self.elements):
                continue
            element = self.elements[index]
            if isinstance(element, tuple):
                if option < 0:
                    pending.extend((index, n, 0) for n in range(len(element)))
                elif offset == len(element[option]):
                    pending.append((index + 1, -1, 0))
            elif element in (_STAR, _STARSTAR):
                pending.append((index + 1, -1, 0))
        return done

    def _step(self, states: set[_State], char: str) -> set[_State]:
        following: set[_State] = set()
        for index, option, offset in states:
            if index == len(self.elements):
                continue
            element = self.elements[index]
            if isinstance(element, tuple):
                chosen = element[option] if option >= 0 else ""
                if offset < len(chosen) and chosen[offset] == char:
                    following.add((index, option, offset + 1))
            elif element == _STARSTAR:
                if char != "\n":  # as the regex `.*` it replaces
                    following.add(_state_at(index))
            elif element == _STAR:
                if char != "/":
                    following.add(_state_at(index))
            elif element == _ANY:
                if char != "/":
                    following.add(_state_at(index + 1))
            elif element == char:
                following.add(_state_at(index + 1))
        return following


def _state_at(index: int) -> _State:
    return (index, -1, 0)


@functools.lru_cache(maxsize=256)
def branch_glob(pattern: str) -> BranchGlob:
    """``pattern`` as a ``BranchGlob``."""
    out: list[str | tuple[str, ...]] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            out.append(_STARSTAR)
            index += 2
            continue
        if char == "*":
            out.append(_STAR)
        elif char == "?":
            out.append(_ANY)
        elif char == "{" and "}" in pattern[index:]:
            end = pattern.index("}", index)
            out.append(tuple(pattern[index + 1 : end].split(",")))
            index = end
        else:
            out.append(char)
        index += 1
    return BranchGlob(tuple(out))


def load_pipeline_file(path: Path) -> PipelineFile:
    """Parse ``bitbucket-pipelines.yml`` (YAML anchors and ``<<:`` merges included, within the
    bounds of ``keyless.yamlsafe``)."""
    document = load_yaml_file(path, error=PipelineError)
    if not isinstance(document, dict) or not isinstance(document.get("pipelines"), dict):
        raise PipelineError(
            f"{path} has no `pipelines:` mapping",
            remedy="A Bitbucket pipeline file starts with `pipelines:` and a `default:` list.",
        )
    context = _Context(
        path=path,
        image=_image(document.get("image"), "image", path),
        clone=_clone(document.get("clone"), "clone", path, default=True),
    )
    options = document.get("options")
    if isinstance(options, dict) and "oidc" in options:
        context = replace(context, oidc=_oidc(options["oidc"], "options.oidc", path))
    pipelines = document["pipelines"]
    default = None
    if pipelines.get("default") is not None:
        default = _pipeline("default", pipelines["default"], context)
    branches = tuple(
        (str(pattern), _pipeline(f"branches: {pattern}", items, context))
        for pattern, items in _mapping(pipelines.get("branches"), "pipelines.branches", path)
    )
    tags = tuple(
        (str(pattern), _pipeline(f"tags: {pattern}", items, context))
        for pattern, items in _mapping(pipelines.get("tags"), "pipelines.tags", path)
    )
    pull_requests = tuple(
        (str(pattern), _pipeline(f"pull-requests: {pattern}", items, context))
        for pattern, items in _mapping(
            pipelines.get("pull-requests"), "pipelines.pull-requests", path
        )
    )
    custom = {
        str(name): _pipeline(f"custom: {name}", items, context)
        for name, items in _mapping(pipelines.get("custom"), "pipelines.custom", path)
    }
    if default is None and not (branches or custom or tags or pull_requests):
        raise PipelineError(
            f"{path}: `pipelines:` has no default, branches, tags, pull-requests or custom pipeline"
        )
    definitions = document.get("definitions")
    caches = definitions.get("caches") if isinstance(definitions, dict) else None
    return PipelineFile(
        path=path,
        default=default,
        branches=branches,
        custom=custom,
        tags=tags,
        pull_requests=pull_requests,
        caches={
            str(name): _cache_spec(str(name), spec, path)
            for name, spec in _mapping(caches, "definitions.caches", path)
        },
    )


def _cache_spec(name: str, spec: object, path: Path) -> CacheSpec:
    where = f"definitions.caches.{name}"
    if isinstance(spec, str) and spec.strip():
        return CacheSpec(name=name, path=spec.strip())
    if isinstance(spec, dict) and isinstance(spec.get("path"), str) and spec["path"].strip():
        key = spec.get("key")
        files = key.get("files") if isinstance(key, dict) else None
        if key is not None and (
            not isinstance(files, list)
            or not files
            or not all(isinstance(f, str) and f for f in files)
        ):
            raise PipelineError(f"{path}: {where}.key must have `files:` listing files")
        return CacheSpec(name=name, path=spec["path"].strip(), key_files=tuple(files or ()))
    raise PipelineError(
        f"{path}: {where} must be a folder or {{key: {{files: [...]}}, path: FOLDER}}"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Context:
    path: Path
    image: str | None = None
    #: `options: oidc:`: (enabled, audiences) for steps that do not say.
    oidc: tuple[bool, tuple[str, ...]] = (False, ())
    #: The file's `clone: enabled:`.
    clone: bool = True


def _mapping(value: object, where: str, path: Path) -> list[tuple[object, object]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise PipelineError(f"{path}: {where} must be a mapping")
    return list(value.items())


def _pipeline(key: str, items: object, context: _Context) -> Pipeline:
    where = f"pipelines.{key.replace(': ', '.')}"
    if not isinstance(items, list) or not items:
        raise PipelineError(f"{context.path}: {where} must be a non-empty list of steps")
    groups: list[tuple[Step, ...]] = []
    prompts: tuple[CustomVariable, ...] = ()
    for index, item in enumerate(items):
        at = f"{where}[{index}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise PipelineError(f"{context.path}: {at} must be one of step, parallel, stage")
        kind, body = next(iter(item.items()))
        if kind == "step":
            groups.append((_step(body, at + ".step", context),))
        elif kind == "parallel":
            groups.append(_parallel(body, at + ".parallel", context))
        elif kind == "stage":
            groups.extend((step,) for step in _stage(body, at + ".stage", context))
        elif kind == "variables" and index == 0:
            prompts = _custom_variables(body, at + ".variables", context.path)
        else:
            raise PipelineError(
                f"{context.path}: {at} is `{kind}:`; expected step, parallel or stage"
            )
    if not groups:
        raise PipelineError(f"{context.path}: {where} has no step")
    return Pipeline(key=key, groups=tuple(groups), prompts=prompts)


def _parallel(body: object, where: str, context: _Context) -> tuple[Step, ...]:
    items = body.get("steps") if isinstance(body, dict) else body
    if not isinstance(items, list) or not items:
        raise PipelineError(f"{context.path}: {where} must list steps")
    fail_fast = body.get("fail-fast", False) if isinstance(body, dict) else False
    if not isinstance(fail_fast, bool):
        raise PipelineError(f"{context.path}: {where}.fail-fast must be true or false")
    steps = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "step" not in item:
            raise PipelineError(f"{context.path}: {where}[{index}] must be a `step:`")
        at = f"{where}[{index}].step"
        step = _step(item["step"], at, context)
        own = item["step"].get("fail-fast") if isinstance(item["step"], dict) else None
        if own is not None and not isinstance(own, bool):
            raise PipelineError(f"{context.path}: {at}.fail-fast must be true or false")
        steps.append(replace(step, fail_fast=fail_fast if own is None else own))
    return tuple(steps)


def _stage(body: object, where: str, context: _Context) -> list[Step]:
    if not isinstance(body, dict) or not isinstance(body.get("steps"), list):
        raise PipelineError(f"{context.path}: {where} must have `steps:`")
    deployment = body.get("deployment")
    if deployment is not None and not isinstance(deployment, str):
        raise PipelineError(f"{context.path}: {where}.deployment must be a name")
    # A stage's condition skips all of its steps: each step carries it.
    changesets, unsupported = _condition(body.get("condition"), f"{where}.condition", context.path)
    steps = []
    for index, item in enumerate(body["steps"]):
        if not isinstance(item, dict) or "step" not in item:
            raise PipelineError(f"{context.path}: {where}.steps[{index}] must be a `step:`")
        step = _step(item["step"], f"{where}.steps[{index}].step", context)
        if deployment is not None:
            step = replace(step, deployment=deployment)
        if changesets is not None:
            step = replace(step, changesets=(*step.changesets, changesets))
        if unsupported:
            step = replace(step, unsupported_condition=(*step.unsupported_condition, *unsupported))
        steps.append(step)
    return steps


def _custom_variables(body: object, where: str, path: Path) -> tuple[CustomVariable, ...]:
    if not isinstance(body, list):
        raise PipelineError(f"{path}: {where} must be a list of `- name: NAME`")
    found: list[CustomVariable] = []
    for entry in body:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise PipelineError(f"{path}: {where} entries need `name:`")
        name = _variable_name(entry["name"], where, path)
        at = f"{where}.{name}"
        default = entry.get("default")
        allowed = entry.get("allowed-values") or []
        if not isinstance(allowed, list):
            raise PipelineError(f"{path}: {at}.allowed-values must be a list")
        values = tuple(_scalar(v, f"{at}.allowed-values", path) for v in allowed)
        text = _scalar(default, f"{at}.default", path) if default is not None else None
        if text is not None and values and text not in values:
            raise PipelineError(f"{path}: {at}.default {text!r} is not among its allowed-values")
        found.append(CustomVariable(name=name, default=text, allowed=values))
    return tuple(found)


def _step(body: object, where: str, context: _Context) -> Step:
    path = context.path
    if not isinstance(body, dict):
        raise PipelineError(f"{path}: {where} must be a mapping")
    name = body.get("name", "Build")
    if not isinstance(name, str) or not name.strip():
        raise PipelineError(f"{path}: {where}.name must be text")
    notes: list[str] = []
    unknown = sorted(str(key) for key in body if key not in _STEP_KEYS)
    if unknown:
        notes.append(f"unknown step keys ignored: {', '.join(unknown)}")
    oidc, audiences = context.oidc
    if "oidc" in body:
        oidc, audiences = _oidc(body["oidc"], f"{where}.oidc", path)
    deployment = body.get("deployment")
    if deployment is not None and (not isinstance(deployment, str) or not deployment.strip()):
        raise PipelineError(f"{path}: {where}.deployment must be an environment name")
    image = _image(body["image"], f"{where}.image", path) if "image" in body else context.image
    services = body.get("services") or []
    if not isinstance(services, list):
        raise PipelineError(f"{path}: {where}.services must list service names")
    manual = body.get("trigger") == "manual"
    changesets, unsupported = _condition(body.get("condition"), f"{where}.condition", path)
    artifacts, download = _artifacts(body.get("artifacts"), f"{where}.artifacts", path)
    caches = body.get("caches") or []
    if not isinstance(caches, list) or not all(isinstance(c, str) and c for c in caches):
        raise PipelineError(f"{path}: {where}.caches must list cache names")
    max_time = body.get("max-time")
    if max_time is not None and (not isinstance(max_time, int) or max_time < 1):
        raise PipelineError(f"{path}: {where}.max-time must be a number of minutes")
    return Step(
        name=name.strip(),
        script=_commands(body.get("script"), f"{where}.script", path, required=True),
        after_script=_commands(body.get("after-script"), f"{where}.after-script", path),
        oidc=oidc,
        audiences=audiences,
        deployment=deployment.strip() if deployment else None,
        image=image,
        notes=tuple(notes),
        max_time_minutes=max_time,
        manual=manual,
        services=tuple(map(str, services)),
        artifacts=artifacts,
        download_artifacts=download,
        caches=tuple(caches),
        changesets=(changesets,) if changesets is not None else (),
        unsupported_condition=unsupported,
        clone=_clone(body.get("clone"), f"{where}.clone", path, default=context.clone),
    )


def _globs(value: object, where: str, path: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise PipelineError(f"{path}: {where} must list glob patterns")
    return tuple(v.strip() for v in value)


def _condition(value: object, where: str, path: Path) -> tuple[Changesets | None, tuple[str, ...]]:
    if value is None:
        return None, ()
    if not isinstance(value, dict):
        raise PipelineError(f"{path}: {where} must be a mapping such as `changesets:`")
    unsupported = tuple(sorted(str(key) for key in value if key != "changesets"))
    found = value.get("changesets")
    if found is None:
        return None, unsupported
    if not isinstance(found, dict) or not ({"includePaths", "excludePaths"} & set(found)):
        raise PipelineError(f"{path}: {where}.changesets needs includePaths or excludePaths")
    changesets = Changesets(
        include=_globs(found.get("includePaths"), f"{where}.changesets.includePaths", path),
        exclude=_globs(found.get("excludePaths"), f"{where}.changesets.excludePaths", path),
    )
    return changesets, unsupported


def _artifacts(
    value: object, where: str, path: Path
) -> tuple[tuple[ArtifactSpec, ...], bool | tuple[str, ...]]:
    """`artifacts: [GLOB...]`, or `artifacts:` with `download:` (true, false or names),
    `paths: [GLOB...]` and `upload:` (globs, or entries with name, paths, type, ...)."""
    if not isinstance(value, dict):
        return tuple(ArtifactSpec(name=g, paths=(g,)) for g in _globs(value, where, path)), True
    download = value.get("download", True)
    if isinstance(download, list):
        download = _globs(download, f"{where}.download", path)
    elif not isinstance(download, bool):
        raise PipelineError(f"{path}: {where}.download must be true, false or artifact names")
    globs = _globs(value.get("paths"), f"{where}.paths", path)
    specs = [ArtifactSpec(name=g, paths=(g,)) for g in globs]
    upload = value.get("upload") or []
    if not isinstance(upload, list):
        raise PipelineError(f"{path}: {where}.upload must list artifacts")
    for index, entry in enumerate(upload):
        at = f"{where}.upload[{index}]"
        if isinstance(entry, str) and entry.strip():
            specs.append(ArtifactSpec(name=entry.strip(), paths=(entry.strip(),)))
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise PipelineError(f"{path}: {at} must be a glob or have `name:` and `paths:`")
        kind = entry.get("type", "shared")
        capture = entry.get("capture-on", "success")
        depth = entry.get("depth")
        if kind not in ("shared", "scoped", "test-reports"):
            raise PipelineError(f"{path}: {at}.type must be shared, scoped or test-reports")
        if capture not in ("success", "failed", "always"):
            raise PipelineError(f"{path}: {at}.capture-on must be success, failed or always")
        if depth is not None and (
            isinstance(depth, bool) or not isinstance(depth, int) or depth < 1
        ):
            raise PipelineError(f"{path}: {at}.depth must be a number from 1")
        paths = _globs(entry.get("paths"), f"{at}.paths", path)
        if not paths:
            raise PipelineError(f"{path}: {at} needs `paths:` (glob patterns)")
        specs.append(
            ArtifactSpec(
                name=entry["name"],
                paths=paths,
                ignore=_globs(entry.get("ignore-paths"), f"{at}.ignore-paths", path),
                depth=depth,
                shared=kind == "shared",
                capture_on=capture,
            )
        )
    return tuple(specs), download


def _clone(value: object, where: str, path: Path, *, default: bool) -> bool:
    if value is None:
        return default
    enabled = value.get("enabled", default) if isinstance(value, dict) else None
    if not isinstance(enabled, bool):
        raise PipelineError(f"{path}: {where} must be a mapping such as `enabled: false`")
    return enabled


def _oidc(value: object, where: str, path: Path) -> tuple[bool, tuple[str, ...]]:
    if isinstance(value, bool):
        return value, ()
    if isinstance(value, dict) and isinstance(value.get("audiences"), list):
        audiences = value["audiences"]
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise PipelineError(f"{path}: {where}.audiences must list audiences")
        return True, tuple(audiences)
    raise PipelineError(
        f"{path}: {where} must be true, false or {{audiences: [...]}}",
        remedy="oidc: true  (or)  oidc:\n  audiences:\n    - https://example.com",
    )


def _image(value: object, where: str, path: Path) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return str(value["name"])
    raise PipelineError(f"{path}: {where} must be an image name or have `name:`")


def _commands(
    value: object, where: str, path: Path, *, required: bool = False
) -> tuple[Command, ...]:
    if value is None and not required:
        return ()
    if not isinstance(value, list) or (required and not value):
        raise PipelineError(f"{path}: {where} must be a non-empty list of commands")
    commands: list[Command] = []
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        if isinstance(item, str):
            if item.strip():
                commands.append(item.rstrip())
        elif isinstance(item, dict) and isinstance(item.get("pipe"), str):
            variables = _mapping(item.get("variables"), f"{at}.variables", path)
            commands.append(
                PipeCall(
                    ref=item["pipe"].strip(),
                    variables={
                        _variable_name(str(k), f"{at}.variables", path): _scalar(
                            v, f"{at}.{k}", path
                        )
                        for k, v in variables
                    },
                )
            )
        elif isinstance(item, int | float | bool):
            commands.append(str(item))
        else:
            raise PipelineError(f"{path}: {at} must be a command or a `pipe:`")
    return tuple(commands)


def _scalar(value: object, where: str, path: Path) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if value is None:
        return ""
    raise PipelineError(f"{path}: {where} must be a single value, not a {type(value).__name__}")


def _variable_name(name: str, where: str, path: Path) -> str:
    if not _NAME.fullmatch(name):
        raise PipelineError(f"{path}: {where}: {name!r} is not a variable name")
    return name


# --- repository and deployment variables ---------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Variables:
    """Workspace, repository and deployment variables, as in Bitbucket's settings, and the answers
    to custom pipelines' ``variables:`` (the file's ``custom:`` section)."""

    workspace: Mapping[str, str] = field(default_factory=dict)
    repository: Mapping[str, str] = field(default_factory=dict)
    deployments: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    custom: Mapping[str, str] = field(default_factory=dict)
    #: Names marked ``secured: true``, per layer ("workspace", "repository", "deployment:ENV",
    #: "custom"): their values are masked in the log.
    secured: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: The answers of the custom pipeline being run (``--var`` over ``custom:`` over defaults).
    pipeline: Mapping[str, str] = field(default_factory=dict)

    def for_step(self, deployment: str | None) -> dict[str, str]:
        """A custom pipeline's variables override deployment ones, which override repository
        ones, which override workspace ones."""
        return {name: value for _, name, value in self._layers(deployment)}

    def secrets_for_step(self, deployment: str | None) -> dict[str, str]:
        """Name -> value of the step's secured variables (every layer, so that a secured value
        overridden by a plain one is still masked)."""
        found: dict[str, str] = {}
        for layer, name, value in self._layers(deployment):
            if name in self.secured.get(layer, frozenset()) and value:
                found[name] = value
        return found

    def _layers(self, deployment: str | None) -> list[tuple[str, str, str]]:
        layers: list[tuple[str, Mapping[str, str]]] = [
            ("workspace", self.workspace),
            ("repository", self.repository),
        ]
        if deployment is not None:
            layers.append((f"deployment:{deployment}", self.deployments.get(deployment, {})))
        layers.append(("custom", self.pipeline))
        return [(layer, name, value) for layer, values in layers for name, value in values.items()]


def load_variables(path: Path) -> Variables:
    """A YAML (or JSON) file with ``workspace:``, ``repository:``, ``deployments: {ENV: ...}``
    and ``custom:`` mappings of ``NAME: value`` or ``NAME: {value: V, secured: true}``."""
    document = load_yaml_file(path, source=f"--variables {path}", error=PipelineError)
    shape = (
        "repository:\n  NAME: value\n  TOKEN: {value: V, secured: true}\n"
        "deployments:\n  production:\n    NAME: value\ncustom:\n  NAME: value"
    )
    if document is None:
        return Variables()
    layers = {"workspace", "repository", "deployments", "custom"}
    if not isinstance(document, dict) or set(document) - layers:
        raise PipelineError(
            f"--variables {path}: expected the keys workspace, repository, deployments, custom",
            remedy=shape,
        )
    secured: dict[str, frozenset[str]] = {}

    def names(value: object, where: str, layer: str) -> dict[str, str]:
        found: dict[str, str] = {}
        hidden: set[str] = set()
        for name, item in _mapping(value, where, path):
            text = _variable_name(str(name), where, path)
            if text.startswith("BITBUCKET_"):
                raise PipelineError(
                    f"--variables {path}: {where}.{text}: BITBUCKET_ variables are Bitbucket's own"
                )
            if isinstance(item, dict):
                if set(item) - {"value", "secured"} or not isinstance(
                    item.get("secured", False), bool
                ):
                    raise PipelineError(
                        f"--variables {path}: {where}.{text} must be a value or"
                        " {value: V, secured: true}",
                        remedy=shape,
                    )
                if item.get("secured", False):
                    hidden.add(text)
                item = item.get("value")
            found[text] = _scalar(item, f"{where}.{text}", path)
        if hidden:
            secured[layer] = frozenset(hidden)
        return found

    return Variables(
        workspace=names(document.get("workspace"), "workspace", "workspace"),
        repository=names(document.get("repository"), "repository", "repository"),
        deployments={
            str(env): names(values, f"deployments.{env}", f"deployment:{env}")
            for env, values in _mapping(document.get("deployments"), "deployments", path)
        },
        custom=names(document.get("custom"), "custom", "custom"),
        secured=secured,
    )


def answer_prompts(
    pipeline: Pipeline, variables: Variables, given: Mapping[str, str]
) -> dict[str, str]:
    """The values of a custom pipeline's ``variables:`` as Bitbucket asks for them: ``given``
    (``--var``), else the variables file's ``custom:``, else the ``default:``; each within its
    ``allowed-values``. A value for a variable the pipeline does not ask for is refused."""
    asked = {prompt.name: prompt for prompt in pipeline.prompts}
    unknown = sorted(set(given) - set(asked))
    if unknown:
        known = ", ".join(asked) or "none"
        raise PipelineError(
            f"--var {unknown[0]}: pipeline {pipeline.key} has no such variable"
            f" (its variables: {known})",
            remedy="Only a custom pipeline's `variables:` can be given with --var NAME=VALUE.",
        )
    found: dict[str, str] = {}
    for name, prompt in asked.items():
        value = given.get(name, variables.custom.get(name, prompt.default))
        if value is None:
            raise PipelineError(
                f"pipeline {pipeline.key} asks for variable {name} and none was given",
                remedy=f"Give --var {name}=VALUE, or {name}: VALUE under `custom:` in --variables.",
            )
        if prompt.allowed and value not in prompt.allowed:
            raise PipelineError(
                f"variable {name}={value!r} is not among its allowed-values"
                f" ({', '.join(prompt.allowed)})"
            )
        found[name] = value
    return found
