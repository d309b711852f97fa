"""IAM policy documents as frozen values: parsed with exact error locations, serialized stably.

Grammar: IAM User Guide, "IAM JSON policy elements reference" and "Grammar of the IAM JSON policy
language" (reference_policies_elements, reference_policies_grammar).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from keyless.compat import StrEnum
from keyless.errors import PolicyError
from keyless.jsonlimits import JsonLimitError, loads_bounded
from keyless.limits import (
    DOCUMENT_MAX_CHARS,
    POLICY_MAX_STATEMENTS,
    POLICY_MAX_VALUES,
    POLICY_VALUE_MAX_CHARS,
)
from keyless.trust.operators import Operator, parse_operator

__all__ = [
    "Condition",
    "ConditionValue",
    "Effect",
    "Policy",
    "PolicyVersion",
    "Principal",
    "Statement",
    "dumps_policy",
    "loads_document",
    "loads_policy",
    "parse_policy",
    "to_document",
]

#: A condition value as JSON holds it; IAM compares its string form (``true``, ``42``).
ConditionValue = str | int | float | bool


class PolicyVersion(StrEnum):
    V2012_10_17 = "2012-10-17"
    V2008_10_17 = "2008-10-17"


class Effect(StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"


#: Principal types IAM knows; anything else is refused when a policy is saved.
PRINCIPAL_TYPES = ("AWS", "Federated", "Service", "CanonicalUser")


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """``"*"`` (``wildcard``) or ``{"Federated": [...], "AWS": ...}`` in document order."""

    wildcard: bool = False
    entries: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def values(self, kind: str) -> tuple[str, ...]:
        return tuple(value for name, values in self.entries if name == kind for value in values)


def string_form(value: ConditionValue) -> str:
    """The string IAM compares for a JSON condition value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    """One ``operator: {key: values}`` entry of a Condition block."""

    operator: Operator
    key: str
    values: tuple[ConditionValue, ...]
    location: str = field(default="", compare=False)

    @property
    def string_values(self) -> tuple[str, ...]:
        return tuple(string_form(value) for value in self.values)

    @property
    def claim(self) -> str:
        """The part after the last ``:`` of the key: ``sub`` for ``host/path:sub``."""
        return self.key.rpartition(":")[2]


@dataclass(frozen=True, slots=True, kw_only=True)
class Statement:
    index: int
    sid: str | None = None
    effect: Effect
    principal: Principal | None = None
    not_principal: Principal | None = None
    action: tuple[str, ...] | None = None
    not_action: tuple[str, ...] | None = None
    resource: tuple[str, ...] | None = None
    not_resource: tuple[str, ...] | None = None
    #: ``None`` when the statement has no Condition element; ``()`` for an empty ``{}``.
    conditions: tuple[Condition, ...] | None = None
    location: str = field(default="", compare=False)

    @property
    def label(self) -> str:
        """How messages name the statement: ``Statement[1] (Sid "Deploy")``."""
        return f'{self.location} (Sid "{self.sid}")' if self.sid else self.location

    @property
    def federated(self) -> tuple[str, ...]:
        return self.principal.values("Federated") if self.principal else ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    version: PolicyVersion | None = None
    id: str | None = None
    statements: tuple[Statement, ...] = ()

    @property
    def variables_enabled(self) -> bool:
        # Policy variables need Version 2012-10-17; otherwise `${...}` is literal text.
        return self.version is PolicyVersion.V2012_10_17


# --- parsing -------------------------------------------------------------------------------------

_TOP_ELEMENTS = ("Version", "Id", "Statement")
_STATEMENT_ELEMENTS = (
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
)


class _Object(dict[str, Any]):
    """A JSON object that remembers keys it saw more than once (``json`` keeps only the last)."""

    duplicates: tuple[str, ...] = ()


def _pairs(pairs: list[tuple[str, Any]]) -> _Object:
    result = _Object()
    seen: list[str] = []
    for key, value in pairs:
        if key in result:
            seen.append(key)
        result[key] = value
    result.duplicates = tuple(seen)
    return result


def loads_policy(text: str) -> Policy:
    """Parse a policy from JSON text; a syntax error names its line and column."""
    return parse_policy(loads_document(text))


def loads_document(text: str, *, max_chars: int = DOCUMENT_MAX_CHARS) -> object:
    """JSON text decoded within keyless' limits, every object remembering keys it saw twice (so
    ``parse_policy`` refuses them); ``PolicyError`` naming the line and column of a syntax error."""
    try:
        return loads_bounded(text, max_chars=max_chars, object_pairs_hook=_pairs)
    except JsonLimitError as exc:
        raise PolicyError(f"the document {exc}", remedy=_SPLIT) from None
    except json.JSONDecodeError as exc:
        raise PolicyError(
            f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise PolicyError(f"not valid JSON: {exc}") from None


_SPLIT = "IAM's own quotas are far smaller; check the file is the policy you meant."


def parse_policy(document: object) -> Policy:
    """A policy from an already decoded JSON document, or ``PolicyError`` naming where and why."""
    top = _mapping(document, "policy")
    _check_elements(top, _TOP_ELEMENTS, "policy")
    version: PolicyVersion | None = None
    if "Version" in top:
        raw = top["Version"]
        try:
            version = PolicyVersion(raw)
        except ValueError:
            raise PolicyError(
                f'Version: {raw!r} is not a policy language version (use "2012-10-17")'
            ) from None
    policy_id = _optional_string(top, "Id", "Id")
    if "Statement" not in top:
        raise PolicyError("policy: no Statement element")
    raw_statements = top["Statement"]
    statements: list[Statement] = []
    if isinstance(raw_statements, Mapping):
        statements.append(_statement(raw_statements, 0, "Statement"))
    elif isinstance(raw_statements, list):
        if len(raw_statements) > POLICY_MAX_STATEMENTS:
            raise PolicyError(
                f"Statement: {len(raw_statements)} statements, more than the"
                f" {POLICY_MAX_STATEMENTS} keyless reads in one policy",
                remedy=_SPLIT,
            )
        for index, item in enumerate(raw_statements):
            statements.append(_statement(item, index, f"Statement[{index}]"))
    else:
        raise PolicyError("Statement: must be an object or a list of objects")
    seen: set[str] = set()
    for sid in (s.sid for s in statements if s.sid):
        if sid in seen:
            raise PolicyError(f"Statement: Sid {sid!r} is used more than once")
        seen.add(sid)
    return Policy(version=version, id=policy_id, statements=tuple(statements))


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"{where}: must be a JSON object, not {_json_type(value)}")
    duplicates = getattr(value, "duplicates", ())
    if duplicates:
        raise PolicyError(
            f"{where}: key {duplicates[0]!r} appears more than once"
            " (JSON keeps only the last one, so what is read is not what is written)"
        )
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _check_elements(obj: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            near = [name for name in allowed if name.lower() == key.lower()]
            hint = f" (element names are case-sensitive: {near[0]})" if near else ""
            raise PolicyError(f"{where}: unknown element {key!r}{hint}")


def _optional_string(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    if key not in obj:
        return None
    value = obj[key]
    if not isinstance(value, str):
        raise PolicyError(f"{where}: must be a string, not {_json_type(value)}")
    return value


def _check_count(items: Sequence[Any], where: str) -> None:
    if len(items) > POLICY_MAX_VALUES:
        raise PolicyError(
            f"{where}: {len(items)} values, more than the {POLICY_MAX_VALUES} keyless reads"
            " in one list",
            remedy=_SPLIT,
        )


def _check_length(text: str, at: str) -> None:
    # Bounds the wildcard matcher's work on this value (keyless.trust.glob).
    if len(text) > POLICY_VALUE_MAX_CHARS:
        raise PolicyError(
            f"{at}: a value of {len(text)} characters, more than the {POLICY_VALUE_MAX_CHARS}"
            " keyless reads",
            remedy=_SPLIT,
        )


def _strings(value: object, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise PolicyError(f"{where}: an empty list matches nothing; name at least one value")
    _check_count(items, where)
    result: list[str] = []
    for position, item in enumerate(items):
        at = f"{where}[{position}]" if isinstance(value, list) else where
        if not isinstance(item, str) or not item:
            raise PolicyError(f"{at}: must be a non-empty string, not {_json_type(item)}")
        _check_length(item, at)
        result.append(item)
    return tuple(result)


def _statement(raw: object, index: int, where: str) -> Statement:
    obj = _mapping(raw, where)
    _check_elements(obj, _STATEMENT_ELEMENTS, where)
    effect_raw = obj.get("Effect")
    if effect_raw is None:
        raise PolicyError(f"{where}: no Effect element")
    try:
        effect = Effect(effect_raw)
    except ValueError:
        raise PolicyError(
            f'{where}.Effect: {effect_raw!r} is neither "Allow" nor "Deny" (case-sensitive)'
        ) from None
    if ("Action" in obj) == ("NotAction" in obj):
        raise PolicyError(f"{where}: needs exactly one of Action and NotAction")
    if "Principal" in obj and "NotPrincipal" in obj:
        raise PolicyError(f"{where}: has both Principal and NotPrincipal")
    return Statement(
        index=index,
        sid=_optional_string(obj, "Sid", f"{where}.Sid"),
        effect=effect,
        principal=_principal(obj["Principal"], f"{where}.Principal")
        if "Principal" in obj
        else None,
        not_principal=(
            _principal(obj["NotPrincipal"], f"{where}.NotPrincipal")
            if "NotPrincipal" in obj
            else None
        ),
        action=_strings(obj["Action"], f"{where}.Action") if "Action" in obj else None,
        not_action=_strings(obj["NotAction"], f"{where}.NotAction") if "NotAction" in obj else None,
        resource=_strings(obj["Resource"], f"{where}.Resource") if "Resource" in obj else None,
        not_resource=(
            _strings(obj["NotResource"], f"{where}.NotResource") if "NotResource" in obj else None
        ),
        conditions=(
            _conditions(obj["Condition"], f"{where}.Condition") if "Condition" in obj else None
        ),
        location=where,
    )


def _principal(raw: object, where: str) -> Principal:
    if raw == "*":
        return Principal(wildcard=True)
    if isinstance(raw, str):
        raise PolicyError(f'{where}: a string principal must be "*"; use {{"Federated": ...}}')
    obj = _mapping(raw, where)
    if not obj:
        raise PolicyError(f"{where}: empty; name the principal")
    entries: list[tuple[str, tuple[str, ...]]] = []
    for kind, values in obj.items():
        if kind not in PRINCIPAL_TYPES:
            raise PolicyError(
                f"{where}: unknown principal type {kind!r} (one of {', '.join(PRINCIPAL_TYPES)})"
            )
        entries.append((kind, _strings(values, f"{where}.{kind}")))
    return Principal(entries=tuple(entries))


def _conditions(raw: object, where: str) -> tuple[Condition, ...]:
    block = _mapping(raw, where)
    result: list[Condition] = []
    for operator_name, entries in block.items():
        at = f"{where}.{operator_name}"
        try:
            op = parse_operator(operator_name)
        except PolicyError as exc:
            raise PolicyError(f"{at}: {exc.message}") from None
        keys = _mapping(entries, at)
        if not keys:
            # Empty means deny: an operator with no keys is refused rather than passed vacuously.
            raise PolicyError(f"{at}: no condition keys")
        for key, values in keys.items():
            key_at = f'{at}["{key}"]'
            if not key:
                raise PolicyError(f"{at}: empty condition key")
            parsed = _values(values, key_at)
            for value in parsed:
                text = string_form(value)
                if op.base.supports_variables and "${" in text:
                    continue
                problem = op.base.validate(text)
                if problem:
                    raise PolicyError(f"{key_at}: {problem} (operator {op.name})")
            result.append(Condition(operator=op, key=key, values=parsed, location=key_at))
    return tuple(result)


def _values(raw: object, where: str) -> tuple[ConditionValue, ...]:
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise PolicyError(f"{where}: an empty list of values matches nothing")
    _check_count(items, where)
    result: list[ConditionValue] = []
    for position, item in enumerate(items):
        at = f"{where}[{position}]" if isinstance(raw, list) else where
        if isinstance(item, str | bool | int | float):
            if isinstance(item, str):
                _check_length(item, at)
            result.append(item)
            continue
        raise PolicyError(f"{at}: a condition value must be a string, number or boolean")
    return tuple(result)


# --- serialization -------------------------------------------------------------------------------


def _one_or_list(values: Sequence[Any]) -> Any:
    return values[0] if len(values) == 1 else list(values)


def _principal_document(principal: Principal) -> Any:
    if principal.wildcard:
        return "*"
    return {kind: _one_or_list(values) for kind, values in principal.entries}


def _condition_document(conditions: Sequence[Condition]) -> dict[str, dict[str, Any]]:
    block: dict[str, dict[str, Any]] = {}
    for condition in conditions:
        block.setdefault(condition.operator.name, {})[condition.key] = _one_or_list(
            condition.values
        )
    return block


def _statement_document(statement: Statement) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if statement.sid is not None:
        doc["Sid"] = statement.sid
    doc["Effect"] = statement.effect.value
    if statement.principal is not None:
        doc["Principal"] = _principal_document(statement.principal)
    if statement.not_principal is not None:
        doc["NotPrincipal"] = _principal_document(statement.not_principal)
    for name, values in (
        ("Action", statement.action),
        ("NotAction", statement.not_action),
        ("Resource", statement.resource),
        ("NotResource", statement.not_resource),
    ):
        if values is not None:
            doc[name] = _one_or_list(values)
    if statement.conditions is not None:
        doc["Condition"] = _condition_document(statement.conditions)
    return doc


def to_document(policy: Policy) -> dict[str, Any]:
    """The policy as a JSON-ready dict in IAM's element order; ``Statement`` is always a list."""
    doc: dict[str, Any] = {}
    if policy.version is not None:
        doc["Version"] = policy.version.value
    if policy.id is not None:
        doc["Id"] = policy.id
    doc["Statement"] = [_statement_document(s) for s in policy.statements]
    return doc


def dumps_policy(policy: Policy) -> str:
    """Stable JSON text: same policy, same bytes (element order fixed, two-space indent)."""
    return json.dumps(to_document(policy), indent=2, ensure_ascii=False) + "\n"


def iter_conditions(policy: Policy) -> Iterator[tuple[Statement, Condition]]:
    for statement in policy.statements:
        for condition in statement.conditions or ():
            yield statement, condition
