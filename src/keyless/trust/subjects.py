"""The shape of a token subject (`sub`) value: where its first wildcard falls in the CI's subject
grammar, and so how much of the CI it admits.

Pure: it reads only the CI's subject grammar (``keyless.ci.base.SubjectGrammar``) and the glob
matcher. The lint rules on `sub` grade by the ``Breadth`` this returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from keyless.ci.base import SegmentRole, SubjectGrammar, SubjectSegment
from keyless.compat import StrEnum
from keyless.trust.glob import compile_glob
from keyless.trust.work import current as current_work

__all__ = ["WILDCARDS", "Breadth", "SubjectShape", "subject_shape"]


class Breadth(StrEnum):
    """How much a `sub` value admits, narrowest first."""

    EXACT = "exact"
    PER_RUN = "per-run"  # wildcards only over values that change every run
    UNRECOGNISED = "unrecognised"
    REPO_WIDE = "repo-wide"
    MUTABLE_PREFIX = "mutable-prefix"
    #: A MUTABLE_PREFIX value whose wildcard covers a whole field with a later one pinned
    #: (``SubjectShape.open_type``); lint's rules tell them apart, ``subject_shape`` never
    #: returns it.
    FIELD_BOUNDARY = "field-boundary"
    ORG_WIDE = "org-wide"
    CROSS_TENANT = "cross-tenant"
    ALL = "all"

    @property
    def rank(self) -> int:
        return list(Breadth).index(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectShape:
    breadth: Breadth
    segment: SubjectSegment | None = None
    #: The literal text of the field before the wildcard.
    consumed: str = ""
    #: The literal fields read before the wildcard (or all of them for an exact value).
    fields: tuple[tuple[SubjectSegment, str], ...] = ()
    #: The wildcard covers a whole field while a later field is pinned (GitLab `ref_type:*`).
    open_type: bool = False


WILDCARDS = "*?"


def _first_wildcard(value: str, start: int, wildcards: bool) -> int | None:
    if not wildcards:
        return None
    positions = [i for i in range(start, len(value)) if value[i] in WILDCARDS]
    return positions[0] if positions else None


def _context_breadth(segment: SubjectSegment, consumed: str, rest_pinned: bool) -> Breadth:
    if rest_pinned:
        # e.g. GitLab `ref_type:*:ref:main`: a tag named `main` also satisfies it.
        return Breadth.MUTABLE_PREFIX
    if not consumed or any(prefix.startswith(consumed) for prefix in segment.name_prefixes):
        return Breadth.REPO_WIDE
    return Breadth.MUTABLE_PREFIX


def subject_shape(
    value: str, grammar: SubjectGrammar, *, wildcards: bool, tenant_in_issuer: bool = False
) -> SubjectShape:
    """Where the first wildcard of ``value`` falls in the CI's subject grammar, and so how wide it
    is. Wildcards over opaque per-run values (step UUID, user id, commit) are passed over; any other
    wildcard decides, because an attacker chooses what it matches
    (docs/security-model.md#wildcards)."""
    work = current_work()
    if work is not None:
        work.shapes += 1
    if wildcards and compile_glob(value).match(grammar.example()):
        return SubjectShape(breadth=Breadth.ALL)
    segments = grammar.segments
    if not segments:
        return SubjectShape(breadth=Breadth.UNRECOGNISED)
    fields: list[tuple[SubjectSegment, str]] = []
    position = 0
    first = _first_wildcard(value, 0, wildcards)
    for index, segment in enumerate(segments):
        literal = segment.literal
        if first is not None and first < position + len(literal):
            if value[position:first] != literal[: first - position]:
                return SubjectShape(breadth=Breadth.UNRECOGNISED, fields=tuple(fields))
            return _classify(segment, "", False, tenant_in_issuer, fields)
        if not value.startswith(literal, position):
            return SubjectShape(breadth=Breadth.UNRECOGNISED, fields=tuple(fields))
        position += len(literal)
        following = segments[index + 1].literal if index + 1 < len(segments) else None
        end = value.find(following, position) if following else -1
        field_end = end if end >= 0 else len(value)
        if first is not None and first < field_end:
            consumed = value[position:first]
            skippable = segment.role in (SegmentRole.ACTOR, SegmentRole.PER_RUN) or (
                tenant_in_issuer and segment.role is SegmentRole.TENANT
            )
            if skippable and end >= 0:
                fields.append((segment, value[position:end]))
                position = end
                first = _first_wildcard(value, end, wildcards)
                continue
            if skippable and segment.role is not SegmentRole.TENANT:
                return SubjectShape(breadth=Breadth.PER_RUN, fields=tuple(fields))
            if following and following[0] in consumed:
                # The wildcard sits in the next literal (`project_path:g/p:*`).
                cut = consumed.index(following[0])
                if not following.startswith(consumed[cut:]):
                    return SubjectShape(breadth=Breadth.UNRECOGNISED, fields=tuple(fields))
                fields.append((segment, consumed[:cut]))
                return _classify(segments[index + 1], "", False, tenant_in_issuer, fields)
            rest = value[end + len(following) :] if following and end >= 0 else ""
            rest_pinned = bool(rest.strip(WILDCARDS))
            return _classify(segment, consumed, rest_pinned, tenant_in_issuer, fields)
        if end < 0:
            fields.append((segment, value[position:]))
            return SubjectShape(breadth=Breadth.EXACT, fields=tuple(fields))
        fields.append((segment, value[position:end]))
        position = end
    return SubjectShape(breadth=Breadth.EXACT, fields=tuple(fields))


def _classify(
    segment: SubjectSegment,
    consumed: str,
    rest_pinned: bool,
    tenant_in_issuer: bool,
    fields: list[tuple[SubjectSegment, str]],
) -> SubjectShape:
    role = segment.role
    if role is SegmentRole.PATH:
        breadth = Breadth.ORG_WIDE if "/" in consumed else Breadth.CROSS_TENANT
    elif role is SegmentRole.TENANT:
        breadth = Breadth.ORG_WIDE if tenant_in_issuer else Breadth.CROSS_TENANT
    elif role is SegmentRole.REPOSITORY:
        breadth = Breadth.ORG_WIDE
    elif role is SegmentRole.CONTEXT:
        breadth = _context_breadth(segment, consumed, rest_pinned)
    else:
        breadth = Breadth.PER_RUN
    return SubjectShape(
        breadth=breadth,
        segment=segment,
        consumed=consumed,
        fields=tuple(fields),
        open_type=rest_pinned and role is SegmentRole.CONTEXT,
    )
