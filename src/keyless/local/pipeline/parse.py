"""Reading ``bitbucket-pipelines.yml`` and the variables file: the pipeline model (pipelines,
steps, commands and pipes) as Bitbucket reads it, within the bounds of ``keyless.yamlsafe``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from keyless.local.pipeline.model import (
    ArtifactSpec,
    CacheSpec,
    Changesets,
    Command,
    CustomVariable,
    PipeCall,
    Pipeline,
    PipelineError,
    PipelineFile,
    Step,
)
from keyless.yamlsafe import load_yaml_file

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
        for pattern, items in mapping_items(pipelines.get("branches"), "pipelines.branches", path)
    )
    tags = tuple(
        (str(pattern), _pipeline(f"tags: {pattern}", items, context))
        for pattern, items in mapping_items(pipelines.get("tags"), "pipelines.tags", path)
    )
    pull_requests = tuple(
        (str(pattern), _pipeline(f"pull-requests: {pattern}", items, context))
        for pattern, items in mapping_items(
            pipelines.get("pull-requests"), "pipelines.pull-requests", path
        )
    )
    custom = {
        str(name): _pipeline(f"custom: {name}", items, context)
        for name, items in mapping_items(pipelines.get("custom"), "pipelines.custom", path)
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
            for name, spec in mapping_items(caches, "definitions.caches", path)
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


def mapping_items(value: object, where: str, path: Path) -> list[tuple[object, object]]:
    """The items of the mapping at ``where`` (none when it is absent)."""
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
        name = variable_name(entry["name"], where, path)
        at = f"{where}.{name}"
        default = entry.get("default")
        allowed = entry.get("allowed-values") or []
        if not isinstance(allowed, list):
            raise PipelineError(f"{path}: {at}.allowed-values must be a list")
        values = tuple(scalar(v, f"{at}.allowed-values", path) for v in allowed)
        text = scalar(default, f"{at}.default", path) if default is not None else None
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
            variables = mapping_items(item.get("variables"), f"{at}.variables", path)
            commands.append(
                PipeCall(
                    ref=item["pipe"].strip(),
                    variables={
                        variable_name(str(k), f"{at}.variables", path): scalar(v, f"{at}.{k}", path)
                        for k, v in variables
                    },
                )
            )
        elif isinstance(item, int | float | bool):
            commands.append(str(item))
        else:
            raise PipelineError(f"{path}: {at} must be a command or a `pipe:`")
    return tuple(commands)


def scalar(value: object, where: str, path: Path) -> str:
    """A single YAML value as the text Bitbucket sees (``true``, ``3``, empty for null)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if value is None:
        return ""
    raise PipelineError(f"{path}: {where} must be a single value, not a {type(value).__name__}")


def variable_name(name: str, where: str, path: Path) -> str:
    """``name`` if it can be a shell variable's name."""
    if not _NAME.fullmatch(name):
        raise PipelineError(f"{path}: {where}: {name!r} is not a variable name")
    return name
