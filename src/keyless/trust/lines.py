"""Lines of one text, found once: a line's offset and an offset's line by binary search.

A file of many policies (``aws iam list-roles`` output, a template of many roles) is located
against one index, so the cost is the text's length once, not once per policy or per finding.
"""

from __future__ import annotations

import bisect
import re

__all__ = ["LineIndex", "first_lines"]

_LINE_BREAK = re.compile("\n")


class LineIndex:
    def __init__(self, text: str) -> None:
        self.length = len(text)
        #: Where each line starts; the first at 0, each later one just past a line break.
        self._starts = [0, *(match.end() for match in _LINE_BREAK.finditer(text))]

    def line_at(self, offset: int) -> int:
        """The 1-based line that holds ``offset``."""
        return bisect.bisect_right(self._starts, offset)

    def offset_of(self, line: int) -> int | None:
        """Where 1-based ``line`` starts; ``None`` past the text's lines."""
        if 1 <= line <= len(self._starts):
            return self._starts[line - 1]
        return None


def first_lines(pattern: re.Pattern[str], text: str) -> dict[str, int]:
    """The 1-based line of the first match of ``pattern`` for each value of its first group, in
    one pass over ``text`` (a search per name from the top costs names x text)."""
    lines = LineIndex(text)
    found: dict[str, int] = {}
    for match in pattern.finditer(text):
        found.setdefault(match.group(1), lines.line_at(match.start()))
    return found
