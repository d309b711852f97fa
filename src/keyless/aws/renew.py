"""Role sessions that outlive their credentials: renewed by exchanging the job's token again.

A deploy can last longer than the session STS gave it (an hour by default, 900 s at least). The
credentials here are botocore ``RefreshableCredentials``, which both of a deploy's clients read at
each signature (boto3's, and the native S3 client's delegate provider), with a renewal margin
sized for the session rather than botocore's fixed 15 minutes (which would renew a 900 s session
at every request). Renewing runs the whole exchange again, token included, so a CI that mints
tokens on demand (GitHub, CircleCI, Buildkite) or a token file that is kept fresh keeps a long
deploy going. When renewing fails (a fixed token that has expired, STS refusing), the failure is
kept (not retried at every request) and the credentials stop being handed out before they
expire: the deploy ends with ``SessionExpiredError`` instead of requests refused mid-way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from botocore.credentials import CredentialProvider, RefreshableCredentials

from keyless.aws import clients
from keyless.aws.sts import TemporaryCredentials
from keyless.compat import UTC
from keyless.errors import CredentialError, KeylessError
from keyless.limits import (
    CREDENTIAL_REFRESH_MARGIN_SECONDS,
    CREDENTIAL_REFRESH_MARGIN_SHARE,
    CREDENTIAL_STOP_SHARE,
)

if TYPE_CHECKING:
    import boto3

__all__ = ["RenewingSession", "SessionExpiredError", "margins", "usable"]

_REMEDY = (
    "Ask for a session that outlasts the deploy with --duration SECONDS (900 to 43200, at most the"
    " role's MaxSessionDuration), or run it where the CI can mint a fresh token (GitHub, CircleCI"
    " with --audience, Buildkite)."
)


class SessionExpiredError(CredentialError):
    """The role session ends (or ended) and could not be renewed."""


def margins(lifetime: float) -> tuple[float, float]:
    """(renew when less than this is left, stop when less than this is left), in seconds."""
    renew = min(CREDENTIAL_REFRESH_MARGIN_SECONDS, CREDENTIAL_REFRESH_MARGIN_SHARE * lifetime)
    return renew, renew * CREDENTIAL_STOP_SHARE


class RenewingSession:
    """``first`` and then whatever ``renew()`` returns, as credentials boto3 and awscrt read."""

    def __init__(
        self,
        first: TemporaryCredentials,
        renew: Callable[[], TemporaryCredentials],
        *,
        role: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._renew = renew
        self._role = role
        self._clock = clock
        self._lock = threading.Lock()
        self.renewals = 0
        self._current = first
        advisory, self._stop = margins(first.expiration.timestamp() - clock())
        self.credentials = _RenewingCredentials(
            self,
            access_key=first.access_key_id,
            secret_key=first.secret_access_key,
            token=first.session_token,
            expiry_time=first.expiration,
            refresh_using=self._refresh,
            method="keyless-web-identity",
            time_fetcher=lambda: datetime.fromtimestamp(self._clock(), UTC),
            # Seconds; botocore's stubs say int, its comparisons take a float (3 s test sessions
            # have sub-second margins). No mandatory refresh: ``ending`` stops the deploy first.
            advisory_timeout=cast(int, advisory),
            mandatory_timeout=0,
        )
        self._failure: SessionExpiredError | None = None

    def ending(self) -> SessionExpiredError | None:
        """The error to stop with: renewing failed and the session is within the stop margin."""
        with self._lock:
            failure, expires = self._failure, self._current.expiration.timestamp()
        if failure is not None and expires - self._clock() < self._stop:
            return failure
        return None

    def _refresh(self) -> dict[str, Any]:
        # Never raises: botocore would log the exception with its traceback (on stderr, for a
        # CLI without logging set up), and awscrt's delegate cannot pass one on. A failure is
        # kept, the current credentials are used until ``ending`` says stop.
        with self._lock:
            if self._failure is None:
                try:
                    self._current = self._renew()
                    self.renewals += 1
                except KeylessError as exc:
                    self._failure = SessionExpiredError(
                        f"the session of {self._role} expires at"
                        f" {_iso(self._current.expiration)} and could not be renewed:"
                        f" {exc.message}",
                        remedy=_REMEDY,
                    )
            current = self._current
        return {
            "access_key": current.access_key_id,
            "secret_key": current.secret_access_key,
            "token": current.session_token,
            # Full precision: botocore parses it again, and short sessions need the fraction.
            "expiry_time": current.expiration.isoformat(),
        }

    def session(self, *, region: str) -> boto3.Session:
        """A boto3 session signing with these credentials only (no profile, no other source);
        endpoint variables and the CA bundle still apply."""
        return clients.renewing_session(_Fixed(self), region=region)


class _Fixed(CredentialProvider):
    METHOD = "keyless-web-identity"
    CANONICAL_NAME = "keyless"

    def __init__(self, owner: RenewingSession) -> None:
        super().__init__()
        self._owner = owner

    def load(self) -> RefreshableCredentials:
        return self._owner.credentials


class _RenewingCredentials(RefreshableCredentials):
    def __init__(self, owner: RenewingSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.owner = owner


def usable(credentials: object) -> KeylessError | None:
    """Why no new request should start on ``credentials`` now, or None: renewed first if due;
    a renewal that failed, or credentials within the stop margin of their end, say so."""
    if not isinstance(credentials, RefreshableCredentials):
        return None  # fixed keys: nothing ends
    if isinstance(credentials, _RenewingCredentials):
        credentials.get_frozen_credentials()  # renews when due, never raises
        return credentials.owner.ending()
    try:
        credentials.get_frozen_credentials()
    except KeylessError as exc:
        return exc
    except Exception as exc:  # botocore's own refreshers (SSO, profiles, web identity files)
        return SessionExpiredError(
            f"the AWS credentials ({credentials.method}) expire soon and could not be renewed:"
            f" {type(exc).__name__}",
            remedy=_REMEDY,
        )
    # botocore's class attribute (its instances override it when given mandatory_timeout).
    stop = float(getattr(credentials, "_mandatory_refresh_timeout", 0))
    if credentials.refresh_needed(cast(int, stop)):
        return SessionExpiredError(
            f"the AWS credentials ({credentials.method}) end in less than {stop:.1f} s and were"
            " not renewed",
            remedy=_REMEDY,
        )
    return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
