"""Why a claim does not match: the component of a `sub` that differs from the role's closest
pattern (by the CI's subject grammar) and the fix for an audience IAM does not list, each a named
cause with a fix in words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keyless.causes import Cause
from keyless.ci import PROVIDERS
from keyless.ci.base import CiProvider, Provider, SegmentRole, SubjectGrammar, SubjectSegment
from keyless.ci.shared import CiBase
from keyless.trust.glob import compile_glob

__all__ = ["audience_fix", "ci_of", "classify_subject", "guessed_from_subject"]


def classify_subject(
    provider: str | None, actual: str, patterns: Sequence[str]
) -> tuple[Cause, str]:
    """Why the subject ``actual`` matches none of ``patterns``: a named cause and its fix.

    The cause is the first component of the CI's subject grammar (organization, repository,
    then ref or environment...) in which ``actual`` differs from the closest pattern.
    """
    known = PROVIDERS.get(provider) if provider is not None else None
    grammar = known.subject_grammar if known is not None else None
    differing = _first_difference(grammar, actual, patterns) if grammar else None
    ci = ci_of(known)
    if ci is not None:
        # The CI's own reading first (GitHub's subject forms, Bitbucket's environments); it
        # leaves the rest to the segment that differs.
        role = differing.segment.role if differing is not None else None
        finding = ci.classify_subject(actual, patterns, differing=role)
        if finding is not None:
            return finding.cause, finding.fix
    if differing is not None:
        return _segment_cause(differing, actual)
    return Cause.SUBJECT, (
        f"sub {actual!r} matches none of {', '.join(patterns)}: the job runs in another"
        " repository, branch or context than the role expects."
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Difference:
    segment: SubjectSegment
    actual: str
    expected: str
    pattern: str


def _split_subject(grammar: SubjectGrammar, text: str) -> list[str | None] | None:
    """The values of ``grammar``'s segments in ``text`` (a subject or a pattern), in order.

    A segment whose literal does not follow is ``None``: in a pattern, a trailing ``*`` has taken
    it (``repo:acme/*``). ``None`` for a text that does not start with the first literal.
    """
    segments = grammar.segments
    values: list[str | None] = []
    rest = text
    for index, segment in enumerate(segments):
        if not rest.startswith(segment.literal):
            if not values:
                return None
            return values + [None] * (len(segments) - index)
        rest = rest[len(segment.literal) :]
        following = segments[index + 1].literal if index + 1 < len(segments) else ""
        cut = rest.find(following) if following else -1
        if cut < 0:
            values.append(rest)
            return values + [None] * (len(segments) - index - 1)
        values.append(rest[:cut])
        rest = rest[cut:]
    return values


def _first_difference(
    grammar: SubjectGrammar, actual: str, patterns: Sequence[str]
) -> _Difference | None:
    """The first segment in which ``actual`` differs from the pattern that agrees with it
    longest (the role's closest pattern); ``None`` when the grammar cannot tell."""
    have = _split_subject(grammar, actual)
    if have is None:
        return None
    best: tuple[int, _Difference] | None = None
    for pattern in patterns:
        want = _split_subject(grammar, pattern)
        if want is None:
            continue
        for index, (segment, value, expected) in enumerate(
            zip(grammar.segments, have, want, strict=True)
        ):
            if expected is None:
                continue
            # The pattern's last value may span what follows (`ref:refs/heads/main:*`): it is
            # matched against the rest of the subject from this segment on.
            last = all(later is None for later in want[index + 1 :])
            if compile_glob(expected).match(_tail(grammar, have, index) if last else value or ""):
                continue
            if best is None or index > best[0]:
                difference = _Difference(
                    segment=segment, actual=value or "", expected=expected, pattern=pattern
                )
                best = (index, difference)
            break
    return best[1] if best else None


def _tail(grammar: SubjectGrammar, values: Sequence[str | None], index: int) -> str:
    """The subject from segment ``index`` on (its value, then each later literal and value)."""
    later = zip(grammar.segments[index + 1 :], values[index + 1 :], strict=True)
    return (values[index] or "") + "".join(
        segment.literal + value for segment, value in later if value is not None
    )


def _segment_cause(difference: _Difference, actual: str) -> tuple[Cause, str]:
    segment, have, want = difference.segment, difference.actual, difference.expected
    role = segment.role
    if role is SegmentRole.PATH:
        # GitLab's project path: the first component is the top-level group (the tenant).
        group, wanted_group = have.split("/", 1)[0], want.split("/", 1)[0]
        role = SegmentRole.REPOSITORY
        if "*" not in wanted_group and "?" not in wanted_group and group != wanted_group:
            role = SegmentRole.TENANT
    if role is SegmentRole.TENANT:
        return Cause.ORGANIZATION, (
            f"sub {actual!r} is of another {segment.field} ({have}) than the role trusts"
            f" ({want}, in {difference.pattern}): this job belongs to someone else, or the role"
            " was made for another organization. Use a role of this organization."
        )
    if role is SegmentRole.REPOSITORY:
        return Cause.REPOSITORY, (
            f"sub {actual!r} names another {segment.field} ({have}) than the role trusts"
            f" ({want}, in {difference.pattern}): each repository needs its own role or its"
            " own pattern in the trust (keyless trust build for this one)."
        )
    if role is SegmentRole.CONTEXT:
        return Cause.REF, (
            f"sub {actual!r} has {segment.field} {have!r}; the role pins {want!r}"
            f" ({difference.pattern}). Run the deploy from {want}, or pin this ref in the trust."
        )
    return Cause.SUBJECT, (
        f"sub {actual!r} has {segment.field} {have!r} where the role expects {want!r}"
        f" ({difference.pattern})."
    )


def audience_fix(
    provider: Provider | None, audiences: Sequence[str], expected: Sequence[str]
) -> str:
    wanted = ", ".join(expected) if expected else "the provider's client ID"
    have = ", ".join(audiences) or "none"
    ci = ci_of(provider)
    how = (ci.audience_hint() if ci else None) or (
        "keyless asks for it with --audience; some CIs set it in the pipeline's YAML."
    )
    return (
        f"The token's aud is {have}; IAM expects {wanted}. Add the token's audience to the IAM"
        f" OIDC provider's client IDs (and the trust policy's :aud), or have the job request"
        f" {wanted}. {how}"
    )


def ci_of(provider: Provider | None) -> CiProvider | None:
    """``provider`` when it is a CI (with hints of its own), ``None`` for a token file."""
    return provider if isinstance(provider, CiBase) else None


def guessed_from_subject(provider: Provider, subject: str) -> bool:
    ci = ci_of(provider)
    return ci is not None and ci.guess_from_subject(subject)
