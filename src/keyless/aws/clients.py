"""The one place keyless makes boto3 sessions and clients: timeouts, retries and endpoints set
explicitly, one named function for each kind of session.

Endpoints are left to botocore (>= 1.31), which honours ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_<SERVICE>`` from the environment and the config file; that is how the local
stack and any other S3/STS-compatible endpoint are reached through the same code path as AWS.
Proxies and the CA bundle (``AWS_CA_BUNDLE``, the profile's ``ca_bundle``) come from botocore's
usual settings in every kind of session below.

The STS exchange itself mostly runs without botocore (``keyless.aws.sts_endpoint`` picks the
Query client of ``keyless.aws.sts_query`` where it is equivalent) and comes here only for what the
Query client does not cover.

Importing this module loads boto3: modules on a path that must start without it (a deploy the
environment decides, ``keyless --version``) import it inside the function that needs a client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

import boto3
import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ProfileNotFound

from keyless import __version__
from keyless.aws.regions import region_from as region_from
from keyless.errors import UsageError
from keyless.limits import (
    AWS_CONNECT_TIMEOUT_SECONDS,
    AWS_MAX_ATTEMPTS,
    AWS_READ_TIMEOUT_SECONDS,
    DEFAULT_CONCURRENCY,
    S3_CONTROL_CONNECT_TIMEOUT_SECONDS,
    S3_CONTROL_MAX_ATTEMPTS,
    S3_CONTROL_READ_TIMEOUT_SECONDS,
)

if TYPE_CHECKING:
    from botocore.credentials import CredentialProvider
    from mypy_boto3_cloudfront import CloudFrontClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sts import STSClient

    from keyless.deploy.environment import EnvironmentSession

CLIENT_CONFIG = Config(
    connect_timeout=AWS_CONNECT_TIMEOUT_SECONDS,
    read_timeout=AWS_READ_TIMEOUT_SECONDS,
    # total_max_attempts counts the first try too (botocore: max_attempts counts retries only).
    retries={"mode": "standard", "total_max_attempts": AWS_MAX_ATTEMPTS},
    user_agent_extra=f"keyless/{__version__}",
)

#: keyless retries STS calls itself (classified, bounded); botocore must not retry underneath.
_NO_BOTOCORE_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


class Keys(Protocol):
    """Keys that sign requests (``keyless.aws.sts.SigningKeys``, ``TemporaryCredentials``)."""

    @property
    def access_key_id(self) -> str: ...
    @property
    def secret_access_key(self) -> str: ...
    @property
    def session_token(self) -> str | None: ...


# --- sessions ------------------------------------------------------------------------------------


def session(
    *,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    profile: str | None = None,
) -> boto3.Session:
    """A boto3 session; with no keys given, boto3's own credential chain applies (the standard
    AWS configuration of the process: environment, profile, SSO, web identity, instance role)."""
    return boto3.Session(
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        profile_name=profile,
    )


def ambient_session(env: Mapping[str, str], *, region: str) -> boto3.Session:
    """A boto3 session with the credentials ``env`` names: its static keys, else its profile,
    else boto3's own chain. Raises ``UsageError`` for a profile that does not exist."""
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    try:
        if key and secret:
            return session(
                region=region,
                access_key_id=key,
                secret_access_key=secret,
                session_token=env.get("AWS_SESSION_TOKEN") or None,
            )
        return session(region=region, profile=env.get("AWS_PROFILE") or None)
    except ProfileNotFound as exc:
        raise UsageError(
            f"AWS_PROFILE names the profile {env.get('AWS_PROFILE')!r}, which the AWS config"
            " file does not have"
        ) from exc


def _without_profile() -> botocore.session.Session:
    # No profile's credentials: AWS_PROFILE is not read, so a profile that does not exist (or one
    # keyless is about to write) cannot stop the session or swap its credentials.
    return botocore.session.Session(session_vars={"profile": (None, None, None, None)})


def temporary_session(keys: Keys, *, region: str) -> boto3.Session:
    """A boto3 session that signs with ``keys`` (e.g. a role session's credentials) in
    ``region``, for commands that use what they assumed themselves (``deploy``, the pipes). Like
    the exchange it reads no profile, so AWS_PROFILE cannot swap the credentials."""
    return boto3.Session(
        botocore_session=_without_profile(),
        region_name=region,
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
        aws_session_token=keys.session_token,
    )


def renewing_session(provider: CredentialProvider, *, region: str) -> boto3.Session:
    """A boto3 session whose only credential source is ``provider`` (renewing credentials, read
    at each signature), reading no profile."""
    from botocore.credentials import CredentialResolver

    core = _without_profile()
    core.register_component("credential_provider", CredentialResolver([provider]))
    return boto3.Session(botocore_session=core, region_name=region)


def regional_sts_session(region: str) -> boto3.Session:
    """The session of the STS exchange: no profile's credentials, regional STS endpoints."""
    core = _without_profile()
    # Regional STS endpoints: the default since boto3 1.40, stated so that an older botocore or an
    # `AWS_STS_REGIONAL_ENDPOINTS=legacy` cannot send the token to the global endpoint
    # (docs/aws-sts-iam.md#sts-endpoint).
    core.set_config_variable("sts_regional_endpoints", "regional")
    return boto3.Session(botocore_session=core, region_name=region)


# --- clients -------------------------------------------------------------------------------------


@overload
def client(
    sess: boto3.Session, service: Literal["sts"], *, endpoint_url: str | None = None
) -> STSClient: ...
@overload
def client(
    sess: boto3.Session, service: Literal["iam"], *, endpoint_url: str | None = None
) -> IAMClient: ...
@overload
def client(
    sess: boto3.Session, service: Literal["s3"], *, endpoint_url: str | None = None
) -> S3Client: ...
@overload
def client(
    sess: boto3.Session, service: Literal["cloudfront"], *, endpoint_url: str | None = None
) -> CloudFrontClient: ...
def client(
    sess: boto3.Session,
    service: Literal["sts", "iam", "s3", "cloudfront"],
    *,
    endpoint_url: str | None = None,
) -> STSClient | IAMClient | S3Client | CloudFrontClient:
    """A client of ``service`` from ``sess`` with keyless' timeouts and retry policy;
    ``endpoint_url`` overrides the configured endpoint (None: botocore's own resolution)."""
    return sess.client(service, endpoint_url=endpoint_url, config=CLIENT_CONFIG)


def any_client(sess: boto3.Session, service: str) -> Any:
    """``client`` for a service keyless has no stubs for (an audit's Organizations, ...)."""
    return sess.client(service, config=CLIENT_CONFIG)  # type: ignore[call-overload]


def sts_client(sess: boto3.Session, *, endpoint_url: str | None, keys: Keys | None) -> STSClient:
    """An STS client for the exchange: unsigned for ``keys=None`` (AssumeRoleWithWebIdentity
    needs no credentials), else signed with ``keys``; keyless' timeouts, no botocore retries."""
    config = CLIENT_CONFIG.merge(_NO_BOTOCORE_RETRIES)
    if keys is None:
        return sess.client(
            "sts",
            endpoint_url=endpoint_url,
            config=config.merge(Config(signature_version=UNSIGNED)),
        )
    return sess.client(
        "sts",
        endpoint_url=endpoint_url,
        config=config,
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
        aws_session_token=keys.session_token,
    )


# --- a deploy's control plane (copies in place, deletes, CloudFront) ----------------------------


def control_config(concurrency: int) -> Config:
    """A deploy's control-plane clients: their own timeouts and attempts, a pool for
    ``concurrency`` requests at once (at least botocore's 10, at most keyless' default)."""
    return Config(
        connect_timeout=S3_CONTROL_CONNECT_TIMEOUT_SECONDS,
        read_timeout=S3_CONTROL_READ_TIMEOUT_SECONDS,
        # total_max_attempts counts the first try; botocore's max_attempts would not.
        retries={"mode": "standard", "total_max_attempts": S3_CONTROL_MAX_ATTEMPTS},
        max_pool_connections=max(10, min(concurrency, DEFAULT_CONCURRENCY)),
    )


def control_s3(
    sess: boto3.Session | EnvironmentSession, *, region: str, concurrency: int
) -> S3Client:
    """A deploy's S3 client for copies in place and deletes, in ``region``."""
    s3: S3Client = sess.client("s3", region_name=region, config=control_config(concurrency))
    return s3


def control_cloudfront(sess: boto3.Session | EnvironmentSession) -> CloudFrontClient:
    """A deploy's CloudFront client (one invalidation: one connection)."""
    cloudfront: CloudFrontClient = sess.client("cloudfront", config=control_config(1))
    return cloudfront


def configured_endpoint_url(sess: boto3.Session, service: str) -> str | None:
    """``AWS_ENDPOINT_URL_<SERVICE>``, ``AWS_ENDPOINT_URL`` or the profile's ``endpoint_url``,
    resolved by botocore's own provider (the one its clients use), without building a client."""
    core = sess._session
    if core.get_config_variable("ignore_configured_endpoint_urls"):
        return None
    try:
        from botocore.configprovider import ConfiguredEndpointProvider

        provider = ConfiguredEndpointProvider(
            full_config=core.full_config,
            scoped_config=core.get_scoped_config(),
            client_name=service,
        )
        url = provider.provide()
    except (ImportError, TypeError, AttributeError):
        # botocore marks the provider private: if it changes, build a client as before.
        url = core.create_client(service).meta.endpoint_url
        return url if "amazonaws.com" not in url else None
    return str(url) if url else None
