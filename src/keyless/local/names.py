"""What the local stack and ``keyless local``'s help share: the emulated CIs and the environment
variables it sets. Imports nothing of the stack, so that building the CLI's parser stays light."""

from __future__ import annotations

from typing import Final

from keyless.ci import bitbucket, buildkite, circleci, github, gitlab
from keyless.ci.base import CiProvider

#: The CIs the local stack emulates, in the order of their issuer servers' ports.
EMULATED: Final[tuple[CiProvider, ...]] = (
    bitbucket.PROVIDER,
    github.PROVIDER,
    gitlab.PROVIDER,
    circleci.PROVIDER,
    buildkite.PROVIDER,
)
#: The local CA alone (PEM), for tools that take a CA file (``keyless claims --ca-bundle``).
CA_VARIABLE: Final = "KEYLESS_LOCAL_CA_BUNDLE"
#: Names the state folder for every ``keyless local`` command (``--state DIR`` wins).
STATE_VARIABLE: Final = "KEYLESS_LOCAL_STATE"
