"""What a step tells the runner, as GitHub documents it ("Workflow commands for GitHub Actions"):
the environment files (``GITHUB_ENV``, ``GITHUB_OUTPUT``: ``NAME=value`` lines or
``NAME<<DELIMITER`` ... ``DELIMITER`` blocks; ``GITHUB_PATH``: one folder a line) and the
``::command::`` lines on standard output (``add-mask``, ``notice``/``warning``/``error``,
``group``, ``stop-commands``, ...), and the masker that shows every secret and masked value as
``***``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from keyless.errors import UsageError
from keyless.limits import WORKFLOW_FILE_COMMAND_MAX_BYTES

__all__ = [
    "MASK",
    "FileCommandError",
    "Masker",
    "StdoutCommands",
    "parse_env_file",
    "parse_path_file",
    "read_command_file",
]

MASK: Final = "***"
_COMMAND: Final = re.compile(r"::([A-Za-z0-9_-]+)(?: ([^:]*))?::(.*)", re.DOTALL)
#: How ``::command::`` data and properties escape characters (the runner unescapes them).
_DATA_ESCAPES: Final = (("%0D", "\r"), ("%0A", "\n"), ("%25", "%"))
_PROPERTY_ESCAPES: Final = (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%"))


class FileCommandError(UsageError):
    """A step wrote an environment file the runner cannot read; the step fails."""

    kind = "workflow"


class Masker:
    """Values never shown: each one (and each line of a multi-line one) becomes ``***``."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._ordered: list[str] = []
        for value in values:
            self.add(value)

    def add(self, value: str) -> None:
        pieces = {value, value.strip(), *(line.strip() for line in value.splitlines())}
        new = {piece for piece in pieces if piece.strip()} - self._values
        if new:
            self._values |= new
            # Longest first, so that a value containing another is masked whole.
            self._ordered = sorted(self._values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._ordered:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def __contains__(self, value: object) -> bool:
        return value in self._values


def read_command_file(path: Path, *, what: str) -> str:
    """The text a step left in ``path`` (empty if it wrote none), bounded in size."""
    try:
        with path.open("rb") as handle:
            data = handle.read(WORKFLOW_FILE_COMMAND_MAX_BYTES + 1)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise FileCommandError(f"cannot read ${what}: {exc.strerror}") from None
    if len(data) > WORKFLOW_FILE_COMMAND_MAX_BYTES:
        raise FileCommandError(
            f"${what} is larger than {WORKFLOW_FILE_COMMAND_MAX_BYTES} bytes; write less to it"
        )
    return data.decode("utf-8", "replace")


def parse_env_file(text: str, *, what: str) -> list[tuple[str, str]]:
    """``(name, value)`` pairs of a ``GITHUB_ENV``/``GITHUB_OUTPUT`` file, in file order.

    As the runner reads them: a line whose first ``=`` comes before any ``<<`` is
    ``NAME=value``; one whose ``<<`` comes first opens ``NAME<<DELIMITER``, and the value is every
    line up to the next line that is exactly ``DELIMITER``. Empty lines are skipped. Errors name the
    line number, never the line (it may hold a secret).
    """
    lines = text.split("\n")
    pairs: list[tuple[str, str]] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        number = index + 1
        index += 1
        if not line:
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            name, value = line[:equals], line[equals + 1 :]
        elif heredoc >= 0:
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            if not delimiter:
                raise FileCommandError(
                    f"${what} line {number}: invalid format, `NAME<<` needs a delimiter after <<"
                )
            try:
                end = lines.index(delimiter, index)
            except ValueError:
                raise FileCommandError(
                    f"${what} line {number}: invalid value, matching delimiter not found"
                    " (it must be alone on a later line)"
                ) from None
            value = "\n".join(lines[index:end])
            index = end + 1
        else:
            raise FileCommandError(
                f"${what} line {number}: invalid format, expected NAME=value or NAME<<DELIMITER"
            )
        if not name:
            raise FileCommandError(f"${what} line {number}: invalid format, the name is empty")
        pairs.append((name, value))
    return pairs


def parse_path_file(text: str) -> list[str]:
    """The folders of a ``GITHUB_PATH`` file, one a line, in file order."""
    return [line for line in text.split("\n") if line.strip()]


def _unescape(text: str, escapes: tuple[tuple[str, str], ...]) -> str:
    for escaped, plain in escapes:
        text = text.replace(escaped, plain)
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class Shown:
    """One line of output as the log shows it; ``output`` is a deprecated ``set-output``."""

    text: str | None
    output: tuple[str, str] | None = None


class StdoutCommands:
    """Reads a step's output lines: ``::command::`` lines act (and most are not shown), the others
    pass through. ``stop-commands`` pauses this until its token comes back."""

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self._stopped: str | None = None

    def line(self, raw: str) -> Shown:
        match = _COMMAND.fullmatch(raw.strip())
        if match is None:
            return Shown(text=raw)
        command, properties, data = match.group(1), match.group(2) or "", match.group(3)
        if self._stopped is not None:
            if command == self._stopped:
                self._stopped = None
                return Shown(text=None)
            return Shown(text=raw)
        message = _unescape(data, _DATA_ESCAPES)
        if command == "add-mask":
            if message.strip():
                self._masker.add(message)
                return Shown(text=None)
            return Shown(
                text="Warning: Can't add secret mask for empty string in add-mask command."
            )
        if command == "stop-commands":
            self._stopped = message or None
            return Shown(text=None)
        if command in ("notice", "warning", "error"):
            fields = dict(item.partition("=")[::2] for item in properties.split(",") if "=" in item)
            title = _unescape(fields.get("title", ""), _PROPERTY_ESCAPES)
            where = _unescape(fields.get("file", ""), _PROPERTY_ESCAPES)
            head = command.capitalize() + (f" ({where})" if where else "")
            return Shown(text=f"{head}: {title + ': ' if title else ''}{message}")
        if command == "group":
            return Shown(text=f"> {message}")
        if command in ("endgroup", "debug", "echo", "save-state"):
            return Shown(text=None)
        if command == "set-output":
            fields = dict(item.partition("=")[::2] for item in properties.split(",") if "=" in item)
            name = _unescape(fields.get("name", ""), _PROPERTY_ESCAPES)
            return Shown(
                text="Warning: The `set-output` command is deprecated; write to $GITHUB_OUTPUT",
                output=(name, message) if name else None,
            )
        return Shown(text=raw)
