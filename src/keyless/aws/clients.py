"""The one place keyless makes boto3 clients: timeouts, retries and endpoints set explicitly.

Endpoints are left to botocore (>= 1.31), which honours ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_<SERVICE>`` from the environment and the config file; that is how the local
stack and any other S3/STS-compatible endpoint are reached through the same code path as AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, overload

import boto3
from botocore.config import Config

from keyless import __version__
from keyless.limits import (
    AWS_CONNECT_TIMEOUT_SECONDS,
    AWS_DEFAULT_REGION,
    AWS_MAX_ATTEMPTS,
    AWS_READ_TIMEOUT_SECONDS,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sts import STSClient

CLIENT_CONFIG = Config(
    connect_timeout=AWS_CONNECT_TIMEOUT_SECONDS,
    read_timeout=AWS_READ_TIMEOUT_SECONDS,
    # total_max_attempts counts the first try too (botocore: max_attempts counts retries only).
    retries={"mode": "standard", "total_max_attempts": AWS_MAX_ATTEMPTS},
    user_agent_extra=f"keyless/{__version__}",
)


def region_from(env: Mapping[str, str], explicit: str | None = None) -> str:
    """The region to use: the flag, then ``AWS_REGION``, ``AWS_DEFAULT_REGION``, then a default."""
    return explicit or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or AWS_DEFAULT_REGION


def session(
    *,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    profile: str | None = None,
) -> boto3.Session:
    """A boto3 session; with no keys given, boto3's own credential chain applies."""
    return boto3.Session(
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        profile_name=profile,
    )


@overload
def client(sess: boto3.Session, service: Literal["sts"]) -> STSClient: ...
@overload
def client(sess: boto3.Session, service: Literal["iam"]) -> IAMClient: ...
@overload
def client(sess: boto3.Session, service: Literal["s3"]) -> S3Client: ...
@overload
def client(sess: boto3.Session, service: Literal["cloudfront"]) -> CloudFrontClient: ...
def client(
    sess: boto3.Session, service: Literal["sts", "iam", "s3", "cloudfront"]
) -> STSClient | IAMClient | S3Client | CloudFrontClient:
    """A client of ``service`` from ``sess`` with keyless' timeouts and retry policy."""
    return sess.client(service, config=CLIENT_CONFIG)
