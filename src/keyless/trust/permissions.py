"""Whether a role's permissions policy writes anything: what `trust lint --permissions FILE`
tells the rules whose grade depends on it (docs/lint-severity.md#what-lint-knows).

Pure: it reads a parsed policy document. An action counts as read-only when its name starts with
one of AWS's read verbs (Get, List, Describe, ...); a wildcard verb, NotAction, or any other
verb counts as writing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["READ_VERBS", "writes"]

#: Verbs of AWS actions that only read (the "Read" and "List" access levels of the Service
#: Authorization Reference are, by convention, named with these).
READ_VERBS = ("get", "list", "describe", "head", "batchget", "query", "scan", "select", "view")


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    # get-role-policy / get-policy-version output wraps the document.
    for key in ("PolicyDocument", "Document"):
        if isinstance(document.get(key), Mapping):
            document = document[key]
    if isinstance(document.get("PolicyVersion"), Mapping):
        return _statements(document["PolicyVersion"])
    statements = document.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    return [s for s in statements if isinstance(s, Mapping)]


def _reads(action: str) -> bool:
    _, _, verb = action.lower().partition(":")
    return verb.startswith(READ_VERBS)


def writes(document: Mapping[str, Any]) -> bool:
    """True when an Allow statement of ``document`` grants an action that is not read-only."""
    for statement in _statements(document):
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            return True
        actions = statement.get("Action", [])
        if isinstance(actions, str):
            actions = [actions]
        if any(not isinstance(a, str) or not _reads(a) for a in actions):
            return True
    return False
