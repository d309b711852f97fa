"""The credentials a deploy signs with: handed to the native client at each signature, renewed
when due, and checked before each new request so a deploy stops before they end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keyless.deploy.environment import EnvironmentKeys, EnvironmentSession, ending
from keyless.deploy.transfer import FrozenCredentials
from keyless.errors import KeylessError

if TYPE_CHECKING:
    import boto3


def signing(credentials: Any) -> Callable[[], FrozenCredentials]:
    """What the native client calls at each signature: the credentials, renewed when due. An
    exception there cannot reach keyless (awscrt reports it as unraisable), so a renewal that
    fails leaves the last good credentials in use; ``usable`` stops the deploy before they end."""
    last: list[FrozenCredentials] = [credentials.get_frozen_credentials()]

    def frozen() -> FrozenCredentials:
        with contextlib.suppress(Exception):  # see above
            last[0] = credentials.get_frozen_credentials()
        return last[0]

    return frozen


def standard_session() -> boto3.Session:
    from keyless.aws import clients

    return clients.session()


def refreshable(credentials: object) -> bool:
    if isinstance(credentials, EnvironmentKeys):
        return False
    from botocore.credentials import RefreshableCredentials

    return isinstance(credentials, RefreshableCredentials)


def ca_bundle(session: boto3.Session | EnvironmentSession) -> str | None:
    if isinstance(session, EnvironmentSession):
        return session.ca_bundle
    bundle = session._session.get_config_variable("ca_bundle")
    return str(bundle) if bundle else None


def usable(credentials: object) -> KeylessError | None:
    """Why no new request should start on ``credentials`` now, or None (renewed first if due)."""
    if isinstance(credentials, EnvironmentKeys):
        why = ending(credentials)
        if why is None:
            return None
        from keyless.aws.renew import SessionExpiredError

        return SessionExpiredError(
            why, remedy="Run the deploy with fresh credentials (or with --role-arn, which renews)."
        )
    from keyless.aws import renew

    return renew.usable(credentials)


def stop_if_ended(credentials: object) -> None:
    reason = usable(credentials)
    if reason is not None:
        raise reason
