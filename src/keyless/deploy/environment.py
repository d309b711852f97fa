"""The AWS configuration of a deploy read from the environment alone, without loading boto3.

Importing boto3 and building its session costs about 0.25 s of CPU, as much as a whole deploy
with nothing to send. When the environment decides everything botocore would resolve (keys in
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, which botocore's chain reads first; no profile
selected and neither a config nor a shared credentials file, so region, endpoint and CA bundle
can only come from environment variables), a deploy reads them here as botocore would and
builds the boto3 session only for what needs it: copies in place, deletes, CloudFront, or an
endpoint on AWS itself. Anything else (a config file, a profile, SSO, web identity) goes through
boto3 exactly as before.

Variables and their precedence: botocore's configuration and environment-variable providers
(https://docs.aws.amazon.com/sdkref/latest/guide/settings-reference.html).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyless.limits import ENV_CREDENTIALS_STOP_SECONDS

if TYPE_CHECKING:
    import boto3

#: Variables that make botocore read something other than the environment's keys.
_DEFERRED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
#: The files botocore reads configuration from, with their defaults.
_FILES = (
    ("AWS_CONFIG_FILE", "~/.aws/config"),
    ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvironmentKeys:
    """Fixed keys from the environment, with their end when ``AWS_CREDENTIAL_EXPIRATION`` says."""

    access_key: str
    secret_key: str
    token: str | None = None
    #: Seconds since the epoch, or None (no end).
    expires_at: float | None = None

    def get_frozen_credentials(self) -> EnvironmentKeys:
        return self

    def __repr__(self) -> str:
        return f"EnvironmentKeys(access_key={self.access_key[:4]}…)"


class EnvironmentSession:
    """What a deploy asks of its ``boto3.Session``, answered from the environment; the real
    session is made on the first ``client()``."""

    def __init__(self, environ: Mapping[str, str], keys: EnvironmentKeys, region: str | None):
        self._environ = environ
        self._keys = keys
        self.region_name = region
        self._boto3: boto3.Session | None = None

    def get_credentials(self) -> EnvironmentKeys:
        return self._keys

    @property
    def ca_bundle(self) -> str | None:
        return self._environ.get("AWS_CA_BUNDLE") or None

    def configured_endpoint(self) -> str | None:
        """``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, unless told to ignore them."""
        ignore = self._environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "")
        if ignore.strip().lower() == "true":
            return None
        return (
            self._environ.get("AWS_ENDPOINT_URL_S3")
            or self._environ.get("AWS_ENDPOINT_URL")
            or None
        )

    def client(self, name: str, **options: Any) -> Any:
        return self.boto3().client(name, **options)  # type: ignore[call-overload]

    def boto3(self) -> boto3.Session:
        if self._boto3 is None:
            from keyless.aws import clients

            self._boto3 = clients.session(region=self.region_name)
        return self._boto3


def environment_session(
    environ: Mapping[str, str] | None = None, *, region_name: str | None = None
) -> EnvironmentSession | None:
    """The session when the environment decides all of it (see the module), else None."""
    env = os.environ if environ is None else environ
    key, secret = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
    if not key or not secret or any(env.get(name) for name in _DEFERRED):
        return None
    # botocore merges the shared credentials file into the config profiles, so a region or an
    # endpoint can come from either file: with one present, botocore decides.
    for variable, default in _FILES:
        if Path(env.get(variable) or default).expanduser().exists():
            return None
    expiry = env.get("AWS_CREDENTIAL_EXPIRATION")
    expires_at = _epoch(expiry) if expiry else None
    if expiry and expires_at is None:
        return None  # botocore's own parser decides what it means
    keys = EnvironmentKeys(
        access_key=key,
        secret_key=secret,
        token=env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN") or None,
        expires_at=expires_at,
    )
    return EnvironmentSession(env, keys, region_name or env.get("AWS_DEFAULT_REGION") or None)


def ending(keys: EnvironmentKeys, clock: Any = time.time) -> str | None:
    """Why no new request should start on ``keys``, or None."""
    if keys.expires_at is None:
        return None
    left = keys.expires_at - clock()
    if left < ENV_CREDENTIALS_STOP_SECONDS:
        return (
            f"the AWS credentials (env) end in {max(left, 0.0):.0f} s, less than"
            f" {ENV_CREDENTIALS_STOP_SECONDS:.0f} s"
        )
    return None


def _epoch(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()
