"""CloudFormation YAML through keyless.yamlsafe's bounded loader, with the short-form intrinsic
tags (``!Sub``, ``!Ref``, ``!GetAtt`` ...) read as their long form (``{"Fn::Sub": ...}``), as the
CloudFormation User Guide's "Intrinsic function reference" defines them."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from keyless import yamlsafe
from keyless.errors import UsageError

__all__ = ["load_template"]


class _TemplateLoader(yamlsafe._BoundedLoader):
    pass


def _intrinsic(loader: _TemplateLoader, suffix: str, node: Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if suffix == "Condition":
        name = "Condition"
    value: Any
    if isinstance(node, ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - PyYAML has no other node kinds
        value = None
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


def load_template(text: str, *, source: str) -> Any:
    """The template as Python objects; ``UsageError`` naming ``source`` and the line."""
    bounds = yamlsafe.YamlLimits()
    if len(text.encode("utf-8", "surrogatepass")) > bounds.max_bytes:
        raise UsageError(f"{source} is larger than {bounds.max_bytes:,} bytes (YAML_MAX_BYTES)")
    loader = _TemplateLoader(text, bounds)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        yamlsafe._check_expanded(node, bounds)
        return loader.construct_document(node)
    except yamlsafe._Refused as refused:
        raise UsageError(f"{source} line {refused.line}: {refused.what}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise UsageError(f"{source} is not valid YAML{where}: {problem}") from None
    except (ValueError, OverflowError) as exc:
        raise UsageError(
            f"{source} has a value YAML cannot represent: {type(exc).__name__}"
        ) from None
    finally:
        loader.dispose()
