"""IAM's ``*``/``?`` wildcard match in time bounded by the product of the two lengths.

IAM User Guide, "Condition operators" (StringLike) and "IAM JSON policy elements: Action": ``*``
matches any run of characters, the empty run included and ``/``, ``:`` and ``@`` too; ``?``
matches exactly one character; everything else matches itself, case-sensitively. A compiled
regex (``*`` as ``.*``) gives the same answers but Python's backtracking ``re`` needs exponential
time for values like ``repo:********a`` against a long subject, so keyless matches with the
classic two-pointer algorithm instead: on a mismatch it returns to the last ``*`` only, never to
earlier ones, which is enough because a later ``*`` can absorb anything an earlier one could.

Work is counted in steps (one per loop iteration) and is at most
``(len(glob.tokens) + 1) * (len(text) + 1)``: each ``*`` is tried at most once per text position
and each try walks at most the tokens up to the next ``*``. ``keyless.limits`` bounds both
lengths (``POLICY_VALUE_MAX_CHARS``, ``MATCH_TEXT_MAX_CHARS``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["ANY", "STAR", "Glob", "compile_glob", "glob_of"]

#: Token for ``*`` and ``?``: two characters, so never equal to one character of a text.
STAR: Final = "\x00*"
ANY: Final = "\x00?"


@dataclass(frozen=True, slots=True)
class Glob:
    """A wildcard pattern as tokens: one character each, or ``STAR`` / ``ANY``. Runs of ``*``
    are one ``STAR`` (``**`` matches exactly what ``*`` matches)."""

    tokens: tuple[str, ...]

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
        return self.match_counted(text)[0]

    def match_counted(self, text: str) -> tuple[bool, int]:
        """Whether the whole of ``text`` matches, and the steps it took."""
        tokens = self.tokens
        size, length = len(tokens), len(text)
        steps = 0
        p = t = 0
        star = -1  # token index of the last `*` seen
        resume = 0  # text index that `*` was last tried to end at
        while t < length:
            steps += 1
            token = tokens[p] if p < size else None
            if token is not None and (token == text[t] or token == ANY):
                p += 1
                t += 1
            elif token == STAR:
                star, resume = p, t
                p += 1
            elif star >= 0:
                # Let the last `*` absorb one more character and retry what follows it.
                resume += 1
                p, t = star + 1, resume
            else:
                return False, steps
        while p < size and tokens[p] == STAR:
            steps += 1
            p += 1
        return p == size, steps


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
