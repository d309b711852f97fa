"""Offline audit inputs: each file read within its bound, its format detected from its content,
its roles and providers loaded: `aws iam get-account-authorization-details`, `list-roles` pages,
`get-role`, `list-open-id-connect-providers` / `get-open-id-connect-provider`, CloudFormation
templates (JSON or YAML), Terraform HCL and `terraform show -json` plans."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from keyless.audit.cloudformation import roles_of_template
from keyless.audit.iam_json import providers_of, role_of, roles_of_authorization_details
from keyless.audit.inventory import Inventory, check_role_count
from keyless.audit.terraform_plan import roles_of_plan
from keyless.errors import UsageError
from keyless.jsonlimits import JsonLimitError, loads_bounded
from keyless.limits import AUDIT_INPUT_MAX_CHARS

__all__ = ["load_inputs", "load_text", "read_input"]


def read_input(path: str, stdin: TextIO | None) -> tuple[str, str]:
    """``(label, text)`` of one input; ``-`` reads standard input."""
    if path == "-":
        if stdin is None:
            raise UsageError("'-' reads standard input, which is not available here")
        text = stdin.read(AUDIT_INPUT_MAX_CHARS + 1)
        label = "<stdin>"
    else:
        file = Path(path)
        if file.is_dir():
            raise UsageError(f"audit input {path} is a folder; name the files in it")
        try:
            with file.open(encoding="utf-8") as handle:
                text = handle.read(AUDIT_INPUT_MAX_CHARS + 1)
        except FileNotFoundError:
            raise UsageError(f"audit input {path} does not exist") from None
        except UnicodeDecodeError:
            raise UsageError(f"audit input {path} is not UTF-8 text") from None
        except OSError as exc:
            raise UsageError(f"cannot read audit input {path}: {exc.strerror or exc}") from None
        label = file.as_posix().removeprefix("./")
    if len(text) > AUDIT_INPUT_MAX_CHARS:
        raise UsageError(
            f"audit input {label} is longer than {AUDIT_INPUT_MAX_CHARS:,} characters, the most"
            " keyless audit reads in one file; split it (one dump per account)"
        )
    if not text.strip():
        raise UsageError(f"audit input {label} is empty")
    return label, text


def load_inputs(paths: Sequence[str], stdin: TextIO | None = None) -> Inventory:
    inventory = Inventory()
    for path in paths:
        label, text = read_input(path, stdin)
        inventory = inventory.merged(load_text(label, text))
        check_role_count(len(inventory.roles), "the inputs")
    return inventory


def load_text(label: str, text: str) -> Inventory:
    """The roles and providers of one input, its format detected from its content."""
    stripped = text.lstrip()
    if stripped[:1] in "{[":
        try:
            document = loads_bounded(text, max_chars=AUDIT_INPUT_MAX_CHARS)
        except JsonLimitError as exc:
            raise UsageError(f"audit input {label} {exc}; it is not an IAM dump") from None
        except ValueError as exc:
            if label.endswith(".json") or stripped[:1] == "[":
                raise UsageError(f"audit input {label} is not valid JSON: {exc}") from None
        else:
            return _from_json(label, text, document)
    if label.endswith(".tf") or re.search(r'^\s*(resource|data)\s+"', text, re.MULTILINE):
        return _from_terraform(label, text)
    from keyless.audit.cfn_yaml import load_template

    document = load_template(text, source=label)
    if isinstance(document, dict) and isinstance(document.get("Resources"), dict):
        return roles_of_template(label, text, document)
    raise UsageError(
        f"audit input {label}: not a format keyless audit reads",
        remedy="It reads get-account-authorization-details, list-roles, get-role and"
        " list-open-id-connect-providers JSON, CloudFormation templates, Terraform .tf files"
        " and `terraform show -json` plans.",
    )


def _from_json(label: str, text: str, document: object) -> Inventory:
    if isinstance(document, list):
        inventory = Inventory()
        for page in document:
            inventory = inventory.merged(_from_json(label, text, page))
        return inventory
    if not isinstance(document, dict):
        raise UsageError(f"audit input {label} holds a JSON {type(document).__name__}")
    if "RoleDetailList" in document:
        return roles_of_authorization_details(label, document)
    if "Resources" in document and isinstance(document["Resources"], dict):
        return roles_of_template(label, text, document)
    if "planned_values" in document or "resource_changes" in document:
        return roles_of_plan(label, document)
    inventory = Inventory(providers=providers_of(document))
    if isinstance(document.get("Roles"), list):
        roles = tuple(role_of(label, item, None) for item in document["Roles"])
        return Inventory(roles=roles, providers=inventory.providers)
    if isinstance(document.get("Role"), dict):
        return Inventory(roles=(role_of(label, document["Role"], None),))
    if inventory.providers is not None:
        return inventory
    raise UsageError(
        f"audit input {label}: JSON of an unknown shape (no RoleDetailList, Roles, Role,"
        " OpenIDConnectProviderList or Resources)",
    )


def _from_terraform(label: str, text: str) -> Inventory:
    from keyless.audit.terraform import roles_of_hcl

    return Inventory(roles=roles_of_hcl(label, text))
