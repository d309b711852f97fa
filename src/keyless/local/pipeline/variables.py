"""Repository, deployment and workspace variables from the variables file, and the answers to a
custom pipeline's prompts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from keyless.local.pipeline.model import Pipeline, PipelineError
from keyless.local.pipeline.parse import mapping_items, scalar, variable_name
from keyless.yamlsafe import load_yaml_file


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
        for name, item in mapping_items(value, where, path):
            text = variable_name(str(name), where, path)
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
            found[text] = scalar(item, f"{where}.{text}", path)
        if hidden:
            secured[layer] = frozenset(hidden)
        return found

    return Variables(
        workspace=names(document.get("workspace"), "workspace", "workspace"),
        repository=names(document.get("repository"), "repository", "repository"),
        deployments={
            str(env): names(values, f"deployments.{env}", f"deployment:{env}")
            for env, values in mapping_items(document.get("deployments"), "deployments", path)
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
