"""What the local stack and ``keyless local``'s help share: the emulated CIs and the environment
variables it sets. Imports nothing of the stack, so that building the CLI's parser stays light."""

from __future__ import annotations

from typing import Final

from keyless.ci import CI_PROVIDERS
from keyless.ci.base import CiProvider
from keyless.ci.local_issuers import CA_VARIABLE
from keyless.ci.shared import CiBase

#: The CIs the local stack emulates (every CI of the registry), in the order of their issuer
#: servers' ports.
EMULATED: Final[tuple[CiProvider, ...]] = tuple(p for p in CI_PROVIDERS if isinstance(p, CiBase))
__all__ = ["CA_VARIABLE", "EMULATED", "STATE_VARIABLE"]
#: Names the state folder for every ``keyless local`` command (``--state DIR`` wins).
STATE_VARIABLE: Final = "KEYLESS_LOCAL_STATE"
