"""Text from outside (file names, S3 keys, claim values) made safe to print on a terminal or in a
CI log: control characters become visible escapes, and no line can be read as a CI log command.

What it defends against: an ESC sequence recolours or rewrites a terminal; CR, LF, NEL and the
Unicode line and paragraph separators split one line into two (so a name can forge a plan line);
bidirectional overrides reorder what a reader sees (Unicode Technical Report #36, "Bidirectional
text spoofing"). GitHub Actions' runner reads a line whose text, after leading spaces, starts
with ``::`` as a workflow command (``::add-mask::``, ``::stop-commands::``), and finds its
legacy ``##[command]`` form anywhere in a line (GitHub Docs, "Workflow commands for GitHub
Actions"); Azure Pipelines reads ``##vso[`` anywhere in a line ("Logging commands").

JSON output needs none of this: ``json.dumps`` escapes every control character itself.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, LRM/RLM/ALM, the line and paragraph separators, the bidi
# embeddings/overrides (U+202A-202E) and isolates (U+2066-2069).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# The same set except LF, for text that is several lines on purpose (a remedy, a YAML snippet).
_UNSAFE_BUT_LF = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
# A workflow command at the start of a line (after spaces), or a legacy one anywhere.
_COMMAND_START = re.compile(r"^(\s*)::", re.MULTILINE)
_LEGACY_COMMAND = re.compile(r"##(vso)?\[")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` as one printable line: every control, separator and bidi character escaped
    (``\\x1b``, ``\\n``, ``\\u202e``). Use it for a name interpolated into a message."""
    return _UNSAFE.sub(_escape, text)


def safe_lines(text: str) -> str:
    """Human output ready to print: ``escape`` for everything but the line feeds the text holds
    on purpose, and no line that a CI runner would take for a command."""
    text = _UNSAFE_BUT_LF.sub(_escape, text)
    if "::" in text:
        # "\x3a:" reads the same to a person and is no command to the runner.
        text = _COMMAND_START.sub(lambda m: m.group(1) + "\\x3a:", text)
    if "##" in text:
        text = _LEGACY_COMMAND.sub(lambda m: "##" + (m.group(1) or "") + "\\x5b", text)
    return text
