"""The trust engine's work on hostile input, counted rather than timed.

``with counted() as work:`` records, for that block (and that thread or task only), every glob
match the engine makes as ``(steps, bound)``, every subject it shapes and the text it scans for
findings' lines: tests assert the work
stays polynomial in the input. Outside such a block nothing is recorded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(kw_only=True)
class Work:
    #: ``(steps taken, the most steps allowed)`` of each glob match (``keyless.trust.glob``).
    matches: list[tuple[int, int]] = field(default_factory=list)
    #: Subjects shaped against a CI's grammar (``keyless.trust.subjects.subject_shape``).
    shapes: int = 0
    #: Characters of policy text scanned to give findings their lines (``keyless.trust.sarif``).
    located: int = 0

    @property
    def steps(self) -> int:
        return sum(steps for steps, _ in self.matches)

    @property
    def bound(self) -> int:
        return sum(bound for _, bound in self.matches)


_current: ContextVar[Work | None] = ContextVar("keyless_trust_work", default=None)


def current() -> Work | None:
    """The ``Work`` being recorded, if a ``counted()`` block is active."""
    return _current.get()


@contextlib.contextmanager
def counted() -> Iterator[Work]:
    """Record the engine's work inside the block."""
    work = Work()
    token = _current.set(work)
    try:
        yield work
    finally:
        _current.reset(token)
