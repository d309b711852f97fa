"""Terraform HCL: ``aws_iam_role`` resources' ``assume_role_policy`` written as
``jsonencode({...})``, as heredoc or quoted JSON, or as ``data.aws_iam_policy_document.X.json``
(whose ``statement`` blocks are turned into a policy as the AWS provider documents). References
to ``aws_iam_openid_connect_provider`` resources of the same file resolve to their issuer; any
other expression is kept as an ``{unresolved:...}`` placeholder and reported.

python-hcl2 is imported here only, when a .tf file is audited.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from keyless.audit.inventory import PolicyDocument, RoleRecord, SourceLocation, unresolved
from keyless.errors import UsageError
from keyless.jsonlimits import JsonLimitError, check_json_limits, loads_bounded
from keyless.limits import AUDIT_HCL_MAX_CHARS
from keyless.trust.lines import first_lines

__all__ = ["hcl_object", "roles_of_hcl"]


def _unquote(value: object) -> object:
    """python-hcl2 keeps string literals with their quotes: ``'"deploy"'``."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        if inner.startswith("<<"):
            lines = inner.split("\n")
            return "\n".join(lines[1:-1])
        try:
            loaded = json.loads(value)
            return loaded if isinstance(loaded, str) else inner
        except ValueError:
            return inner
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, dict):
        return {str(_unquote(k)): _unquote(v) for k, v in value.items() if k != "__is_block__"}
    return value


class _Context:
    def __init__(self, providers: Mapping[str, str], documents: Mapping[str, Any]) -> None:
        self.providers = providers
        self.documents = documents
        self.unresolved: list[str] = []

    def reference(self, expression: str) -> str:
        match = re.fullmatch(
            r"(?:data\.)?aws_iam_openid_connect_provider\.([\w-]+)\.arn", expression
        )
        if match and match.group(1) in self.providers:
            host = self.providers[match.group(1)].removeprefix("https://")
            return f"arn:aws:iam::${{account}}:oidc-provider/{host}"
        self.unresolved.append(expression)
        return unresolved(expression)

    def text(self, value: str) -> str:
        """A string with ``${...}`` interpolations resolved or kept as placeholders."""
        whole = re.fullmatch(r"\$\{(.*)\}", value, re.DOTALL)
        if whole and "${" not in whole.group(1):
            return self.reference(whole.group(1).strip())
        return re.sub(r"\$\{([^}]*)\}", lambda m: self.reference(m.group(1).strip()), value)


# --- HCL object syntax as in jsonencode({...}) ---------------------------------------------------

_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<punct>[{}\[\]=:,])|(?P<number>-?\d+(?:\.\d+)?)'
    r"|(?P<word>[A-Za-z_][\w.\-\[\]*]*))",
    re.DOTALL,
)


def hcl_object(text: str, context: _Context) -> object:
    """The value of an HCL object/list/string expression (the argument of jsonencode)."""
    tokens = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match:
            raise ValueError(f"unexpected {text[position : position + 20]!r}")
        tokens.append((match.lastgroup, match.group(match.lastgroup or 0)))
        position = match.end()
    value, end = _value(tokens, 0, context)
    if end != len(tokens):
        raise ValueError("trailing text")
    return value


def _value(
    tokens: list[tuple[str | None, str]], index: int, context: _Context
) -> tuple[object, int]:
    kind, text = tokens[index]
    if kind == "string":
        return context.text(json.loads(text)), index + 1
    if kind == "number":
        return (float(text) if "." in text else int(text)), index + 1
    if kind == "word":
        if text in ("true", "false"):
            return text == "true", index + 1
        if text == "null":
            return None, index + 1
        return context.reference(text), index + 1
    if text == "[":
        items = []
        index += 1
        while tokens[index][1] != "]":
            item, index = _value(tokens, index, context)
            items.append(item)
            if tokens[index][1] == ",":
                index += 1
        return items, index + 1
    if text == "{":
        out: dict[str, object] = {}
        index += 1
        while tokens[index][1] != "}":
            key_kind, key = tokens[index]
            name = json.loads(key) if key_kind == "string" else key
            if tokens[index + 1][1] not in ("=", ":"):
                raise ValueError(f"expected = after {name}")
            out[name], index = _value(tokens, index + 2, context)
            if tokens[index][1] == ",":
                index += 1
        return out, index + 1
    raise ValueError(f"unexpected {text!r}")


# --- data "aws_iam_policy_document" ---------------------------------------------------------------


def _policy_document(block: Mapping[str, Any], context: _Context) -> dict[str, Any]:
    statements = []
    for raw in block.get("statement") or ():
        statement: dict[str, Any] = {"Effect": raw.get("effect", "Allow")}
        if raw.get("sid"):
            statement["Sid"] = raw["sid"]
        for source, target in (("actions", "Action"), ("not_actions", "NotAction")):
            if raw.get(source):
                statement[target] = [context.text(a) for a in raw[source]]
        principals: dict[str, list[str]] = {}
        for principal in raw.get("principals") or ():
            kind = principal.get("type", "AWS")
            principals.setdefault(kind, []).extend(
                context.text(i) for i in principal.get("identifiers") or ()
            )
        if principals:
            statement["Principal"] = principals
        conditions: dict[str, dict[str, list[str]]] = {}
        for condition in raw.get("condition") or ():
            test, variable = condition.get("test"), condition.get("variable")
            values = [context.text(str(v)) for v in condition.get("values") or ()]
            conditions.setdefault(str(test), {}).setdefault(str(variable), []).extend(values)
        if conditions:
            statement["Condition"] = conditions
        statements.append(statement)
    return {"Version": block.get("version", "2012-10-17"), "Statement": statements}


def _blocks(tree: Mapping[str, Any], kind: str, type_name: str) -> Iterator[tuple[str, Any]]:
    for entry in tree.get(kind) or ():
        yield from (entry.get(type_name) or {}).items()


_ROLE_BLOCK = re.compile(r'^[ \t]*resource\s+"aws_iam_role"\s+"([^"]*)"', re.MULTILINE)


def roles_of_hcl(label: str, text: str) -> tuple[RoleRecord, ...]:
    import hcl2

    # python-hcl2 and the jsonencode reader recurse once per level: nesting is checked first on
    # the text (brackets outside strings, as in JSON).
    try:
        check_json_limits(text, max_chars=AUDIT_HCL_MAX_CHARS)
    except JsonLimitError as exc:
        raise UsageError(f"audit input {label} {exc}; split it or simplify it") from None
    try:
        raw = hcl2.loads(text)
    except Exception as exc:  # python-hcl2 raises lark's errors of many kinds
        raise UsageError(
            f"audit input {label} is not valid Terraform HCL: {type(exc).__name__}"
        ) from None
    tree: Mapping[str, Any] = _unquote(raw)  # type: ignore[assignment]
    providers = {
        name: str(body.get("url", ""))
        for kind in ("resource", "data")
        for name, body in _blocks(tree, kind, "aws_iam_openid_connect_provider")
    }
    documents = dict(_blocks(tree, "data", "aws_iam_policy_document"))
    # Each role block's line, in one pass (a search per role from the top cost roles x text).
    role_lines = first_lines(_ROLE_BLOCK, text)
    roles = []
    for name, body in _blocks(tree, "resource", "aws_iam_role"):
        context = _Context(providers, documents)
        trust = _trust(body.get("assume_role_policy"), context)
        inline = tuple(
            PolicyDocument(
                name=str(p.get("name")),
                document=_trust(p.get("policy"), _Context(providers, documents)),
            )
            for p in body.get("inline_policy") or ()
            if isinstance(p, dict)
        )
        role_name = body.get("name")
        role_name = context.text(role_name) if isinstance(role_name, str) else name
        roles.append(
            RoleRecord(
                arn=f"terraform:{label}#aws_iam_role.{name}",
                role_name=role_name,
                account_id=None,
                trust=trust,
                policies=inline,
                unread_policies=tuple(
                    str(a) for a in body.get("managed_policy_arns") or () if isinstance(a, str)
                ),
                source=SourceLocation(file=label, line=role_lines.get(name)),
                unresolved=tuple(dict.fromkeys(context.unresolved)),
            )
        )
    return tuple(roles)


def _trust(value: object, context: _Context) -> object:
    if not isinstance(value, str):
        return value
    stripped = value.strip()
    encoded = re.fullmatch(r"\$\{jsonencode\((.*)\)\}", stripped, re.DOTALL)
    if encoded:
        try:
            return hcl_object(encoded.group(1), context)
        except (ValueError, IndexError):
            context.unresolved.append("jsonencode(...)")
            return {}
    document = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.([\w-]+)\.json\}", stripped)
    if document and document.group(1) in context.documents:
        return _policy_document(context.documents[document.group(1)], context)
    if stripped.startswith("${"):
        context.unresolved.append(stripped[2:-1])
        return {}
    try:
        return loads_bounded(context.text(stripped))
    except ValueError:
        return stripped
