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


@dataclass(frozen=True, slots=True, kw_only=True)
class Pipeline:
    """One pipeline of the file: groups run one after another, a group's steps (a `parallel:`)
    one after another too, here."""

    key: str
    groups: tuple[tuple[Step, ...], ...]
    #: Defaults of a custom pipeline's `variables:`.
    variables: Mapping[str, str] = field(default_factory=dict)

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(step for group in self.groups for step in group)


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineFile:
    path: Path
    default: Pipeline | None
    #: `branches:` in file order: (glob pattern, pipeline).
    branches: tuple[tuple[str, Pipeline], ...]
    custom: Mapping[str, Pipeline]

    def select(self, *, branch: str, custom: str | None = None) -> Pipeline:
        """The pipeline Bitbucket would run: ``custom``'s, else the branch's (an exact name
        before patterns, patterns in file order), else ``default``."""
        if custom is not None:
            if custom not in self.custom:
                known = ", ".join(self.custom) or "none"
                raise PipelineError(
                    f"{self.path}: no custom pipeline {custom!r} (custom pipelines: {known})"
                )
            return self.custom[custom]
        for pattern, pipeline in self.branches:
            if pattern == branch:
                return pipeline
        for pattern, pipeline in self.branches:
            if branch_glob(pattern).fullmatch(branch):
                return pipeline
        if self.default is None:
            known = ", ".join(p for p, _ in self.branches) or "none"
            raise PipelineError(
                f"{self.path}: no pipeline for branch {branch!r} and no `default:`"
                f" (branch patterns: {known})",
                remedy="Choose a branch with --branch B, or a custom pipeline with --custom NAME.",
            )
        return self.default


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
    context = _Context(path=path, image=_image(document.get("image"), "image", path))
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
    custom = {
        str(name): _pipeline(f"custom: {name}", items, context)
        for name, items in _mapping(pipelines.get("custom"), "pipelines.custom", path)
    }
    if default is None and not branches and not custom:
        raise PipelineError(f"{path}: `pipelines:` has no default, branches or custom pipeline")
    return PipelineFile(path=path, default=default, branches=branches, custom=custom)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Context:
    path: Path
    image: str | None = None
    #: `options: oidc:`: (enabled, audiences) for steps that do not say.
    oidc: tuple[bool, tuple[str, ...]] = (False, ())


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
    defaults: dict[str, str] = {}
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
            defaults = _custom_variables(body, at + ".variables", context.path)
        else:
            raise PipelineError(
                f"{context.path}: {at} is `{kind}:`; expected step, parallel or stage"
            )
    if not groups:
        raise PipelineError(f"{context.path}: {where} has no step")
    return Pipeline(key=key, groups=tuple(groups), variables=defaults)


def _parallel(body: object, where: str, context: _Context) -> tuple[Step, ...]:
    items = body.get("steps") if isinstance(body, dict) else body
    if not isinstance(items, list) or not items:
        raise PipelineError(f"{context.path}: {where} must list steps")
    steps = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "step" not in item:
            raise PipelineError(f"{context.path}: {where}[{index}] must be a `step:`")
        step = _step(item["step"], f"{where}[{index}].step", context)
        steps.append(replace(step, notes=(*step.notes, "parallel in Bitbucket: runs in turn here")))
    return tuple(steps)


def _stage(body: object, where: str, context: _Context) -> list[Step]:
    if not isinstance(body, dict) or not isinstance(body.get("steps"), list):
        raise PipelineError(f"{context.path}: {where} must have `steps:`")
    deployment = body.get("deployment")
    if deployment is not None and not isinstance(deployment, str):
        raise PipelineError(f"{context.path}: {where}.deployment must be a name")
    steps = []
    for index, item in enumerate(body["steps"]):
        if not isinstance(item, dict) or "step" not in item:
            raise PipelineError(f"{context.path}: {where}.steps[{index}] must be a `step:`")
        step = _step(item["step"], f"{where}.steps[{index}].step", context)
        if deployment is not None:
            step = replace(step, deployment=deployment)
        steps.append(step)
    return steps


def _custom_variables(body: object, where: str, path: Path) -> dict[str, str]:
    if not isinstance(body, list):
        raise PipelineError(f"{path}: {where} must be a list of `- name: NAME`")
    found: dict[str, str] = {}
    for entry in body:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise PipelineError(f"{path}: {where} entries need `name:`")
        if entry.get("default") is not None:
            found[entry["name"]] = _scalar(entry["default"], f"{where}.{entry['name']}", path)
    return found


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
    if body.get("services"):
        notes.append(f"services not started here: {', '.join(map(str, body['services']))}")
    if body.get("trigger") == "manual":
        notes.append("manual in Bitbucket: runs without waiting here")
    if "condition" in body:
        notes.append("condition not evaluated: the step runs")
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
    )


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
    """Workspace, repository and deployment variables, as in Bitbucket's settings."""

    workspace: Mapping[str, str] = field(default_factory=dict)
    repository: Mapping[str, str] = field(default_factory=dict)
    deployments: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def for_step(self, deployment: str | None) -> dict[str, str]:
        """Deployment variables override repository ones, which override workspace ones."""
        found = {**self.workspace, **self.repository}
        if deployment is not None:
            found.update(self.deployments.get(deployment, {}))
        return found


def load_variables(path: Path) -> Variables:
    """A YAML (or JSON) file with ``workspace:``, ``repository:`` and ``deployments: {ENV: ...}``
    mappings of ``NAME: value``."""
    document = load_yaml_file(path, source=f"--variables {path}", error=PipelineError)
    shape = "repository:\n  NAME: value\ndeployments:\n  production:\n    NAME: value"
    if document is None:
        return Variables()
    if not isinstance(document, dict) or set(document) - {"workspace", "repository", "deployments"}:
        raise PipelineError(
            f"--variables {path}: expected the keys workspace, repository, deployments",
            remedy=shape,
        )

    def names(value: object, where: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for name, item in _mapping(value, where, path):
            text = _variable_name(str(name), where, path)
            if text.startswith("BITBUCKET_"):
                raise PipelineError(
                    f"--variables {path}: {where}.{text}: BITBUCKET_ variables are Bitbucket's own"
                )
            found[text] = _scalar(item, f"{where}.{text}", path)
        return found

    return Variables(
        workspace=names(document.get("workspace"), "workspace"),
        repository=names(document.get("repository"), "repository"),
        deployments={
            str(env): names(values, f"deployments.{env}")
            for env, values in _mapping(document.get("deployments"), "deployments", path)
        },
    )
