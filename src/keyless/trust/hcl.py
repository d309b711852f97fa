"""HCL expressions for the Terraform that keyless writes: literal strings, JSON-like values and raw
references (https://developer.hashicorp.com/terraform/language/expressions/strings).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def hcl_string(value: str) -> str:
    """``value`` as a literal HCL string."""
    # JSON string escapes are valid HCL; `${` and `%{` start interpolation and directives in HCL
    # templates, so they are doubled to stay literal (IAM's own `${*}` escapes included).
    return json.dumps(value, ensure_ascii=False).replace("${", "$${").replace("%{", "%%{")


def hcl_value(value: Any, indent: int) -> str:
    """``value`` (JSON-like, with ``Raw`` expressions) as an HCL expression at ``indent``."""
    pad = "  " * indent
    if isinstance(value, str):
        return hcl_string(value)
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Mapping):
        lines = ["{"]
        for key, item in value.items():
            name = key if _IDENTIFIER.fullmatch(key) else hcl_string(key)
            lines.append(f"{pad}  {name} = {hcl_value(item, indent + 1)}")
        lines.append(f"{pad}}}")
        return "\n".join(lines)
    if isinstance(value, Sequence):
        items = [f"{pad}  {hcl_value(item, indent + 1)}," for item in value]
        return "\n".join(["[", *items, f"{pad}]"])
    return json.dumps(value)


@dataclass(frozen=True, slots=True)
class Raw:
    """An HCL expression written as is (a reference, not a string)."""

    text: str
