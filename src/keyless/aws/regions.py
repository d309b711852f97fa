"""Which region a command talks to, without loading the AWS SDK (the exchange starts without it)."""

from __future__ import annotations

from collections.abc import Mapping

from keyless.limits import AWS_DEFAULT_REGION

__all__ = ["region_from"]


def region_from(env: Mapping[str, str], explicit: str | None = None) -> str:
    """The region to use: the flag, then ``AWS_REGION``, ``AWS_DEFAULT_REGION``, then a default."""
    return explicit or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or AWS_DEFAULT_REGION
