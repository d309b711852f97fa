"""The request context IAM tests conditions against: claims as condition keys, session tags,
global keys, and policy variables expanded in condition values.

Sources (IAM User Guide): "Available keys for web identity federation", "Passing session tags in
AssumeRoleWithWebIdentity", "Policy variables", "Multivalued context keys".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keyless.trust.operators import UNKNOWN, Chunk, ContextValue, Expanded, Unknown, literal_pattern
from keyless.trust.verdict import Request
from keyless.trust.web_identity import TAGS_CLAIM, Exposure, issuer_prefix

# --- condition keys -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resolved:
    actual: ContextValue | Unknown | None
    note: str | None = None
    #: True when the token has the claim but AWS does not expose it.
    hidden: bool = False


def _context_value(value: object) -> ContextValue | Unknown | None:
    """A claim as IAM holds it: strings as they are, numbers and booleans as their JSON text,
    arrays as multivalued keys; objects are not condition values."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list | tuple):
        items = [_context_value(item) for item in value]
        if all(isinstance(item, str) for item in items):
            return tuple(item for item in items if isinstance(item, str))
    return UNKNOWN


class RequestContext:
    """What IAM knows of one request: each condition key resolved to its value or why not."""

    def __init__(self, request: Request, exposure: Exposure) -> None:
        self.request = request
        self.exposure = exposure
        self.prefix = issuer_prefix(request.issuer)
        self._given = {key.lower(): value for key, value in request.context.items()}
        self._exposed = {claim.lower(): claim for claim in exposure.claims}
        self._tags, self._tags_note = _session_tags(request.claims)

    def resolve(self, key: str) -> Resolved:
        lowered = key.lower()  # condition key names are case-insensitive
        if lowered in self._given:
            return Resolved(self._given[lowered])
        own = f"{self.prefix.lower()}:"
        if lowered.startswith(own):
            return self._claim(key[len(own) :])
        if lowered.startswith(("aws:", "sts:")):
            return self._global(key, lowered)
        return Resolved(
            None, f"not a key of this token's issuer ({self.prefix}): absent in the request"
        )

    def _claim(self, claim: str) -> Resolved:
        canonical = self._exposed.get(claim.lower())
        present = claim in self.request.claims
        if canonical is None and present and claim in self.exposure.unconfirmed:
            return Resolved(
                UNKNOWN,
                f"whether AWS exposes `{claim}` for {self.exposure.name} is not documented",
            )
        if canonical is None:
            note = (
                f"AWS does not expose `{claim}` as a condition key for {self.exposure.name}:"
                " IAM sees it as absent"
                + (" (the token has the claim, but IAM never reads it)" if present else "")
            )
            return Resolved(None, note, hidden=present)
        if canonical not in self.request.claims:
            return Resolved(None, f"the token has no `{canonical}` claim")
        value = _context_value(self.request.claims[canonical])
        if value is UNKNOWN:
            return Resolved(UNKNOWN, f"`{canonical}` is not a string, number, boolean or list")
        return Resolved(value)

    def _global(self, key: str, lowered: str) -> Resolved:
        if self._tags is None:
            tags_unknown = Resolved(UNKNOWN, self._tags_note)
            if lowered.startswith("aws:requesttag/") or lowered in (
                "aws:tagkeys",
                "sts:transitivetagkeys",
            ):
                return tags_unknown
        else:
            principal_tags, transitive = self._tags
            if lowered.startswith("aws:requesttag/"):
                wanted = key.split("/", 1)[1]
                # Tag keys are case-insensitive in IAM matching of RequestTag keys.
                for tag, value in principal_tags.items():
                    if tag.lower() == wanted.lower():
                        return Resolved(value)
                return Resolved(None, f"the token carries no session tag `{wanted}`")
            if lowered == "aws:tagkeys":
                keys = tuple(principal_tags)
                return Resolved(keys if keys else None)
            if lowered == "sts:transitivetagkeys":
                return Resolved(transitive if transitive else None)
        return Resolved(
            UNKNOWN,
            f"keyless cannot know `{key}` offline; give it in the request context to evaluate it",
        )


def _session_tags(
    claims: Mapping[str, Any],
) -> tuple[tuple[dict[str, str], tuple[str, ...]] | None, str | None]:
    """Session tags from the token's tags claim: ``({tag: value}, transitive keys)``."""
    raw = claims.get(TAGS_CLAIM)
    if raw is None:
        return ({}, ()), None
    bad = None, f"the token's `{TAGS_CLAIM}` claim does not have the documented shape"
    if not isinstance(raw, Mapping):
        return bad
    principal_tags = raw.get("principal_tags", {})
    transitive = raw.get("transitive_tag_keys", [])
    if not isinstance(principal_tags, Mapping) or not isinstance(transitive, list | tuple):
        return bad
    tags: dict[str, str] = {}
    for tag, value in principal_tags.items():
        # Documented shape: {"Project": ["Automation"]}, one value per tag.
        if isinstance(value, list | tuple) and len(value) == 1 and isinstance(value[0], str):
            tags[str(tag)] = value[0]
        elif isinstance(value, str):
            tags[str(tag)] = value
        else:
            return bad
    if not all(isinstance(key, str) for key in transitive):
        return bad
    return (tags, tuple(transitive)), None


# --- policy variables ----------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def variable_default(inner: str) -> tuple[str, str] | None:
    """``key, 'default'`` inside ``${...}`` as (key, default), or ``None`` without a default.

    The same reading as the regex ``\\s*([^,]+?)\\s*,\\s*'([^']*)'\\s*`` (a key without
    commas, then one quoted default), done by splitting: that regex backtracks in cubic time
    on a long run of spaces."""
    head, comma, tail = inner.partition(",")
    if not comma or not head:
        return None
    quoted = tail.strip()
    if len(quoted) < 2 or quoted[0] != "'" or quoted[-1] != "'" or "'" in quoted[1:-1]:
        return None
    # An all-space key: the regex's lazy group keeps the last character.
    return head.strip() or head[-1], quoted[1:-1]


def expand_variables(text: str, ctx: RequestContext, *, wildcards: bool) -> Expanded:
    """``text`` with ``${...}`` replaced (reference_policies_variables): ``${*}``, ``${?}`` and
    ``${$}`` are the literal characters; ``${key, 'default'}`` falls back to the default; a
    missing key is a null that matches nothing."""
    chunks: list[Chunk] = []
    position = 0
    null = False
    unknown = False
    for match in _VARIABLE.finditer(text):
        if match.start() > position:
            chunks.append(Chunk(text[position : match.start()]))
        position = match.end()
        inner = match.group(1)
        if inner in ("*", "?", "$"):
            chunks.append(Chunk(inner, active=False))
            continue
        default: str | None = None
        with_default = variable_default(inner)
        key = inner.strip()
        if with_default:
            key, default = with_default
        resolved = ctx.resolve(key).actual
        if resolved is None and default is not None:
            resolved = default
        if resolved is None:
            null = True
        elif isinstance(resolved, Unknown | tuple):
            # Multivalued keys cannot be policy variables (multivalued context keys page).
            unknown = True
        elif wildcards and ("*" in resolved or "?" in resolved):
            # Whether a substituted `*` is a wildcard is not documented.
            unknown = True
        else:
            chunks.append(Chunk(resolved, active=False))
    if position < len(text):
        chunks.append(Chunk(text[position:]))
    if null:
        return None
    if unknown:
        return UNKNOWN
    return tuple(chunks) if chunks else literal_pattern("")
