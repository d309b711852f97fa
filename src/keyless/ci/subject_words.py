"""A `sub` pattern in words, the part every CI shares: the pattern split into the fields of the
CI's subject grammar, and the phrases for a named, wildcarded or absent value and a git ref.
Each CI module says its own fields in words (``describe_subject``) with these; keyless audit
reads them. Pure: no I/O.
"""

from __future__ import annotations

from keyless.ci.base import SubjectGrammar

__all__ = ["is_wild", "named", "ref_words", "split_fields"]

#: IAM's StringLike wildcards (IAM User Guide, "IAM JSON policy elements: Condition operators").
_WILDCARDS = "*?"


def is_wild(text: str) -> bool:
    return any(c in text for c in _WILDCARDS)


def split_fields(value: str, grammar: SubjectGrammar) -> dict[str, str] | None:
    """The fields of ``value`` by name; a field that ends in a wildcard with nothing after it
    swallows every later field (``*`` crosses ``:`` and ``/``). ``None``: another shape."""
    out: dict[str, str] = {}
    segments = grammar.segments
    position = 0
    for index, segment in enumerate(segments):
        if not value.startswith(segment.literal, position):
            if value[position:] in ("*", "") and index > 0:
                out.update({s.field: "*" for s in segments[index:]})
                return out
            return None
        position += len(segment.literal)
        following = segments[index + 1].literal if index + 1 < len(segments) else None
        end = value.find(following, position) if following else -1
        if end < 0:
            text = value[position:]
            out[segment.field] = text
            if text.endswith("*"):
                out.update({s.field: "*" for s in segments[index + 1 :]})
            # Otherwise later fields are absent (Bitbucket steps outside a deployment).
            return out
        out[segment.field] = value[position:end]
        position = end
    return out


def named(kind: str, plural: str, value: str | None) -> str:
    """``any branch``, ``branches matching rel-*`` or ``branch main``."""
    if value is None or value.strip("*") == "":
        return f"any {kind}"
    if is_wild(value):
        return f"{plural} matching {value}"
    return f"{kind} {value}"


def ref_words(value: str | None) -> str:
    """A git ref (``refs/heads/main``, ``refs/tags/v*``) in words."""
    if value is None or value.strip("*") == "":
        return "any branch, tag or pull request"
    for prefix, kind, plural in (
        ("refs/heads/", "branch", "branches"),
        ("refs/tags/", "tag", "tags"),
        ("refs/pull/", "pull request", "pull requests"),
    ):
        if value.startswith(prefix):
            return named(kind, plural, value[len(prefix) :])
    if "refs/".startswith(value.rstrip("*")) or (value.startswith("refs/") and is_wild(value)):
        return f"refs matching {value}"
    return named("ref", "refs", value)
