"""IAM's ``*``/``?`` wildcard match in time bounded by the product of the two lengths.

IAM User Guide, "Condition operators" (StringLike) and "IAM JSON policy elements: Action": ``*``
matches any run of characters, the empty run included and ``/``, ``:`` and ``@`` too; ``?``
matches exactly one character; everything else matches itself, case-sensitively. A compiled
regex (``*`` as ``.*``) gives the same answers but Python's backtracking ``re`` needs exponential
time for values like ``repo:********a`` against a long subject, so keyless matches segment by
segment instead.

The pattern is split at ``*`` into segments (runs of characters and ``?``). Without a ``*`` the
one segment must cover the whole text. Otherwise the first segment must match at the start,
the last at the end, the two not overlapping, and each segment in between is placed at its
leftmost occurrence after the previous one. Leftmost is always right: the ``*`` on either side
of a segment absorbs whatever lies around it, and an earlier placement leaves every later
segment at least as much room as a later one would.

A segment of plain characters is found with ``str.find`` / ``str.startswith`` (CPython's search
is linear in the text and the needle for long needles in long texts, by the two-way algorithm
since Python 3.10; the simple C loop it runs otherwise is quadratic only on small inputs: texts
under 2,500 characters, or needles under 100 characters in texts under 30,000). A segment with
``?`` is found by its longest run of plain characters and checked around each occurrence, left
to right, with one C-level comparison of its other characters per occurrence (so a segment of
one-character runs against a text of that character, ``*a?a?…a?b*``, still takes up to
``(n - L) * L`` steps, at C speed).

Work is counted in steps and is at most ``(len(glob.tokens) + 1) * (len(text) + 1)``:

* checking the first and last segments where they must be costs their lengths plus one;
* finding a plain segment of ``L`` characters in a window of ``w`` costs ``w + L``;
* finding a segment of ``L`` tokens with ``?`` by its run of ``R`` characters costs, for each
  occurrence of the run, the characters the search examined (from where it started to the end of
  the occurrence) plus ``L - R`` to check the rest, and for the last, failed search the rest of
  the window plus ``R``. The examined stretches overlap by less than ``R`` each, at most
  ``w - L + 1`` occurrences are checked, so the total is at most ``w + (w - L + 1) * L + L``.

For a text of ``n`` characters both finds are within ``(L + 1) * (n + 1)``, the share of the
bound of a middle segment and the ``*`` before it; the first and last segments and the last
``*`` leave at least their lengths plus one. ``keyless.limits`` bounds both lengths
(``POLICY_VALUE_MAX_CHARS``, ``MATCH_TEXT_MAX_CHARS``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Final, NamedTuple

from keyless.trust.work import current as current_work

__all__ = ["ANY", "STAR", "Glob", "compile_glob", "glob_of"]

#: Token for ``*`` and ``?``: two characters, so never equal to one character of a text.
STAR: Final = "\x00*"
ANY: Final = "\x00?"


class _Segment(NamedTuple):
    """The tokens between two ``*``: plain characters and ``ANY``. A named tuple, not a frozen
    dataclass: private to this module, and building one per segment of each pattern made by
    ``glob_of`` (per request, for patterns with variables) is four times cheaper."""

    length: int
    #: The longest run of plain characters (the first of equals; the whole segment when it has
    #: no ``?``, empty when it has only ``?``) and where it starts.
    run: str
    offset: int
    #: Picks the other plain characters out of ``length`` characters of text, and what they must
    #: be; ``None`` when the run is the only plain text.
    others: Callable[[str], object] | None
    expected: object

    @classmethod
    def of(cls, tokens: tuple[str, ...]) -> _Segment:
        if ANY not in tokens:  # the usual case, kept cheap: patterns are built per request
            return cls(len(tokens), "".join(tokens), 0, None, None)
        runs: list[tuple[int, int]] = []  # (start, end) of each run of plain characters
        for index, token in enumerate(tokens):
            if token == ANY:
                continue
            if runs and runs[-1][1] == index:
                runs[-1] = (runs[-1][0], index + 1)
            else:
                runs.append((index, index + 1))
        start, end = max(runs, key=lambda r: r[1] - r[0], default=(0, 0))
        rest = [i for i, token in enumerate(tokens) if token != ANY and not start <= i < end]
        others = itemgetter(*rest) if rest else None
        # ANY as "\0": never looked at, the getter picks plain positions only.
        template = "".join("\x00" if token == ANY else token for token in tokens)
        return cls(
            length=len(tokens),
            run=template[start:end],
            offset=start,
            others=others,
            expected=others(template) if others is not None else None,
        )

    @property
    def plain(self) -> bool:
        return self.others is None and len(self.run) == self.length

    def at(self, text: str, index: int) -> bool:
        """Whether the segment matches ``text`` at ``index`` (the caller checked it fits)."""
        if not text.startswith(self.run, index + self.offset):
            return False
        others = self.others
        return others is None or others(text[index : index + self.length]) == self.expected

    def find(self, text: str, start: int, end: int) -> tuple[int, int]:
        """The leftmost index at which the segment matches inside ``text[start:end]`` (or -1),
        and the steps it took (see the module docstring)."""
        length, run, offset = self.length, self.run, self.offset
        if self.plain:  # `end` is never negative here: the caller passes start <= end
            return text.find(run, start, end), (end - start) + length
        if not run:  # only `?`: any text of the right length
            return (start if start + length <= end else -1), 1
        size = len(run)
        stop = end - length + offset + size  # the run must end here for the segment to fit
        steps = 0
        while True:
            # find's negative bounds count from the end: test for no room before searching.
            found = text.find(run, start + offset, stop) if start + length <= end else -1
            if found < 0:
                return -1, steps + max(stop - start - offset, 0) + size
            index = found - offset
            steps += found + size - start - offset + length - size
            others = self.others
            if others is None or others(text[index : index + length]) == self.expected:
                return index, steps
            start = index + 1


@dataclass(frozen=True, slots=True)
class Glob:
    """A wildcard pattern as tokens: one character each, or ``STAR`` / ``ANY``. Runs of ``*``
    are one ``STAR`` (``**`` matches exactly what ``*`` matches)."""

    tokens: tuple[str, ...]
    #: The tokens split at STAR, computed once per pattern.
    _segments: tuple[_Segment, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tokens = self.tokens
        stars = [index for index, token in enumerate(tokens) if token == STAR]
        bounds = zip([-1, *stars], [*stars, len(tokens)], strict=True)
        segments = tuple(_Segment.of(tokens[start + 1 : end]) for start, end in bounds)
        object.__setattr__(self, "_segments", segments)

    @property
    def literal(self) -> str | None:
        """The text the pattern matches when it has no wildcard, else ``None``."""
        if STAR in self.tokens or ANY in self.tokens:
            return None
        return "".join(self.tokens)

    def bound(self, text_length: int) -> int:
        """The most steps ``match_counted`` takes for a text of ``text_length`` characters."""
        return (len(self.tokens) + 1) * (text_length + 1)

    def match(self, text: str) -> bool:
        matched, steps = self.match_counted(text)
        work = current_work()
        if work is not None:
            work.matches.append((steps, self.bound(len(text))))
        return matched

    def match_counted(self, text: str) -> tuple[bool, int]:
        """Whether the whole of ``text`` matches, and the steps it took."""
        segments = self._segments
        length = len(text)
        first = segments[0]
        if len(segments) == 1:  # no `*`: the one segment is the whole text
            return length == first.length and first.at(text, 0), first.length + 1
        last = segments[-1]
        start, end = first.length, length - last.length
        steps = first.length + last.length + 1
        if start > end or not (first.at(text, 0) and last.at(text, end)):
            return False, steps
        for segment in segments[1:-1]:
            index, spent = segment.find(text, start, end)
            steps += spent
            if index < 0:
                return False, steps
            start = index + segment.length
        return True, steps


def glob_of(parts: Iterable[tuple[str, bool]]) -> Glob:
    """A glob from ``(text, active)`` parts: ``*`` and ``?`` are wildcards only in active text
    (text written in the policy); inactive text (a policy variable's value) is literal."""
    tokens: list[str] = []
    for text, active in parts:
        for char in text:
            if active and char == "*":
                if not tokens or tokens[-1] != STAR:
                    tokens.append(STAR)
            elif active and char == "?":
                tokens.append(ANY)
            else:
                tokens.append(char)
    return Glob(tuple(tokens))


@functools.lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> Glob:
    """``pattern`` as written in a policy, every ``*`` and ``?`` a wildcard."""
    return glob_of(((pattern, True),))
