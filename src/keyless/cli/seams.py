"""The I/O the commands reach through, as one value with production defaults.

``main(argv, Console(seams=...))`` is how a test drives a command against doubles (a stubbed
STS, a session on a local stack, a fixed clock); production passes nothing. Each default imports
its library on first use, so that building the parser loads no AWS SDK.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3

    from keyless.aws.sts import Sts
    from keyless.aws.thumbprint import Thumbprint
    from keyless.deploy.apply import DeployRequest, DeployResult

#: ``(environment, region, notify) -> Sts``: the STS of an exchange or of ``whoami``.
StsFactory = Callable[[Mapping[str, str], str, Callable[[str], None]], "Sts"]
#: ``(environment, region) -> session``: the environment's own credentials (``whoami``).
AmbientSessionFactory = Callable[[Mapping[str, str], str], "boto3.Session"]
#: ``region -> session``: the administrator's credentials of ``provision`` and ``audit``.
AdminSessionFactory = Callable[[str], "boto3.Session"]
#: ``(issuer, ca_bundle=...) -> thumbprint``: the CA thumbprint ``provision`` records.
ThumbprintReader = Callable[..., "Thumbprint"]
#: ``(request, session=..., progress=...) -> result``: one deploy (keyless.deploy.apply.deploy).
Deployer = Callable[..., "DeployResult"]


def sts_for_environment(env: Mapping[str, str], region: str, notify: Callable[[str], None]) -> Sts:
    """STS on the environment's endpoint for ``region``."""
    from keyless.aws.sts import Sts

    return Sts.for_environment(env, region=region, notify=notify)


def ambient_session(env: Mapping[str, str], region: str) -> boto3.Session:
    """The environment's keys, else its profile, else boto3's chain."""
    from keyless.aws.clients import ambient_session as session

    return session(env, region=region)


def admin_session(region: str) -> boto3.Session:
    """boto3's session for ``region``, honouring the endpoint variables."""
    from keyless.aws import clients

    return clients.session(region=region)


def issuer_thumbprint(issuer: str, *, ca_bundle: Path | None) -> Thumbprint:
    """``keyless.aws.thumbprint.issuer_thumbprint``, imported on use."""
    from keyless.aws import thumbprint

    return thumbprint.issuer_thumbprint(issuer, ca_bundle=ca_bundle)


def deploy(request: DeployRequest, **options: Any) -> DeployResult:
    """``keyless.deploy.apply.deploy``, imported on use."""
    from keyless.deploy import apply

    return apply.deploy(request, **options)


@dataclass(frozen=True, slots=True, kw_only=True)
class Seams:
    """Where the commands' clock, AWS sessions, STS, thumbprints and deploys come from."""

    #: Seconds since the epoch: token expiry and relative times, fallback session names.
    clock: Callable[[], float] = time.time
    sts: StsFactory = sts_for_environment
    ambient_session: AmbientSessionFactory = ambient_session
    admin_session: AdminSessionFactory = admin_session
    thumbprint: ThumbprintReader = issuer_thumbprint
    deploy: Deployer = deploy
