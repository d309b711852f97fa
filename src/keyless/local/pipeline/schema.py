"""``bitbucket-pipelines.yml`` checked against the public bitbucket-pipelines JSON schema (the copy
check-jsonschema vendors from SchemaStore) before keyless reads it, errors naming the line.

The schema and ``jsonschema`` come with check-jsonschema, a development dependency: where it is
not installed the check is skipped, and said so once.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from keyless.limits import (
    PIPELINE_SCHEMA_ERRORS_SHOWN,
)
from keyless.local.pipeline.model import PipelineError
from keyless.yamlsafe import load_yaml_file

#: Where check-jsonschema keeps the schema, and its file name there.
_SCHEMA_PACKAGE: Final = "check_jsonschema.builtin_schemas.vendor"
_SCHEMA_FILE: Final = "bitbucket-pipelines.json"
#: Keys whose values Bitbucket accepts in forms the vendored schema predates (`oidc:
#: audiences:`): left to keyless' own reading of the file, which checks them.
_NEWER_THAN_SCHEMA: Final = frozenset({"oidc"})


@functools.lru_cache(maxsize=1)
def schema_validator() -> Any | None:
    """The schema's validator, or ``None`` where check-jsonschema is not installed."""
    try:
        import jsonschema  # type: ignore[import-untyped]  # optional: a dev dependency

        text = importlib.resources.files(_SCHEMA_PACKAGE).joinpath(_SCHEMA_FILE).read_text("utf-8")
    except (ImportError, OSError):
        return None
    schema = json.loads(text)
    return jsonschema.Draft7Validator(schema)


def schema_available() -> bool:
    return schema_validator() is not None


def validate_pipeline_file(
    path: Path,
    *,
    notice: Callable[[str], None] | None = None,
    schema: Callable[[], Any | None] = schema_validator,
) -> None:
    """Refuse ``path`` when it breaks the bitbucket-pipelines schema, naming the lines.
    ``schema`` gives the schema's validator (``None``: the check is skipped, with a notice)."""
    validator = schema()
    if validator is None:
        if notice is not None:
            notice(
                "keyless local pipeline: check-jsonschema is not installed; the file is not"
                " checked against the bitbucket-pipelines schema"
            )
        return
    document = load_yaml_file(path, error=PipelineError)
    errors = sorted(
        (
            error
            for error in map(_deepest, validator.iter_errors(document))
            if not _NEWER_THAN_SCHEMA & set(map(str, error.absolute_path))
        ),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    if not errors:
        return
    root = _compose(path)
    shown = []
    for error in errors[:PIPELINE_SCHEMA_ERRORS_SHOWN]:
        where = ".".join(map(str, error.absolute_path)) or "the document"
        line = line_of(root, list(error.absolute_path))
        shown.append(f"line {line}: {where}: {_message(error)}")
    more = len(errors) - len(shown)
    tail = f" (and {more} more)" if more else ""
    raise PipelineError(
        f"{path} breaks the bitbucket-pipelines schema: " + "; ".join(shown) + tail,
        remedy="Fix the file as the lines say; Bitbucket refuses it the same way.",
    )


def _deepest(error: Any) -> Any:
    """Of a ``oneOf``/``anyOf`` failure, the sub-error deepest in the document: the one that
    names the key actually wrong, not the whole pipeline that failed every alternative."""
    while error.context:
        depth = max(len(e.absolute_path) for e in error.context)
        deepest = [e for e in error.context if len(e.absolute_path) == depth]
        if depth == len(error.absolute_path) and all(e.validator == "type" for e in deepest):
            # Alternatives of type only (a string or a list): said as one message.
            wanted = " or ".join(repr(e.validator_value) for e in deepest)
            error.message = f"{error.instance!r} is not of type {wanted}"
            return error
        error = deepest[0]
    return error


def _message(error: Any) -> str:
    text = str(error.message)
    # A `oneOf`/`anyOf` failure quotes the whole offending value: keep the line readable.
    return text if len(text) <= 160 else text[:157] + "..."


def _compose(path: Path) -> yaml.Node | None:
    # The file was loaded within keyless.yamlsafe's bounds just before: composing it again (no
    # construction, so no alias expansion) is bounded by the same text.
    try:
        return yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return None


def line_of(root: yaml.Node | None, where: Sequence[object]) -> int:
    """The 1-based line of the node at JSON path ``where`` in the composed ``root``: the deepest
    node the path reaches (a key's line for a mapping entry)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else 1
    for part in where:
        if isinstance(node, yaml.MappingNode):
            found = None
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    found = (key, value)
                    break
            if found is None:
                return line
            line = found[0].start_mark.line + 1
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
