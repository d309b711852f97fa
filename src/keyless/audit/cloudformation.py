"""Roles of a CloudFormation template, with the intrinsics of their trust that the template fixes
by itself resolved and the others kept as placeholders."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from keyless.audit.inventory import (
    Inventory,
    PolicyDocument,
    RoleRecord,
    SourceLocation,
    unresolved,
)
from keyless.trust.lines import first_lines

#: Pseudo parameters that do not change who a trust admits (the account is the provider's own).
_PSEUDO = frozenset({"AWS::AccountId", "AWS::Partition", "AWS::Region", "AWS::URLSuffix"})


class _Resolver:
    """Resolves the intrinsics of one CloudFormation role's trust that a template fixes by
    itself; anything else becomes an ``{unresolved:...}`` placeholder, recorded."""

    def __init__(self, resources: Mapping[str, Any]) -> None:
        self.resources = resources
        self.unresolved: list[str] = []

    def _miss(self, expression: str) -> str:
        self.unresolved.append(expression)
        return unresolved(expression)

    def _provider_arn(self, logical: str) -> str | None:
        resource = self.resources.get(logical)
        if isinstance(resource, dict) and resource.get("Type") == "AWS::IAM::OIDCProvider":
            url = (resource.get("Properties") or {}).get("Url")
            if isinstance(url, str):
                return (
                    f"arn:aws:iam::${{AWS::AccountId}}:oidc-provider/{url.removeprefix('https://')}"
                )
        return None

    def resolve(self, value: object) -> object:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((name, argument),) = value.items()
            if name == "Ref":
                if argument in _PSEUDO:
                    return f"${{{argument}}}"
                return self._provider_arn(str(argument)) or self._miss(f"Ref {argument}")
            if name == "Fn::GetAtt":
                target = argument[0] if isinstance(argument, list) else str(argument).split(".")[0]
                return self._provider_arn(str(target)) or self._miss(f"Fn::GetAtt {argument}")
            if name == "Fn::Sub":
                return self._sub(argument)
            if name == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
                parts = self.resolve(argument[1])
                if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
                    return str(argument[0]).join(parts)
            if name.startswith("Fn::") or name == "Condition":
                return self._miss(f"{name} {json.dumps(argument)[:80]}")
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, argument: object) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (None, {})
        if isinstance(argument, list) and argument and isinstance(argument[0], str):
            text = argument[0]
            variables = argument[1] if len(argument) > 1 and isinstance(argument[1], dict) else {}
        if text is None:
            return self._miss("Fn::Sub")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in _PSEUDO:
                return match.group(0)
            given = variables.get(name)
            if isinstance(given, str):
                return given
            arn = self._provider_arn(name.split(".")[0])
            return arn or self._miss(f"Fn::Sub ${{{name}}}")

        return re.sub(r"\$\{([^}]+)\}", replace, text)


# A mapping key at the start of a line, YAML (`Deploy:`) or pretty-printed JSON (`"Deploy": {`).
# Logical IDs are alphanumeric (AWS CloudFormation User Guide, "Resources": "The logical ID must
# be alphanumeric (A-Za-z0-9) and unique within the template").
_KEY_AT_LINE_START = re.compile(r'^[ \t]*"?([A-Za-z0-9]+)"?\s*:', re.MULTILINE)


class _KeyLines:
    """The first line of each alphanumeric key in a template's text, found in one pass (one
    search per role from the top cost roles x text: 2,000 roles took 7 s)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._first = first_lines(_KEY_AT_LINE_START, text)

    def line_of(self, key: str) -> int | None:
        if key.isascii() and key.isalnum():
            return self._first.get(key)
        # Not a valid logical ID, so not in the index: searched on its own.
        pattern = re.compile(rf'^[ \t]*"?({re.escape(key)})"?\s*:', re.MULTILINE)
        return first_lines(pattern, self._text).get(key)


def roles_of_template(label: str, text: str, document: Mapping[str, Any]) -> Inventory:
    resources = document.get("Resources") or {}
    key_lines = _KeyLines(text)
    roles = []
    for logical, resource in resources.items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::IAM::Role":
            continue
        properties = resource.get("Properties") or {}
        resolver = _Resolver(resources)
        trust = resolver.resolve(properties.get("AssumeRolePolicyDocument"))
        name = properties.get("RoleName")
        inline = tuple(
            PolicyDocument(
                name=str(p.get("PolicyName")),
                document=_Resolver(resources).resolve(p.get("PolicyDocument")),
            )
            for p in properties.get("Policies") or ()
            if isinstance(p, dict)
        )
        managed = [m for m in properties.get("ManagedPolicyArns") or () if isinstance(m, str)]
        roles.append(
            RoleRecord(
                arn=f"cloudformation:{label}#{logical}",
                role_name=name if isinstance(name, str) else str(logical),
                account_id=None,
                trust=trust,
                policies=inline,
                unread_policies=tuple(managed),
                source=SourceLocation(file=label, line=key_lines.line_of(str(logical))),
                unresolved=tuple(dict.fromkeys(resolver.unresolved)),
            )
        )
    return Inventory(roles=tuple(roles))
