"""``keyless.http``: one deadline for a whole request, whatever the server does byte by byte, and
no user info or query of a URL in any message."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.errors import NetworkError
from keyless.http import UrllibClient, is_loopback
from keyless.local.issuer import LocalIssuer
from keyless.urls import shown_url
from tests.slow_server import drip, tls_files

#: Short enough for a quick test; the server needs max_bytes * interval = 20 s to finish.
DEADLINE = 0.5


@pytest.mark.parametrize("headers_first", [False, True], ids=["status-line", "body"])
def test_a_dripping_server_cannot_stretch_the_deadline(headers_first: bool) -> None:
    with drip(headers_first=headers_first) as server:
        with pytest.raises(NetworkError) as info:
            UrllibClient(timeout=DEADLINE).get(server.url + "/slow")
        sent = server.most_sent
    assert f"no complete answer within {DEADLINE:g} s" in info.value.message
    assert info.value.message.startswith(f"cannot reach {server.url}/slow")
    # Each byte came well within a per-read timeout: only the request's deadline ended it.
    assert server.connections == 1
    assert sent < server.max_bytes // 2


def test_the_deadline_covers_the_tls_connection_too(tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    with drip(tls=files) as server:
        with pytest.raises(NetworkError) as info:
            UrllibClient(ca_bundle=files.ca_bundle).get(server.url, timeout=DEADLINE)
        sent = server.most_sent
    assert "no complete answer within" in info.value.message
    assert sent < server.max_bytes // 2


def test_user_info_is_refused_and_never_shown() -> None:
    secret = "hunter2-pass-77"
    with pytest.raises(NetworkError) as info:
        UrllibClient().get(f"https://deploy:{secret}@127.0.0.1:9/x?sig={secret}")
    assert secret not in info.value.message
    assert secret not in (info.value.remedy or "")
    assert "user:password@" in info.value.message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@host/p", "https://***@host/p"),
        ("https://user@host:8443/p?q=1#f", "https://***@host:8443/p?***"),
        ("https://host/path", "https://host/path"),
        ("https://host/", "https://host/"),
        ("http://127.0.0.1:8/idtoken?api-version=2.0&sig=x", "http://127.0.0.1:8/idtoken?***"),
        ("https://a:b@[::1/x?y", "https://[::1/***"),
        ("not a url", "not a url"),
    ],
)
def test_shown_url_drops_user_info_and_query(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_the_loopback_ca_is_trusted_besides_the_systems_for_loopback_hosts(
    local_issuer: LocalIssuer,
) -> None:
    url = local_issuer.issuers[0] + "/.well-known/openid-configuration"
    with pytest.raises(NetworkError, match="CERTIFICATE_VERIFY_FAILED"):
        UrllibClient().get(url)
    assert UrllibClient(loopback_ca_bundle=local_issuer.ca_bundle).get(url).status == 200


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("https://127.0.0.1:4600/x", True),
        ("https://127.9.9.9/", True),
        ("https://[::1]:4600/", True),
        ("https://localhost:4600/", True),
        ("https://token.actions.githubusercontent.com", False),
        ("https://10.0.0.1/", False),
        ("https://127.0.0.1.example.com/", False),
        ("https://[not-an-address/", False),
    ],
)
def test_is_loopback(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback
