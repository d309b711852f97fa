"""``LineIndex`` agrees with counting line breaks, at every offset and line of varied texts."""

from __future__ import annotations

import re

import pytest

from keyless.trust.lines import LineIndex, first_lines

TEXTS = ["", "a", "\n", "\n\n", "ab\ncd", "ab\ncd\n", "\nx\n\ny", "one\r\ntwo\n"]


@pytest.mark.parametrize("text", TEXTS)
def test_line_at_is_one_plus_the_breaks_before(text: str) -> None:
    lines = LineIndex(text)
    for offset in range(len(text) + 1):
        assert lines.line_at(offset) == text.count("\n", 0, offset) + 1


@pytest.mark.parametrize("text", TEXTS)
def test_offset_of_is_where_each_line_starts(text: str) -> None:
    lines = LineIndex(text)
    starts = [0] + [i + 1 for i, char in enumerate(text) if char == "\n"]
    for line, start in enumerate(starts, start=1):
        assert lines.offset_of(line) == start
        assert lines.line_at(start) == line
    assert lines.offset_of(len(starts) + 1) is None
    assert lines.offset_of(0) is None


def test_first_lines_gives_each_names_first_line() -> None:
    text = "a: 1\nb: 2\n  a: 3\nc: 4\n"
    pattern = re.compile(r"^[ ]*([a-z]+):", re.MULTILINE)
    assert first_lines(pattern, text) == {"a": 1, "b": 2, "c": 4}
    assert first_lines(pattern, "") == {}
