"""The thumbprint IAM expects: SHA-1 of the top certificate that the host of the issuer's keys
presents."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Mapping
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from keyless.aws.thumbprint import (
    issuer_thumbprint,
    parse_thumbprint,
    presented_chain,
    thumbprint_of,
)
from keyless.errors import IssuerError, NetworkError, UsageError
from keyless.http import HttpResponse
from keyless.local.issuer import LocalIssuer
from keyless.testing import MockTransport
from tests.fixtures.issuer import BITBUCKET_PATH


def refusing_others(responses: Mapping[str, HttpResponse]) -> MockTransport:
    """Each URL's response; any other URL is refused like a closed port."""
    return MockTransport(routes=responses)


def discovery(issuer: str, jwks_uri: object) -> MockTransport:
    body = json.dumps({"issuer": issuer, "jwks_uri": jwks_uri}).encode()
    return refusing_others(
        {f"{issuer}/.well-known/openid-configuration": HttpResponse(status=200, body=body)}
    )


def test_parse_accepts_openssl_output_and_refuses_other_text() -> None:
    upper = ":".join(["AB"] * 20)
    assert parse_thumbprint(upper) == "ab" * 20
    assert parse_thumbprint(" " + "0" * 40 + "\n") == "0" * 40
    for bad in ("0" * 39, "g" * 40, "0" * 64):
        with pytest.raises(UsageError, match="not 40 hex digits"):
            parse_thumbprint(bad)


def test_thumbprint_of_is_sha1_of_der() -> None:
    assert thumbprint_of(b"der") == hashlib.sha1(b"der").hexdigest()  # noqa: S324


def test_the_last_certificate_of_the_keys_host_counts() -> None:
    asked: list[tuple[str, int]] = []

    def chain(host: str, port: int, ca: Path | None, timeout: float) -> tuple[bytes, ...]:
        asked.append((host, port))
        return (b"leaf", b"intermediate", b"top")

    http = discovery("https://issuer.example", "https://keys.example:8443/jwks")
    found = issuer_thumbprint("https://issuer.example", http=http, fetch_chain=chain)
    assert found == thumbprint_of(b"top")
    # The host that serves the keys is the one AWS connects to, not the issuer's host.
    assert asked == [("keys.example", 8443)]


@pytest.mark.parametrize(
    ("jwks_uri", "message"),
    [
        (None, "has no jwks_uri"),
        ("http://keys.example/jwks", "not an https URL"),
        (42, "has no jwks_uri"),
    ],
)
def test_a_discovery_document_without_an_https_jwks_uri_is_refused(
    jwks_uri: object, message: str
) -> None:
    http = discovery("https://issuer.example", jwks_uri)
    with pytest.raises(IssuerError, match=message):
        issuer_thumbprint("https://issuer.example", http=http, fetch_chain=lambda *a: (b"x",))


def test_an_unreachable_issuer_says_to_pass_the_thumbprint() -> None:
    with pytest.raises(IssuerError) as caught:
        issuer_thumbprint("https://issuer.example", http=refusing_others({}))
    assert "https://issuer.example" in caught.value.message
    assert caught.value.remedy is not None
    assert "--thumbprint" in caught.value.remedy


def test_an_http_error_names_the_status() -> None:
    http = refusing_others(
        {
            "https://issuer.example/.well-known/openid-configuration": HttpResponse(
                status=404, body=b""
            )
        }
    )
    with pytest.raises(IssuerError, match="HTTP 404"):
        issuer_thumbprint("https://issuer.example", http=http)


# --- against the real local issuer over HTTPS --------------------------------------------------


def _ca_sha1(bundle: Path) -> str:
    ca = x509.load_pem_x509_certificate(bundle.read_bytes())
    return hashlib.sha1(ca.public_bytes(serialization.Encoding.DER)).hexdigest()  # noqa: S324


def test_the_local_issuers_thumbprint_is_the_sha1_of_its_ca(local_issuer: LocalIssuer) -> None:
    issuer = local_issuer.issuer_url(BITBUCKET_PATH)
    found = issuer_thumbprint(issuer, ca_bundle=local_issuer.ca_bundle)
    assert found == _ca_sha1(local_issuer.ca_bundle)
    assert found == local_issuer.ca_thumbprint


def test_the_presented_chain_is_leaf_then_ca(local_issuer: LocalIssuer) -> None:
    chain = presented_chain("127.0.0.1", local_issuer.port, local_issuer.ca_bundle)
    assert len(chain) == 2
    ca = x509.load_pem_x509_certificate(local_issuer.ca_bundle.read_bytes())
    assert chain[-1] == ca.public_bytes(serialization.Encoding.DER)
    leaf = x509.load_der_x509_certificate(chain[0])
    assert leaf.fingerprint(hashes.SHA256()) != ca.fingerprint(hashes.SHA256())


def test_an_untrusted_chain_is_refused_not_read(local_issuer: LocalIssuer) -> None:
    # Without the local CA the handshake fails: a thumbprint is never taken from an unverified
    # connection.
    with pytest.raises(NetworkError) as caught:
        presented_chain("127.0.0.1", local_issuer.port, None)
    assert "not trusted" in caught.value.message
    assert caught.value.remedy is not None
    assert "--ca-bundle" in caught.value.remedy


def test_a_closed_port_is_a_network_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(NetworkError, match=f"127.0.0.1:{port}"):
        presented_chain("127.0.0.1", port, None, 2.0)


# --- the issuer must be the one its discovery document names, byte for byte ---------------------


def test_a_trailing_slash_the_document_does_not_have_is_refused_naming_the_value() -> None:
    http = discovery("https://issuer.example", "https://keys.example/jwks")
    with pytest.raises(UsageError) as caught:
        issuer_thumbprint("https://issuer.example/", http=http, fetch_chain=lambda *a: (b"x",))
    message = caught.value.message
    assert "issuer https://issuer.example/ differs by a trailing '/'" in message
    assert message.endswith("pass exactly https://issuer.example")


def test_a_slash_the_document_has_is_required_too() -> None:
    body = json.dumps({"issuer": "https://tenant.example/", "jwks_uri": "https://k.example/j"})
    url = "https://tenant.example/.well-known/openid-configuration"
    http = refusing_others({url: HttpResponse(status=200, body=body.encode())})
    with pytest.raises(UsageError) as caught:
        issuer_thumbprint("https://tenant.example", http=http, fetch_chain=lambda *a: (b"x",))
    assert caught.value.message.endswith("pass exactly https://tenant.example/")
    # And the exact value is accepted.
    issuer_thumbprint("https://tenant.example/", http=http, fetch_chain=lambda *a: (b"x",))


def test_a_document_naming_another_issuer_is_refused() -> None:
    body = json.dumps({"issuer": "https://other.example", "jwks_uri": "https://k.example/j"})
    url = "https://issuer.example/.well-known/openid-configuration"
    http = refusing_others({url: HttpResponse(status=200, body=body.encode())})
    with pytest.raises(IssuerError) as caught:
        issuer_thumbprint("https://issuer.example", http=http, fetch_chain=lambda *a: (b"x",))
    assert "names another issuer, 'https://other.example'" in caught.value.message
