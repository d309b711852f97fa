"""Where the STS exchange sends its calls and which client makes them.

The Query client (``keyless.aws.sts_query``) on the standard library wherever it does what
botocore's STS client would: the endpoint from ``AWS_ENDPOINT_URL_STS`` / ``AWS_ENDPOINT_URL`` or
the commercial partition's regional endpoint, the CA bundle of ``AWS_CA_BUNDLE``, proxies from the
environment as urllib reads them, one deadline per request as long as botocore's connect and read
timeouts together, and no retries underneath keyless' own. botocore (imported on use) where the
Query client would differ: FIPS or dual-stack endpoints, other partitions, a region name botocore
refuses, an endpoint that is not http(s), or a shared config file whose default profile sets
anything botocore's STS client would honour (an endpoint, a CA bundle, proxy settings).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from keyless.aws.sts_query import QueryStsClient, regional_endpoint
from keyless.errors import AwsError, UsageError
from keyless.limits import AWS_CONNECT_TIMEOUT_SECONDS, AWS_READ_TIMEOUT_SECONDS
from keyless.urls import has_userinfo, shown_url

if TYPE_CHECKING:
    import boto3

    from keyless.aws.clients import Keys
    from keyless.aws.sts import SigningKeys

__all__ = ["ClientFactory", "endpoint_url", "exchange_client_factory", "sts_client_factory"]

#: Makes the STS client: unsigned for ``None`` (AssumeRoleWithWebIdentity needs no credentials),
#: else signed with the given keys. Either a ``QueryStsClient`` or botocore's ``STSClient``: both
#: answer the three calls in boto3's shape (``Any``: they share no declared type).
ClientFactory = Callable[["SigningKeys | None"], Any]

#: botocore's own check of a region name (botocore.utils.validate_region_name).
_REGION: Final = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?")
#: Settings of the default profile that change what botocore's STS client does.
_BOTOCORE_SETTINGS: Final = frozenset(
    {
        "ca_bundle",
        "endpoint_url",
        "services",
        "ignore_configured_endpoint_urls",
        "use_fips_endpoint",
        "use_dualstack_endpoint",
        "proxy_ca_bundle",
        "proxy_client_cert",
        "proxy_use_forwarding_for_https",
    }
)


def endpoint_url(env: Mapping[str, str], service: str) -> str | None:
    """The configured endpoint for ``service`` from ``env``: ``AWS_ENDPOINT_URL_<SERVICE>``, then
    ``AWS_ENDPOINT_URL``, unless ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true (the lookup
    botocore >= 1.31 does on the process environment; done here on the injected one)."""
    if env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() == "true":
        return None
    name = f"AWS_ENDPOINT_URL_{service.upper()}"
    if not env.get(name):
        name = "AWS_ENDPOINT_URL"
    value = env.get(name) or None
    if value is not None and has_userinfo(value):
        # botocore would quote it in every connection error; AWS endpoints take no user info.
        raise UsageError(
            f"{name} {shown_url(value)} has user info (user:password@)",
            remedy=f"Set {name} to the endpoint without it, e.g. https://host:port.",
        )
    return value


def sts_client_factory(env: Mapping[str, str], *, region: str) -> ClientFactory:
    """botocore's STS clients: regional endpoint, ``AWS_ENDPOINT_URL(_STS)`` from ``env``, proxies
    and CA bundle from botocore's usual settings, keyless' timeouts, no botocore retries."""
    endpoint = endpoint_url(env, "sts")
    sessions: list[boto3.Session] = []  # one per factory: loading botocore's models is slow

    def make(keys: Keys | None) -> Any:
        from botocore.exceptions import BotoCoreError

        from keyless.aws import clients

        try:
            if not sessions:
                sessions.append(clients.regional_sts_session(region))
            return clients.sts_client(sessions[0], endpoint_url=endpoint, keys=keys)
        except (BotoCoreError, ValueError) as exc:
            raise AwsError(f"cannot make an STS client for {region}: {type(exc).__name__}") from exc

    return make


def query_endpoint(env: Mapping[str, str], *, region: str) -> str | None:
    """The endpoint the Query client would call, or ``None`` where botocore's client is needed
    to do the same (see the module's docstring)."""
    for name in ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT"):
        if env.get(name, "").strip().lower() == "true":
            return None
    if _REGION.fullmatch(region) is None or _config_has_botocore_settings(env):
        return None
    configured = endpoint_url(env, "sts")
    if configured is None:
        return regional_endpoint(region)
    return configured if configured.startswith(("https://", "http://")) else None


def _config_has_botocore_settings(env: Mapping[str, str]) -> bool:
    """Whether the default profile of the shared config file sets anything in
    ``_BOTOCORE_SETTINGS`` (the exchange reads no other profile); an unreadable file is left to
    botocore, as today."""
    path = Path(env.get("AWS_CONFIG_FILE") or Path.home() / ".aws" / "config").expanduser()
    if not path.exists():
        return False
    import configparser

    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return True
    for section in ("default", "profile default"):
        if parser.has_section(section) and _BOTOCORE_SETTINGS & set(parser.options(section)):
            return True
    return False


def exchange_client_factory(env: Mapping[str, str], *, region: str) -> ClientFactory:
    """The exchange's STS clients: the Query client where it is equivalent, else botocore's."""
    endpoint = query_endpoint(env, region=region)
    if endpoint is None:
        return sts_client_factory(env, region=region)
    ca_bundle = env.get("AWS_CA_BUNDLE") or None
    posters: list[Any] = []  # one per factory: its TLS context loads the CA bundle once

    def make(keys: Keys | None) -> QueryStsClient:
        if not posters:
            posters.append(_poster(ca_bundle, region))
        return QueryStsClient(
            endpoint=endpoint,
            region=region,
            http=posters[0],
            keys=None if keys is None else _key_triple(keys),
        )

    return make


def _poster(ca_bundle: str | None, region: str) -> Any:
    import ssl

    from keyless.http import UrllibClient

    try:
        return UrllibClient(
            ca_bundle=Path(ca_bundle) if ca_bundle else None,
            # botocore gives connecting and each read their own timeout; one deadline for the
            # whole request, as long as both together, bounds the same wait.
            timeout=AWS_CONNECT_TIMEOUT_SECONDS + AWS_READ_TIMEOUT_SECONDS,
        )
    except (OSError, ssl.SSLError) as exc:
        raise AwsError(
            f"cannot make an STS client for {region}: AWS_CA_BUNDLE {ca_bundle} cannot be read"
            f" ({type(exc).__name__})",
            remedy="Point AWS_CA_BUNDLE at a PEM file of CA certificates, or unset it.",
        ) from None


def _key_triple(keys: Keys) -> tuple[str, str, str | None]:
    return (keys.access_key_id, keys.secret_access_key, keys.session_token)
