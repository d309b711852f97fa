"""``Console.emit_json`` writes a document as it encodes it: the same bytes as encoding it whole
(user info of URLs redacted), without ever holding the whole text."""

from __future__ import annotations

import io
import json
import tracemalloc
from typing import Any

from keyless.cli.console import Console
from keyless.urls import redact_urls


class _CountingSink(io.StringIO):
    """Keeps what is written and the length of the longest single write."""

    def __init__(self) -> None:
        super().__init__()
        self.longest_write = 0
        self.writes = 0

    def write(self, text: str) -> int:
        self.longest_write = max(self.longest_write, len(text))
        self.writes += 1
        return super().write(text)


class _DiscardingSink(io.StringIO):
    def write(self, text: str) -> int:
        return len(text)


def _report(objects: int) -> dict[str, Any]:
    """A deploy-report-shaped document whose keys and values carry URLs with user info."""
    return {
        "uploads": [
            {
                "key": f"site/page-{i}.html",
                "size": i,
                "headers": {"x-origin": f"https://user{i}:pw{i}@example.com/{i}"},
                f"https://k{i}:secret@host/": [True, None, 1.5, i],
            }
            for i in range(objects)
        ],
        "endpoint": "s3://bucket:pw@ignored",
    }


def test_the_streamed_document_is_the_whole_document_redacted() -> None:
    document = _report(3000)
    sink = _CountingSink()
    Console(stdout=sink).emit_json(document)
    whole = json.dumps(document, indent=2, sort_keys=True, default=str)
    assert sink.getvalue() == redact_urls(whole) + "\n"
    assert "secret" not in sink.getvalue()
    assert "pw1@" not in sink.getvalue()
    assert sink.writes > 1
    assert sink.longest_write < len(whole) / 4


def test_a_small_document_is_one_write_ending_in_a_newline() -> None:
    sink = _CountingSink()
    Console(stdout=sink).emit_json({"b": 1, "a": [1, 2]})
    assert sink.getvalue() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert sink.writes == 1


def test_encoding_a_large_report_holds_a_fraction_of_its_text() -> None:
    document = _report(20_000)
    size = len(json.dumps(document, indent=2, sort_keys=True, default=str))
    tracemalloc.start()
    try:
        Console(stdout=_DiscardingSink()).emit_json(document)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Encoded whole, the chunk list and the string it joins into take several times ``size``.
    assert peak < size / 4
