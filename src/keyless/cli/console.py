"""The streams, environment and I/O seams a command runs with, injected so tests can drive
``main(argv)``."""

from __future__ import annotations

import json
import os
import select
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from keyless.cli.seams import Seams
from keyless.textsafe import safe_lines
from keyless.urls import redact_urls

#: How many encoder chunks (each a token or two) one write to stdout carries.
_JSON_CHUNKS_PER_WRITE = 4096


@dataclass(kw_only=True)
class Console:
    """Where a command reads and writes.

    Human text goes to ``stderr`` (so that ``stdout`` stays clean for data such as ``--json``
    documents or a raw token piped to another program), through ``safe_lines``: a file name or a
    claim value quoted in it can neither drive the terminal nor issue a CI log command. No URL's
    ``user:password@`` reaches either stream through these methods.
    """

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    #: The clock, STS, AWS sessions and deploys the commands use (doubles in tests).
    seams: Seams = field(default_factory=Seams)
    verbose: bool = False

    def out(self, text: str = "") -> None:
        """Data for stdout."""
        print(redact_urls(text), file=self.stdout)

    def info(self, text: str = "") -> None:
        """Human-readable text for stderr, control characters escaped."""
        print(safe_lines(redact_urls(text)), file=self.stderr)

    def emit_json(self, document: Any) -> None:
        """One JSON document on stdout, stable key order for diffs and tests.

        Written in pieces as it is encoded: a deploy report of 20,000 objects, encoded whole,
        would be held as a list of chunks and then as one string, several times its own size.
        Redacting piece by piece is the same as redacting the whole: the encoder's chunks never
        split a JSON string, and ``://`` appears nowhere else in JSON text.
        """
        encoder = json.JSONEncoder(indent=2, sort_keys=True, default=str)
        pieces: list[str] = []
        for chunk in encoder.iterencode(document):
            pieces.append(chunk)
            if len(pieces) == _JSON_CHUNKS_PER_WRITE:
                self.stdout.write(redact_urls("".join(pieces)))
                pieces.clear()
        pieces.append("\n")
        self.stdout.write(redact_urls("".join(pieces)))

    def stdout_reader_is_gone(self) -> bool:
        """True when ``stdout`` is a pipe whose reading end is closed (``keyless ... | head``):
        the kernel then reports an error condition on the writing end (poll(2), POLLERR)."""
        fileno = getattr(self.stdout, "fileno", None)
        if fileno is None or not hasattr(select, "poll"):
            return False
        try:
            fd = fileno()
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
            events = poller.poll(0)
        except (OSError, ValueError):
            return False
        return any(event & (select.POLLERR | select.POLLHUP) for _fd, event in events)

    def discard_stdout(self) -> None:
        """Point ``stdout``'s descriptor at the null device, so that what is still buffered (and
        the interpreter's flush at exit) goes nowhere instead of failing again."""
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self.stdout.fileno())
        finally:
            os.close(devnull)

    def stdout_is_terminal(self) -> bool:
        isatty = getattr(self.stdout, "isatty", None)
        return bool(isatty and isatty())
