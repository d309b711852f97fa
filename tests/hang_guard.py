"""A generous guard against a hang: run a call in a daemon thread and fail the test if it has
not returned after ``seconds``. Never a speed assertion: the bound on work is asserted by
counting; this only keeps a regression from stalling the whole suite."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

HANG_GUARD_SECONDS = 60.0


def within_guard(call: Callable[[], T], seconds: float = HANG_GUARD_SECONDS) -> T:
    box: list[T] = []
    errors: list[BaseException] = []
    # The caller's context variables (keyless.trust.work's counting) hold in the worker too.
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box.append(context.run(call))
        except BaseException as exc:  # handed to the test thread below
            errors.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise AssertionError(f"still running after {seconds:.0f} s: the work is not bounded")
    if errors:
        raise errors[0]
    return box[0]
