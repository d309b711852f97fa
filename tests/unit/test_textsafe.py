"""Text from outside cannot drive a terminal or a CI runner once it goes through ``textsafe``."""

from __future__ import annotations

import io

import pytest

from keyless.cli.console import Console
from keyless.textsafe import escape, safe_lines


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\nb\rc\td", "a\\x0ab\\x0dc\\x09d"),
        ("\x7f\x85\x9b", "\\x7f\\x85\\x9b"),
        ("\u2028\u2029", "\\u2028\\u2029"),
        ("\u202a\u202e\u2066\u2069\u200f", "\\u202a\\u202e\\u2066\\u2069\\u200f"),
        ("ünï côdé ✓", "ünï côdé ✓"),
    ],
)
def test_escape(raw: str, shown: str) -> None:
    assert escape(raw) == shown


def test_no_line_can_be_a_workflow_command() -> None:
    text = safe_lines(
        "::add-mask::x\n  ::error::y\nok ::not-at-start::\nfoo ##[add-mask]z ##vso[task]"
    )
    assert text.splitlines() == [
        "\\x3a:add-mask::x",
        "  \\x3a:error::y",
        "ok ::not-at-start::",
        "foo ##\\x5badd-mask]z ##vso\\x5btask]",
    ]


def test_console_info_is_safe_but_keeps_its_own_line_breaks() -> None:
    err = io.StringIO()
    Console(stderr=err, stdout=io.StringIO()).info("error: \x1b]0;title\x07\n\n::stop-commands::t")
    assert err.getvalue() == "error: \\x1b]0;title\\x07\n\n\\x3a:stop-commands::t\n"
