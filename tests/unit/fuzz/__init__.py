"""Hypothesis fuzzing of keyless' parsers and matchers.

Each test runs ``KEYLESS_FUZZ_EXAMPLES`` examples (default: a small number, so the suite gains a
few seconds). For a longer soak: ``KEYLESS_FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/unit/fuzz``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

#: Examples per fuzz test; raise with KEYLESS_FUZZ_EXAMPLES for a soak run.
EXAMPLES = int(os.environ.get("KEYLESS_FUZZ_EXAMPLES", "60"))

#: No per-example deadline (a busy machine is not a failure); work is bounded by counting.
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        # fixtures here only patch in counters that hold across examples
        HealthCheck.function_scoped_fixture,
    ],
)
