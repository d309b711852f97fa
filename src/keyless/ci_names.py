"""The ``--ci`` names, without importing the providers (outside ``keyless.ci``, whose package
import loads them all).

Every command that takes ``--ci`` lists these as its choices while its parser is built; importing
``keyless.ci`` for them would load all six CI modules into commands that never obtain a token
(``keyless deploy`` with ambient credentials). ``tests/unit/ci/test_registry.py`` keeps this
tuple equal to ``keyless.ci.PROVIDERS``, in the same order.
"""

from __future__ import annotations

#: ``keyless.ci.PROVIDERS``' keys: the CIs in detection order, then ``file``.
PROVIDER_NAMES: tuple[str, ...] = (
    "bitbucket",
    "github",
    "gitlab",
    "circleci",
    "buildkite",
    "terraform",
    "file",
)
