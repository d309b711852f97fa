"""JSON text checked against keyless' size and depth limits before ``json`` parses it.

Python's ``json`` recurses once per nesting level, so a document of 100,000 ``[`` is a
``RecursionError`` deep inside the parser, and code that walks the result recurses again. One
linear scan of the text (strings skipped) finds the depth first, so an over-deep or over-large
document is refused with a message naming the limit. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any, Final

from keyless.limits import DOCUMENT_MAX_CHARS, JSON_MAX_DEPTH

__all__ = ["JsonLimitError", "check_json_limits", "json_depth", "loads_bounded"]

#: A JSON string, possibly unterminated (the parser reports that); the unrolled form
#: (runs of plain characters between escapes) lets the regex engine take a string in large steps.
_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
#: Everything but brackets, once strings are gone.
_NOT_BRACKET: Final = re.compile(r"[^\[\]{}]+")
_STEP: Final = {"[": 1, "{": 1, "]": -1, "}": -1}


class JsonLimitError(ValueError):
    """JSON text larger or deeper than keyless parses. A ``ValueError``, like the parser's own
    errors, so every caller that reports invalid JSON reports this too, with its message."""


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (0 for a scalar), counted on the
    text outside strings. Strings and then everything but brackets are removed by the regex
    engine, and the running depth is summed in C (``accumulate``): a 6 MB IAM dump takes a
    tenth of a second, where a Python loop over every token took three times that."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets), initial=0))


def check_json_limits(
    text: str, *, max_depth: int = JSON_MAX_DEPTH, max_chars: int = DOCUMENT_MAX_CHARS
) -> None:
    """``JsonLimitError`` when ``text`` is longer than ``max_chars`` or nests deeper than
    ``max_depth``."""
    if len(text) > max_chars:
        raise JsonLimitError(f"is {len(text)} characters, more than the {max_chars} keyless reads")
    if json_depth(text) > max_depth:
        raise JsonLimitError(
            f"nests arrays and objects more than {max_depth} levels deep (the most keyless reads)"
        )


def loads_bounded(
    text: str,
    *,
    max_depth: int = JSON_MAX_DEPTH,
    max_chars: int = DOCUMENT_MAX_CHARS,
    **kwargs: Any,
) -> Any:
    """``json.loads(text, **kwargs)`` after ``check_json_limits``."""
    check_json_limits(text, max_depth=max_depth, max_chars=max_chars)
    return json.loads(text, **kwargs)
