"""The thumbprint of an OIDC issuer for IAM's ``ThumbprintList``: SHA-1 of the certificate at the
top of the chain that the host serving the issuer's keys presents, as the IAM User Guide documents.
"""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NewType
from urllib.parse import urlsplit

from keyless.errors import IssuerError, NetworkError, UsageError
from keyless.http import HttpClient, UrllibClient
from keyless.limits import OIDC_DISCOVERY_REQUEST_SECONDS, TLS_CHAIN_REQUEST_SECONDS
from keyless.tokens import discovery_url, strict_json_loads

__all__ = [
    "ChainFetcher",
    "Thumbprint",
    "issuer_thumbprint",
    "parse_thumbprint",
    "presented_chain",
    "thumbprint_of",
]

#: 40 lowercase hex digits: the SHA-1 of one certificate (DER).
Thumbprint = NewType("Thumbprint", str)

#: Fetches the DER certificates a TLS server presents, leaf first:
#: ``(host, port, ca_bundle, timeout) -> chain``.
ChainFetcher = Callable[[str, int, Path | None, float], Sequence[bytes]]

_HEX40 = re.compile(r"[0-9a-f]{40}")
_HTTPS_PORT = 443


def parse_thumbprint(text: str) -> Thumbprint:
    """``--thumbprint HEX``: 40 hex digits, colons and case as ``openssl`` prints them accepted."""
    value = text.strip().replace(":", "").lower()
    if not _HEX40.fullmatch(value):
        raise UsageError(
            f"thumbprint {text!r} is not 40 hex digits (a SHA-1 fingerprint)",
            remedy="openssl x509 -in top-ca.pem -noout -fingerprint -sha1 prints one.",
        )
    return Thumbprint(value)


def thumbprint_of(der: bytes) -> Thumbprint:
    """SHA-1 of a DER certificate, lowercase hex."""
    # IAM defines the thumbprint as SHA-1; it identifies a certificate, it does not protect one.
    return Thumbprint(hashlib.sha1(der, usedforsecurity=False).hexdigest())


def presented_chain(
    host: str, port: int, ca_bundle: Path | None, timeout: float = TLS_CHAIN_REQUEST_SECONDS
) -> tuple[bytes, ...]:
    """The certificates ``host:port`` presents in its TLS handshake (DER, leaf first).

    The handshake is verified (system trust store, or ``ca_bundle``): a thumbprint read from an
    unverified connection could be an attacker's.
    """
    context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            # One deadline for connect and handshake together (the handshake has one of its own
            # in CPython's ssl module): give it only what the connect left.
            raw.settimeout(max(deadline - time.monotonic(), 0.001))
            with context.wrap_socket(raw, server_hostname=host) as tls:
                return _unverified_chain(tls)
    except ssl.SSLCertVerificationError as exc:
        raise NetworkError(
            f"TLS certificate of {host}:{port} is not trusted: {exc.verify_message}",
            remedy="For a private CA (the local stack), pass --ca-bundle PEM.",
        ) from exc
    except (OSError, TimeoutError) as exc:
        raise NetworkError(f"cannot open a TLS connection to {host}:{port}: {exc}") from exc


def _unverified_chain(tls: ssl.SSLSocket) -> tuple[bytes, ...]:
    # "Unverified" is the chain as sent, which is what AWS's procedure reads (openssl s_client
    # -showcerts); the verified chain would end at a root of the local trust store instead. The
    # handshake itself was verified above. Python 3.13 has SSLSocket.get_unverified_chain();
    # 3.10-3.12 have the same method on the private _sslobj.
    public = getattr(tls, "get_unverified_chain", None)
    if public is not None:
        return tuple(bytes(der) for der in public())
    sslobj = getattr(tls, "_sslobj", None)
    private = getattr(sslobj, "get_unverified_chain", None)
    if private is None:
        raise NetworkError(
            "this Python cannot read a TLS certificate chain",
            remedy="Pass --thumbprint HEX (or use Python 3.13+).",
        )
    return tuple(cert.public_bytes(ssl._ssl.ENCODING_DER) for cert in private())  # type: ignore[attr-defined]


def issuer_thumbprint(
    issuer: str,
    *,
    http: HttpClient | None = None,
    ca_bundle: Path | None = None,
    fetch_chain: ChainFetcher = presented_chain,
    timeout: float = OIDC_DISCOVERY_REQUEST_SECONDS,
) -> Thumbprint:
    """The thumbprint IAM expects for ``issuer``.

    IAM User Guide, "Obtain the thumbprint for an OpenID Connect identity provider": take the
    host of ``jwks_uri`` from the issuer's discovery document, and the SHA-1 of the last
    certificate that host presents (the top intermediate or root CA it sends).
    """
    client = http if http is not None else UrllibClient(ca_bundle=ca_bundle, timeout=timeout)
    url = discovery_url(issuer)
    try:
        response = client.get(url, headers={"Accept": "application/json"}, timeout=timeout)
    except NetworkError as exc:
        raise IssuerError(
            f"cannot fetch the discovery document of {issuer}: {exc.message}",
            remedy=_REMEDY,
        ) from exc
    if response.status != 200:
        raise IssuerError(
            f"discovery document of {issuer} at {url} answered HTTP {response.status}",
            remedy=_REMEDY,
        )
    try:
        document = strict_json_loads(response.body)
    except (ValueError, RecursionError):
        raise IssuerError(f"discovery document of {issuer} is not valid JSON") from None
    if isinstance(document, dict):
        check_issuer_matches(issuer, document.get("issuer"))
    jwks_uri = document.get("jwks_uri") if isinstance(document, dict) else None
    if not isinstance(jwks_uri, str):
        raise IssuerError(f"discovery document of {issuer} has no jwks_uri", remedy=_REMEDY)
    parts = urlsplit(jwks_uri)
    if parts.scheme != "https" or not parts.hostname:
        raise IssuerError(f"jwks_uri of {issuer} is not an https URL: {jwks_uri!r}")
    chain = fetch_chain(parts.hostname, parts.port or _HTTPS_PORT, ca_bundle, timeout)
    if not chain:
        raise IssuerError(f"{parts.hostname} presented no certificate", remedy=_REMEDY)
    return thumbprint_of(chain[-1])


_REMEDY = "Check the issuer URL, or give the thumbprint with --thumbprint HEX."


def check_issuer_matches(issuer: str, named: object) -> None:
    """Refuse ``issuer`` unless it is byte for byte the ``issuer`` its discovery document names.

    IAM registers the provider under the URL given and matches each token's ``iss`` against it
    exactly (its condition keys are that URL without ``https://``); OIDC Discovery §4.3 requires
    the document's ``issuer`` to be identical to the URL it was fetched for. A provider made for
    ``https://host/`` when tokens say ``https://host`` is a second provider no token matches.
    """
    if named == issuer:
        return
    if not isinstance(named, str):
        raise IssuerError(f"discovery document of {issuer} names no issuer", remedy=_REMEDY)
    if named.rstrip("/") == issuer.rstrip("/"):
        raise UsageError(
            f"issuer {issuer} differs by a trailing '/' from {named}, the issuer its discovery"
            f" document names and its tokens carry; pass exactly {named}"
        )
    raise IssuerError(
        f"discovery document of {issuer} names another issuer, {named!r}; an IAM provider for"
        f" {issuer} would match no token",
        remedy="Pass the issuer URL exactly as its tokens carry it in `iss`.",
    )
