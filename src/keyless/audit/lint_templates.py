"""The roles of a CloudFormation template, a Terraform configuration or a `terraform show -json`
plan as trust policies for ``keyless trust lint``, read by audit's own template readers.

Each role keeps the place of its resource in the text, so a finding's line (and SARIF's region)
is the role's block, or the statement's line inside it when the template spells the policy out.
A value only the deployed stack resolves (``!Ref GitHubOrg``) stays a placeholder that lint
reports as unknown (``template-value-unresolved``) instead of judging it as literal text.
"""

from __future__ import annotations

import re

from keyless.errors import PolicyError, UsageError
from keyless.jsonlimits import JsonLimitError, loads_bounded
from keyless.limits import IAM_OUTPUT_MAX_CHARS
from keyless.trust.lines import LineIndex
from keyless.trust.model import Policy, loads_document, parse_policy
from keyless.trust.role_output import RoleTrust

__all__ = ["template_trusts"]

_YAML_TEMPLATE = re.compile(r"^(?:AWSTemplateFormatVersion|Resources)\s*:", re.MULTILINE)
_HCL_BLOCK = re.compile(r'^\s*(?:resource|data)\s+"', re.MULTILINE)


def _is_template(label: str, text: str) -> bool:
    if label.endswith(".tf"):
        return True
    if text.lstrip()[:1] in "{[":
        try:
            document = loads_bounded(text, max_chars=IAM_OUTPUT_MAX_CHARS)
        except (JsonLimitError, ValueError):
            return False
        return isinstance(document, dict) and (
            isinstance(document.get("Resources"), dict)
            or "planned_values" in document
            or "resource_changes" in document
        )
    return bool(_YAML_TEMPLATE.search(text) or _HCL_BLOCK.search(text))


def _policy(trust: object, where: str) -> Policy:
    try:
        document = loads_document(trust) if isinstance(trust, str) else trust
        return parse_policy(document)
    except PolicyError as exc:
        raise PolicyError(f"{where}: {exc.message}", remedy=exc.remedy) from None


def template_trusts(label: str, text: str) -> tuple[RoleTrust, ...] | None:
    """The trust policy of every IAM role in ``text`` when it is a template or a plan; ``None``
    when it is neither (the caller reports it as the policy file it then must be)."""
    if not _is_template(label, text):
        return None
    from keyless.audit.offline import load_text

    try:
        inventory = load_text(label, text)
    except UsageError as exc:
        # audit's readers name the file as an audit input; here it is the file to lint.
        message = exc.message.replace(f"audit input {label}", f"policy file {label}", 1)
        raise UsageError(message, remedy=exc.remedy) from None
    roles = inventory.roles
    # One index of the text's lines for all roles: finding each role's line by walking the text
    # from the top cost lines x roles.
    lines = LineIndex(text)
    starts = [
        lines.offset_of(role.source.line) if role.source and role.source.line is not None else None
        for role in roles
    ]
    known = sorted(start for start in starts if start is not None)
    trusts = []
    for role, start in zip(roles, starts, strict=True):
        resource = role.arn.partition("#")[2] or role.role_name
        where = (
            f"Resources.{resource}.Properties"
            if role.arn.startswith("cloudformation:")
            else resource
        )
        if "assume_role_policy (known after apply)" in role.unresolved:
            raise PolicyError(
                f"policy file {label}: {resource}: the trust policy is known only after apply",
                remedy="Lint the configuration (.tf) instead, or the role once it is applied.",
            )
        end = next((k for k in known if start is not None and k > start), len(text))
        trusts.append(
            RoleTrust(
                role=role.role_name,
                where=where,
                policy=_policy(role.trust, f"policy file {label}: {resource}"),
                # Without a known place, findings point at line 1 rather than at another role.
                start=start if start is not None else 0,
                end=end if start is not None else 0,
            )
        )
    return tuple(trusts)
