"""The trust policies in what ``aws iam`` prints: a policy document on its own, ``get-role``
(``Role``), a ``list-roles`` page (``Roles``) or a JSON list of pages, and
``get-account-authorization-details`` (``RoleDetailList``). Each role's
``AssumeRolePolicyDocument`` is parsed as ``parse_policy`` parses any policy, and its place in the
text is kept so findings get the line of their role. Pure: the caller reads the file.

The IAM API returns the document URL-encoded (IAM API Reference, ``Role`` data type:
AssumeRolePolicyDocument, "URL-encoded compliant with RFC 3986"); the AWS CLI and boto3 decode
it. Both forms are read.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from keyless.errors import PolicyError
from keyless.limits import DOCUMENT_MAX_CHARS, IAM_OUTPUT_MAX_CHARS, IAM_OUTPUT_MAX_ROLES
from keyless.trust.model import Policy, loads_document, parse_policy

__all__ = ["RoleTrust", "read_trusts"]

_DOCUMENT = "AssumeRolePolicyDocument"
_ANCHOR = re.compile(r'"AssumeRolePolicyDocument"\s*:')
#: The keys that hold roles, in the order they are looked for.
_ROLE_LISTS = ("RoleDetailList", "Roles")
#: A document with one of these is a policy with a mistake, not some other JSON.
_POLICY_KEYS = frozenset({"Version", "Id", "Statement"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleTrust:
    """One trust policy: its role (``None`` for a policy document on its own), where the role sits
    in the output (``Roles[3]``), and the part of the text that holds it (``start``, ``end``)."""

    role: str | None
    where: str
    policy: Policy
    start: int = 0
    end: int | None = None


def read_trusts(text: str) -> tuple[RoleTrust, ...]:
    """The trust policies in ``text``; ``PolicyError`` naming the role and the element when one
    cannot be read, or the policy parser's own error when ``text`` is no IAM output at all."""
    policy_error: PolicyError | None = None
    if len(text) <= DOCUMENT_MAX_CHARS:
        try:
            return (RoleTrust(role=None, where="", policy=parse_policy(loads_document(text))),)
        except PolicyError as exc:
            policy_error = exc
    document = loads_document(text, max_chars=IAM_OUTPUT_MAX_CHARS)
    found = list(_roles(document))
    if not found:
        # Only an object without any policy element is some other JSON; anything else is a
        # policy with a mistake in it, which its parser's message names best.
        meant_as_policy = not isinstance(document, Mapping) or bool(_POLICY_KEYS & set(document))
        if meant_as_policy and policy_error is not None:
            raise policy_error
        raise PolicyError(
            "neither a policy document nor aws iam output with roles (no Statement, Role,"
            " Roles or RoleDetailList)"
            + (
                f"; and {len(text)} characters, more than the {DOCUMENT_MAX_CHARS} of a policy"
                if policy_error is None
                else ""
            )
        )
    if len(found) > IAM_OUTPUT_MAX_ROLES:
        raise PolicyError(
            f"{len(found)} roles, more than the {IAM_OUTPUT_MAX_ROLES} IAM allows in one account;"
            " lint one account's output per file"
        )
    anchors = [match.start() for match in _ANCHOR.finditer(text)]
    # Document order is text order; when a key was seen elsewhere (inside a policy), the roles'
    # places are unknown and their findings point at line 1 rather than at a wrong role.
    placed = len(anchors) == len(found)
    trusts: list[RoleTrust] = []
    for index, (where, role) in enumerate(found):
        name = role.get("RoleName")
        label = f'{where} (RoleName "{name}")' if isinstance(name, str) else where
        policy = _policy(role.get(_DOCUMENT), label)
        start = anchors[index] if placed else 0
        end = (anchors[index + 1] if index + 1 < len(anchors) else len(text)) if placed else 0
        trusts.append(
            RoleTrust(
                role=name if isinstance(name, str) else (where or None),
                where=where,
                policy=policy,
                start=start,
                end=end,
            )
        )
    return tuple(trusts)


def _roles(document: object) -> Iterator[tuple[str, Mapping[str, object]]]:
    """``(where, role)`` for each role object of ``document``, in document order."""
    if isinstance(document, list):
        for page_index, page in enumerate(document):
            if isinstance(page, Mapping) and isinstance(page.get("Roles"), list):
                yield from _listed(page["Roles"], f"[{page_index}].Roles")
        return
    if not isinstance(document, Mapping):
        return
    for key in _ROLE_LISTS:
        if isinstance(document.get(key), list):
            yield from _listed(document[key], key)
            return
    single = document.get("Role")
    if isinstance(single, Mapping):
        yield "Role", single
    elif isinstance(document.get(_DOCUMENT), Mapping | str):
        yield "", document


def _listed(items: list[object], key: str) -> Iterator[tuple[str, Mapping[str, object]]]:
    for index, item in enumerate(items):
        where = f"{key}[{index}]"
        if not isinstance(item, Mapping):
            raise PolicyError(f"{where}: must be a role object")
        yield where, item


def _policy(raw: object, label: str) -> Policy:
    at = f"{label}.{_DOCUMENT}" if label else _DOCUMENT
    if raw is None:
        raise PolicyError(f"{at}: missing; the role's trust policy is not in this output")
    if isinstance(raw, str):
        # The IAM API's own form; one policy, so a policy's limit.
        try:
            raw = loads_document(urllib.parse.unquote(raw))
        except PolicyError as exc:
            raise PolicyError(f"{at} (URL-encoded): {exc.message}") from None
    try:
        return parse_policy(raw)
    except PolicyError as exc:
        raise PolicyError(f"{at}: {exc.message}") from None
