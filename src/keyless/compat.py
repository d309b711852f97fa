"""Stand-ins for standard-library names newer than keyless' Python floor (3.10).

``enum.StrEnum`` and ``datetime.UTC`` arrived in Python 3.11; keyless supports 3.10 (Ubuntu
22.04 and ``atlassian/default-image:4`` ship it), so modules import them from here.
"""

from __future__ import annotations

import datetime
import enum
import sys

UTC = datetime.timezone.utc


class StrEnum(str, enum.Enum):
    """A string enum whose ``str()`` and ``format()`` are its value, as 3.11's ``StrEnum``."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return str(self.value).__format__(format_spec)


def fromisoformat(text: str) -> datetime.datetime:
    """``datetime.fromisoformat`` with 3.11's acceptance of a trailing ``Z`` (UTC) on 3.10.

    Python 3.10 parses only what ``isoformat()`` writes; IAM's and S3's dates end in ``Z``.
    """
    if sys.version_info < (3, 11) and text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    return datetime.datetime.fromisoformat(text)
