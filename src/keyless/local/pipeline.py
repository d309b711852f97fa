"""``keyless local pipeline``: a Bitbucket pipeline's steps run on this machine, without containers,
each with the variables, OIDC token and deployment environment Bitbucket would give it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TextIO, TypeAlias

from keyless.ci import bitbucket
from keyless.ci.base import JobClaims, JobRun, JobTokens, RawToken, TokenEndpoint
from keyless.ci.bitbucket import BitbucketScope
from keyless.compat import StrEnum
from keyless.errors import UsageError
from keyless.local.pki import write_atomic
from keyless.local.run import JobProcess, job_process_environment
from keyless.local.served import RemoteTokens, StackInfo
from keyless.yamlsafe import load_yaml_file

__all__ = [
    "EMULATED_PIPES",
    "IDENTITIES_FILE",
    "Identity",
    "PipeCall",
    "Pipeline",
    "PipelineError",
    "PipelineFile",
    "PipelinePlan",
    "PipelineResult",
    "Step",
    "StepResult",
    "StepStatus",
    "Variables",
    "keyless_argv",
    "load_pipeline_file",
    "load_variables",
    "local_issuer",
    "plan_pipeline",
    "resolve_identity",
    "run_pipeline",
    "scope_flags",
]

#: Where the workspace, repository and environment identities live, in the state folder.
IDENTITIES_FILE: Final = "bitbucket-identities.json"
_IDENTITIES_VERSION: Final = 1
#: The workspace slug a new identities file gets (it is part of the local issuer URL).
DEFAULT_WORKSPACE: Final = "local-workspace"
#: Pipes keyless runs itself, by name without version, and the ``keyless pipe`` that does it.
EMULATED_PIPES: Final[Mapping[str, str]] = {
    "atlassian/aws-s3-deploy": "aws-s3-deploy",
    "atlassian/aws-cloudfront-invalidate": "aws-cloudfront-invalidate",
}
#: What a pipe's container gets from the step besides its `variables:`: Bitbucket's own variables
#: and the plumbing that points it at the local stack (repository variables it is not given stay
#: out, as in Bitbucket, so a pipeline that forgets one fails here too).
_PIPE_KEEPS: Final = (
    "BITBUCKET_*|CI|PATH|HOME|LANG|LC_*|TERM|TMPDIR|KEYLESS_LOCAL_*|SSL_CERT_FILE"
    "|NODE_EXTRA_CA_CERTS|AWS_ENDPOINT_URL|AWS_CONFIG_FILE|AWS_SHARED_CREDENTIALS_FILE"
    "|AWS_DEFAULT_REGION|AWS_REGION|AWS_EC2_METADATA_DISABLED"
)
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
_SLUG: Final = re.compile(r"[a-z0-9][a-z0-9_.-]*")
#: ``$NAME`` and ``${NAME}`` in a pipe variable: expanded from the step, as Bitbucket does.
_REFERENCE: Final = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})")
#: Seconds git may take to name the checkout's branch and commit.
_GIT_TIMEOUT_SECONDS: Final = 10.0
#: Seconds a step's processes get to end after SIGTERM (max-time, Ctrl-C) before SIGKILL.
_STOP_GRACE_SECONDS: Final = 5.0
_SECONDS_PER_MINUTE: Final = 60


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


def _shown(command: Command) -> str:
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
            if _glob(pattern).fullmatch(branch):
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
def _glob(pattern: str) -> BranchGlob:
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


# --- identities: the workspace, repositories and environments, stable across runs ---------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """Who a pipeline run is: UUIDs as Bitbucket shows them, without braces."""

    workspace: str
    workspace_uuid: str
    repository: str
    repository_uuid: str
    #: Deployment environment name -> UUID, for the environments asked for.
    environments: Mapping[str, str]
    build_number: int

    def scope(self, deployment: str | None = None) -> BitbucketScope:
        return BitbucketScope(
            workspace=self.workspace,
            workspace_uuid=self.workspace_uuid,
            repository_uuid=self.repository_uuid,
            environment_uuid=self.environments[deployment] if deployment else None,
        )


def resolve_identity(
    path: Path, *, repository: str, deployments: Sequence[str] = (), new_build: bool = False
) -> Identity:
    """The identities of ``repository`` and its ``deployments`` from ``path``, created (random
    UUIDs) and saved on first use, so the same names keep the same UUIDs; ``new_build`` counts a
    build of the repository."""
    if not _SLUG.fullmatch(repository):
        raise PipelineError(
            f"repository slug {repository!r} is not a slug (lowercase letters, digits, ._-)"
        )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(path):
        document = _read_identities(path)
        workspace = document["workspace"]
        repositories = document["repositories"]
        entry = repositories.setdefault(
            repository, {"uuid": str(uuid.uuid4()), "builds": 0, "environments": {}}
        )
        for name in deployments:
            entry["environments"].setdefault(name, str(uuid.uuid4()))
        if new_build:
            entry["builds"] += 1
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text.encode(), mode=0o644)
    return Identity(
        workspace=workspace["slug"],
        workspace_uuid=workspace["uuid"],
        repository=repository,
        repository_uuid=entry["uuid"],
        environments={name: entry["environments"][name] for name in deployments},
        build_number=max(entry["builds"], 1),
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two runs creating the file at once must not mint two UUIDs for one repository.
    with (path.parent / f".{path.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_identities(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {
            "version": _IDENTITIES_VERSION,
            "workspace": {"slug": DEFAULT_WORKSPACE, "uuid": str(uuid.uuid4())},
            "repositories": {},
        }
    broken = PipelineError(
        f"{path} is not a keyless identities file",
        remedy=f"Remove {path}: keyless makes a new one (with new UUIDs) on the next run.",
    )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise broken from None
    try:
        if document["version"] != _IDENTITIES_VERSION:
            raise broken
        BitbucketScope(
            workspace=document["workspace"]["slug"],
            workspace_uuid=document["workspace"]["uuid"],
            repository_uuid=str(uuid.UUID(int=0)),
        )
        for entry in document["repositories"].values():
            uuid.UUID(entry["uuid"])
            int(entry["builds"])
            for value in entry["environments"].values():
                uuid.UUID(value)
    except (KeyError, TypeError, ValueError, AttributeError, UsageError):
        raise broken from None
    return dict(document)


def local_issuer(stack: StackInfo, identity: Identity) -> str:
    """The workspace's issuer URL on ``stack``, served from now on (so that provisioning can
    read its discovery document before any step has run)."""
    scope = identity.scope()
    # A stack serves a workspace's issuer once it has signed for it: sign once, discard the token.
    RemoteTokens.of(stack, bitbucket.PROVIDER, scope).sign(
        bitbucket.PROVIDER.job_claims(scope, JobRun(step="provision"))
    )
    base = stack.servers[bitbucket.PROVIDER.name]
    return base + bitbucket.PROVIDER.issuer_path(scope)


def scope_flags(identity: Identity, *, deployment: str | None, issuer: str | None) -> list[str]:
    """The scope flags of ``keyless provision`` / ``trust build`` for this identity."""
    flags = ["--ci", "bitbucket", "--workspace", identity.workspace]
    flags += ["--workspace-uuid", identity.workspace_uuid]
    flags += ["--repository-uuid", identity.repository_uuid]
    if deployment is not None:
        flags += ["--environment-uuid", identity.environments[deployment]]
    if issuer is not None:
        flags += ["--issuer", issuer]
    return flags


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
    step: str | None = None,
    deployment: str | None = None,
    branch: str | None = None,
    custom: str | None = None,
    repository: str | None = None,
    variables: Path | None = None,
) -> PipelinePlan:
    """Parse ``path`` and choose what to run; every refusal happens here, before anything runs."""
    file = load_pipeline_file(path)
    clone_dir = path.resolve().parent
    checkout_branch, commit = _git_checkout(clone_dir)
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


def _git_checkout(folder: Path) -> tuple[str | None, str | None]:
    """The branch and commit checked out in ``folder`` when it is a git work tree."""

    def git(*argv: str) -> str | None:
        try:
            done = subprocess.run(  # noqa: S603 - fixed git arguments
                ["git", "-C", str(folder), *argv],  # noqa: S607 - git from PATH, as a person runs it
                capture_output=True,
                text=True,
                timeout=_GIT_TIMEOUT_SECONDS,
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


# --- running it ----------------------------------------------------------------------------------


class StepStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_RUN = "not run"


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    name: str
    deployment: str | None
    status: StepStatus
    exit_code: int | None = None
    #: The command that failed, as written in the file.
    failed_command: str | None = None
    #: Why it failed, in words ("pipe X is not emulated", "max-time of 5 minutes reached").
    reason: str | None = None
    seconds: float = 0.0
    #: The token's `sub`, when the step had `oidc: true`.
    subject: str | None = None
    #: What the step printed (stdout and stderr merged), the token masked.
    output: str = field(default="", repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "deployment": self.deployment,
            "status": self.status.value,
            "exit_code": self.exit_code,
            "failed_command": self.failed_command,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
            "subject": self.subject,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineResult:
    pipeline: str
    repository: str
    build_number: int
    steps: tuple[StepResult, ...]
    seconds: float

    @property
    def passed(self) -> bool:
        return all(step.status is StepStatus.PASSED for step in self.steps)

    @property
    def exit_code(self) -> int:
        """0 when every step passed, else the exit code of the first failed command (1 if none)."""
        for step in self.steps:
            if step.status is StepStatus.FAILED:
                return step.exit_code or 1
        return 0

    def step(self, name: str) -> StepResult:
        return next(step for step in self.steps if step.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "repository": self.repository,
            "build_number": self.build_number,
            "passed": self.passed,
            "steps": [step.to_json() for step in self.steps],
            "seconds": round(self.seconds, 3),
        }


TokensFor: TypeAlias = Callable[[BitbucketScope], JobTokens]


def run_pipeline(
    plan: PipelinePlan,
    *,
    stack: StackInfo,
    base_env: Mapping[str, str],
    log: TextIO,
    tokens_for: TokensFor | None = None,
) -> PipelineResult:
    """Run ``plan``'s steps in turn against ``stack``, writing a Bitbucket-like log to ``log``;
    the first failed step stops the pipeline (the rest of its parallel group still runs)."""
    began = time.monotonic()
    identity = resolve_identity(
        plan.identities, repository=plan.repository, deployments=plan.deployments, new_build=True
    )
    make_tokens = tokens_for or (lambda scope: RemoteTokens.of(stack, bitbucket.PROVIDER, scope))
    steps = [step for group in plan.groups for step in group]
    pipeline_uuid = str(uuid.uuid4())
    _say(log, f"Pipeline {plan.pipeline.key} of {plan.file.path}")
    _say(
        log,
        f"  repository {identity.repository} {{{identity.repository_uuid}}} in workspace"
        f" {identity.workspace} {{{identity.workspace_uuid}}}",
    )
    commit = plan.commit[:7] if plan.commit else "made up"
    _say(log, f"  branch {plan.branch}, commit {commit}, build #{identity.build_number}")
    _say(log, f"  AWS: the local stack at {stack.endpoint_url}; no AWS key in any step")
    results: list[StepResult] = []
    failed = False
    number = 0
    for group in plan.groups:
        for step in group:
            number += 1
            if failed:
                results.append(_not_run(step))
                continue
            result = _run_step(
                _StepJob(
                    plan=plan,
                    step=step,
                    number=number,
                    total=len(steps),
                    identity=identity,
                    pipeline_uuid=pipeline_uuid,
                    parallel=(group.index(step) + 1, len(group)) if len(group) > 1 else None,
                ),
                stack=stack,
                base_env=base_env,
                log=log,
                tokens=make_tokens(identity.scope(step.deployment)),
            )
            results.append(result)
        failed = failed or any(r.status is StepStatus.FAILED for r in results)
    outcome = PipelineResult(
        pipeline=plan.pipeline.key,
        repository=identity.repository,
        build_number=identity.build_number,
        steps=tuple(results),
        seconds=time.monotonic() - began,
    )
    passed = sum(1 for r in results if r.status is StepStatus.PASSED)
    if outcome.passed:
        _say(log, f"Pipeline PASSED: {passed} of {len(results)} steps in {outcome.seconds:.1f} s")
    else:
        first = next(r for r in results if r.status is StepStatus.FAILED)
        _say(
            log,
            f"Pipeline FAILED at step {first.name!r}: {first.reason};"
            f" {passed} of {len(results)} steps passed",
        )
    return outcome


def _not_run(step: Step) -> StepResult:
    return StepResult(name=step.name, deployment=step.deployment, status=StepStatus.NOT_RUN)


@dataclass(frozen=True, slots=True, kw_only=True)
class _StepJob:
    plan: PipelinePlan
    step: Step
    number: int
    total: int
    identity: Identity
    pipeline_uuid: str
    parallel: tuple[int, int] | None


class _PipelineTokens:
    """The step's tokens with the pipeline's UUID (one per pipeline run, as in Bitbucket); keeps
    the claims of the last token for the log."""

    def __init__(self, inner: JobTokens, pipeline_uuid: str) -> None:
        self._inner = inner
        self._pipeline_uuid = "{" + pipeline_uuid + "}"
        self.claims: Mapping[str, object] | None = None

    def sign(self, claims: JobClaims) -> RawToken:
        patched = replace(claims, claims={**claims.claims, "pipelineUuid": self._pipeline_uuid})
        self.claims = patched.claims
        return self._inner.sign(patched)

    def endpoint(self, claims: JobClaims) -> TokenEndpoint:
        return self._inner.endpoint(claims)


class _NoTokens:
    """For a step without `oidc: true`: nothing is minted, and the variable is then removed."""

    def sign(self, claims: JobClaims) -> RawToken:
        return RawToken("")

    def endpoint(self, claims: JobClaims) -> TokenEndpoint:
        return TokenEndpoint(url="", bearer="")


def _run_step(
    job: _StepJob, *, stack: StackInfo, base_env: Mapping[str, str], log: TextIO, tokens: JobTokens
) -> StepResult:
    step = job.step
    title = f"Step {job.number}/{job.total}: {step.name}"
    if step.deployment:
        title += f" (deployment: {step.deployment})"
    _say(log, f"=== {title} " + "=" * max(3, 95 - len(title)))
    began = time.monotonic()
    variables, claims = _step_variables(job, tokens)
    _say(log, "Build setup")
    for line in _setup_lines(job, claims):
        _say(log, "  " + line)
    token = variables.get(bitbucket.STEP_VARIABLE, "")
    masks = {token: f"${bitbucket.STEP_VARIABLE}"} if token else {}
    with tempfile.TemporaryDirectory(prefix="keyless-step-") as scratch:
        workdir = Path(scratch)
        env = _process_environment(workdir, variables, stack=stack, base_env=base_env)
        run = functools.partial(
            _run_commands, env=env, workdir=workdir, cwd=job.plan.clone_dir, log=log, masks=masks
        )
        minutes = step.max_time_minutes
        code, at, output, timed_out = run(
            step.script, max_seconds=minutes * _SECONDS_PER_MINUTE if minutes else None
        )
        if step.after_script:
            _say(log, "After script")
            after_code, _, after_output, _ = run(
                step.after_script, env={**env, "BITBUCKET_EXIT_CODE": str(code)}, max_seconds=None
            )
            output += after_output
            if after_code != 0:
                _say(log, f"  after-script exited with {after_code} (the step's result stands)")
    seconds = time.monotonic() - began
    subject = str(claims["sub"]) if claims is not None else None
    result = StepResult(
        name=step.name,
        deployment=step.deployment,
        status=StepStatus.PASSED,
        exit_code=0,
        seconds=seconds,
        subject=subject,
        output=output,
    )
    if code == 0:
        _say(log, f"Step {step.name!r} PASSED in {seconds:.1f} s")
        return result
    command = step.script[at] if at is not None and at < len(step.script) else None
    reason = _failure_reason(step, command, code, timed_out=timed_out)
    _say(log, f"Step {step.name!r} FAILED in {seconds:.1f} s: {reason}")
    return replace(
        result,
        status=StepStatus.FAILED,
        exit_code=code,
        failed_command=_shown(command) if command is not None else None,
        reason=reason,
    )


def _step_variables(
    job: _StepJob, tokens: JobTokens
) -> tuple[dict[str, str], Mapping[str, object] | None]:
    """The step's variables (the file's, then Bitbucket's, the token only with `oidc: true`) and
    the claims of its token."""
    step, identity = job.step, job.identity
    run = JobRun(
        branch=job.plan.branch,
        step=step.name,
        build_number=identity.build_number,
        commit=job.plan.commit,
        deployment=step.deployment,
    )
    signer = _PipelineTokens(tokens, job.pipeline_uuid) if step.oidc else _NoTokens()
    scope = identity.scope(step.deployment)
    own = bitbucket.step_environment(scope, run, tokens=signer, audiences=step.audiences)
    if not step.oidc:
        del own[bitbucket.STEP_VARIABLE]
    slug = identity.repository
    own.update(
        BITBUCKET_REPO_SLUG=slug,
        BITBUCKET_REPO_FULL_NAME=f"{identity.workspace}/{slug}",
        BITBUCKET_REPO_OWNER=identity.workspace,
        BITBUCKET_REPO_IS_PRIVATE="true",
        BITBUCKET_PIPELINE_UUID="{" + job.pipeline_uuid + "}",
        BITBUCKET_CLONE_DIR=str(job.plan.clone_dir),
    )
    if job.parallel is not None:
        own["BITBUCKET_PARALLEL_STEP"] = str(job.parallel[0] - 1)
        own["BITBUCKET_PARALLEL_STEP_COUNT"] = str(job.parallel[1])
    claims = signer.claims if isinstance(signer, _PipelineTokens) else None
    # Bitbucket's own variables cannot be overridden by the settings' ones.
    return {**job.plan.variables.for_step(step.deployment), **own}, claims


def _setup_lines(job: _StepJob, claims: Mapping[str, object] | None) -> list[str]:
    step = job.step
    lines = []
    if step.image:
        lines.append(f"image {step.image}: not pulled, the step runs on this machine")
    lines.extend(step.notes)
    if step.deployment:
        environment = job.identity.environments[step.deployment]
        lines.append(f"deployment environment {step.deployment} {{{environment}}}")
    if claims is None:
        lines.append("OIDC: no token (the step has no `oidc: true`)")
    else:
        audience = claims.get("aud")
        shown = ", ".join(audience) if isinstance(audience, list) else str(audience)
        lines.append(f"OIDC: {bitbucket.STEP_VARIABLE} with sub {claims.get('sub')}, aud {shown}")
    return lines


def _process_environment(
    workdir: Path, variables: Mapping[str, str], *, stack: StackInfo, base_env: Mapping[str, str]
) -> dict[str, str]:
    """What the step's bash gets: the job's variables, a fresh HOME, AWS on the local stack."""
    home = workdir / "home"
    home.mkdir(mode=0o700)
    env = job_process_environment(
        base_env,
        {**variables, "HOME": str(home)},
        JobProcess(
            workdir=workdir,
            endpoint_url=stack.endpoint_url,
            region=stack.region,
            ca_bundle=stack.ca_bundle,
            state_dir=stack.state_dir,
        ),
    )
    # The keyless running this pipeline is the one a step finds first (scripts, emulated pipes).
    env["PATH"] = os.pathsep.join(p for p in (str(_keyless_bin()), env.get("PATH")) if p)
    return env


def _failure_reason(step: Step, command: Command | None, code: int, *, timed_out: bool) -> str:
    if timed_out:
        return f"max-time of {step.max_time_minutes} minutes reached"
    if isinstance(command, PipeCall) and command.emulated is None:
        return f"pipe {command.name} is not emulated"
    if command is not None:
        return f"`{_first_line(_shown(command))}` exited with {code}"
    return f"exit code {code}"


def _first_line(text: str) -> str:
    first, _, rest = text.partition("\n")
    return first + (" ..." if rest.strip() else "")


def _keyless_bin() -> Path:
    return Path(sys.executable).parent


def keyless_argv() -> list[str]:
    """How to start the keyless that is running now: its script, else ``python -m keyless``."""
    program = _keyless_bin() / "keyless"
    if program.is_file():
        return [str(program)]
    return [sys.executable, "-m", "keyless"]


def step_script(commands: Sequence[Command], *, progress: Path) -> str:
    """The bash program for a step's commands: each one echoed (unexpanded) and run in one shell
    session, so `export` carries over; the first that fails ends it with its exit code. Before
    each command its index goes to ``progress``."""
    lines = [
        "# keyless local pipeline: a step's script",
        f"__keyless_progress={shlex.quote(str(progress))}",
    ]
    for index, command in enumerate(commands):
        shown = _shown(command).splitlines() or [""]
        echo = "\n".join(["+ " + shown[0], *("  " + line for line in shown[1:])])
        lines.append(f"printf '%s' {index} > \"$__keyless_progress\"")
        lines.append(f"printf '%s\\n' {shlex.quote(echo)}")
        lines.append(_pipe_lines(command) if isinstance(command, PipeCall) else command)
        lines.append('__keyless_rc=$?; [ "$__keyless_rc" -eq 0 ] || exit "$__keyless_rc"')
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def _pipe_lines(pipe: PipeCall) -> str:
    if pipe.emulated is None:
        known = " and ".join(EMULATED_PIPES)
        message = (
            f"keyless: pipe {pipe.name} is not emulated; only {known} run here"
            " (through keyless pipe)"
        )
        return f"printf '%s\\n' {shlex.quote(message)} >&2; (exit 2)"
    # A subshell: the pipe sees its variables and Bitbucket's, not the step's other variables.
    body = [
        f"__keyless_value_{i}={_expandable(value)}"
        for i, value in enumerate(pipe.variables.values())
    ]
    body.append(
        'while IFS= read -r __keyless_name; do case "$__keyless_name" in'
        f' {_PIPE_KEEPS}) ;; *) unset "$__keyless_name" 2>/dev/null ;; esac;'
        " done < <(compgen -e)"
    )
    if pipe.variables:
        exports = " ".join(
            f'{name}="$__keyless_value_{i}"' for i, name in enumerate(pipe.variables)
        )
        body.append(f"export {exports}")
    body.append(f"exec {shlex.join(keyless_argv())} pipe {pipe.emulated}")
    return "(\n  " + "\n  ".join(body) + "\n)"


def _expandable(value: str) -> str:
    """``value`` as a double-quoted bash word in which only ``$NAME`` and ``${NAME}`` expand."""
    out: list[str] = []
    position = 0
    for match in _REFERENCE.finditer(value):
        out.append(_quoted_literal(value[position : match.start()]))
        out.append("${" + (match.group(1) or match.group(2)) + "}")
        position = match.end()
    out.append(_quoted_literal(value[position:]))
    return '"' + "".join(out) + '"'


def _quoted_literal(text: str) -> str:
    return "".join("\\" + ch if ch in '\\"$`' else ch for ch in text)


def _run_commands(
    commands: Sequence[Command],
    *,
    env: Mapping[str, str],
    workdir: Path,
    cwd: Path,
    log: TextIO,
    masks: Mapping[str, str],
    max_seconds: float | None,
) -> tuple[int, int | None, str, bool]:
    """Run ``commands`` in one bash; returns (exit code, index of the last command started,
    the masked output, whether max-time ended it)."""
    progress = workdir / "progress"
    progress.write_text("")
    script = workdir / "script.sh"
    script.write_text(step_script(commands, progress=progress), encoding="utf-8")
    bash = shutil.which("bash", path=env.get("PATH")) or "/bin/bash"
    log.flush()
    child = subprocess.Popen(  # noqa: S603 - the pipeline's own script; secrets are in env only
        [bash, "--noprofile", "--norc", str(script)],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # Its own process group: max-time and Ctrl-C end the whole step, children included.
        start_new_session=True,
    )
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        _stop_group(child)

    timer = threading.Timer(max_seconds, expire) if max_seconds is not None else None
    captured: list[str] = []
    with child:
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            for raw in child.stdout or ():
                line = raw.decode("utf-8", "replace")
                for secret, shown in masks.items():
                    line = line.replace(secret, shown)
                captured.append(line)
                log.write(line)
                log.flush()
            code = child.wait()
        except BaseException:
            _stop_group(child)
            raise
        finally:
            if timer is not None:
                timer.cancel()
    text = progress.read_text().strip()
    at = int(text) if text.isdigit() else None
    if code < 0:
        code = 128 - code
    return code, at, "".join(captured), timed_out.is_set()


def _stop_group(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=_STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def _say(log: TextIO, text: str) -> None:
    log.write(text + "\n")
    log.flush()
