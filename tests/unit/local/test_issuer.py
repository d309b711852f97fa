"""The local OIDC issuer: HTTPS with its own CA, several issuers on one server, key rotation,
minting, persistence to a state folder, and a clean stop."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import stat
import time
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtensionOID

from keyless.errors import NetworkError, UsageError
from keyless.http import UrllibClient
from keyless.local.issuer import LocalIssuer
from keyless.local.issuer_server import Request, Response
from keyless.local.pki import LocalPki
from tests.fixtures.issuer import BITBUCKET_PATH, CIRCLECI_PATH, ISSUER_PATHS, ROOT_PATH


def get_json(http: UrllibClient, url: str) -> dict[str, object]:
    response = http.get(url)
    assert response.status == 200, url
    document = json.loads(response.body)
    assert isinstance(document, dict)
    return document


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("path", ISSUER_PATHS)
def test_each_issuer_serves_discovery_and_jwks_over_https(
    local_issuer: LocalIssuer, issuer_http: UrllibClient, path: str
) -> None:
    url = local_issuer.issuer_url(path)
    discovery = get_json(issuer_http, url + "/.well-known/openid-configuration")
    assert discovery["issuer"] == url
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256"]
    jwks_uri = discovery["jwks_uri"]
    assert isinstance(jwks_uri, str)
    assert jwks_uri.startswith("https://127.0.0.1:")
    jwks = get_json(issuer_http, jwks_uri)
    assert jwks == local_issuer.jwks(path)
    keys = jwks["keys"]
    assert isinstance(keys, list)
    (key,) = keys
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["use"] == "sig"
    assert key["kid"] == local_issuer.active_kid(path)


def test_issuer_urls_have_the_shapes_of_the_real_cis(local_issuer: LocalIssuer) -> None:
    base = local_issuer.base_url
    assert local_issuer.issuer_url(ROOT_PATH) == base  # like https://token.actions...com
    assert local_issuer.issuer_url(BITBUCKET_PATH) == base + BITBUCKET_PATH
    assert local_issuer.issuer_url(CIRCLECI_PATH) == base + CIRCLECI_PATH
    assert set(local_issuer.issuers) == {base, base + BITBUCKET_PATH, base + CIRCLECI_PATH}
    kids = {local_issuer.active_kid(path) for path in ISSUER_PATHS}
    assert len(kids) == 3  # each issuer signs with its own key


def test_tls_is_verified_against_the_generated_ca(local_issuer: LocalIssuer) -> None:
    with pytest.raises(NetworkError):
        UrllibClient().get(local_issuer.base_url + "/.well-known/openid-configuration")
    pem = local_issuer.ca_bundle.read_bytes()
    ca = x509.load_pem_x509_certificate(pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert local_issuer.ca_thumbprint == ca.fingerprint(hashes.SHA1()).hex()  # noqa: S303
    assert len(local_issuer.ca_thumbprint) == 40

    # The server certificate is a leaf for 127.0.0.1 and localhost, signed by that CA.
    context = ssl.create_default_context(cafile=str(local_issuer.ca_bundle))
    with (
        socket.create_connection(("127.0.0.1", local_issuer.port)) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    leaf = x509.load_der_x509_certificate(der)
    assert leaf.issuer == ca.subject
    san = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert isinstance(san, x509.SubjectAlternativeName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]


def test_mint_fills_only_the_registered_claims_that_are_missing(local_issuer: LocalIssuer) -> None:
    raw = local_issuer.mint(CIRCLECI_PATH, {"sub": "org/x", "aud": "x"}, lifetime=3600)
    header = jwt.get_unverified_header(raw)
    claims = jwt.decode(raw, options={"verify_signature": False})
    assert header == {"alg": "RS256", "typ": "JWT", "kid": local_issuer.active_kid(CIRCLECI_PATH)}
    assert set(claims) == {"sub", "aud", "iss", "iat", "nbf", "exp"}
    assert claims["iss"] == local_issuer.issuer_url(CIRCLECI_PATH)
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == 3600

    given = {"iss": "https://elsewhere.test", "iat": 5, "nbf": 4, "exp": 6, "extra": [1]}
    claims = jwt.decode(local_issuer.mint(ROOT_PATH, given), options={"verify_signature": False})
    assert claims == given  # the issuer signs what it is given


def test_mint_headers_override_and_none_removes(local_issuer: LocalIssuer) -> None:
    raw = local_issuer.mint(ROOT_PATH, {}, headers={"kid": None, "typ": "at+jwt", "x": 1})
    assert jwt.get_unverified_header(raw) == {"alg": "RS256", "typ": "at+jwt", "x": 1}


def test_mint_refuses_unknown_issuers_kids_and_lifetimes(local_issuer: LocalIssuer) -> None:
    with pytest.raises(UsageError):
        local_issuer.mint("/nowhere", {})
    with pytest.raises(UsageError):
        local_issuer.mint(ROOT_PATH, {}, kid="no-such-kid")
    with pytest.raises(UsageError):
        local_issuer.mint(ROOT_PATH, {}, lifetime=0)
    with pytest.raises(UsageError):
        local_issuer.mint("https://127.0.0.1:1/elsewhere", {})


def test_an_issuer_can_be_named_by_url_or_path(local_issuer: LocalIssuer) -> None:
    url = local_issuer.issuer_url(BITBUCKET_PATH)
    assert local_issuer.active_kid(url) == local_issuer.active_kid(BITBUCKET_PATH)


def test_rotation_keeps_the_old_key_until_its_tokens_expire() -> None:
    clock = FakeClock()
    with LocalIssuer(paths=[ROOT_PATH], clock=clock) as issuer:
        old = issuer.active_kid(ROOT_PATH)
        issuer.mint(ROOT_PATH, {}, lifetime=600)
        new = issuer.rotate(ROOT_PATH)
        assert new != old
        assert issuer.active_kid(ROOT_PATH) == new
        assert issuer.published_kids(ROOT_PATH) == (old, new)
        raw = issuer.mint(ROOT_PATH, {})
        assert jwt.get_unverified_header(raw)["kid"] == new
        clock.now += 600  # the old key's last token has just expired; leeway still applies
        assert old in issuer.published_kids(ROOT_PATH)
        clock.now += 61
        assert issuer.published_kids(ROOT_PATH) == (new,)
        served = UrllibClient(ca_bundle=issuer.ca_bundle).get(issuer.base_url + "/.well-known/jwks")
        assert [k["kid"] for k in json.loads(served.body)["keys"]] == [new]


def test_a_key_that_signed_nothing_leaves_the_jwks_at_once(fresh_issuer: LocalIssuer) -> None:
    old = fresh_issuer.active_kid(CIRCLECI_PATH)
    new = fresh_issuer.rotate(CIRCLECI_PATH)
    assert fresh_issuer.published_kids(CIRCLECI_PATH) == (new,)
    assert old != new


def test_unknown_paths_are_404_and_routes_can_be_added(fresh_issuer: LocalIssuer) -> None:
    http = UrllibClient(ca_bundle=fresh_issuer.ca_bundle)
    assert http.get(fresh_issuer.base_url + "/nothing/here").status == 404
    seen: list[Request] = []

    def responder(request: Request) -> Response:
        seen.append(request)
        return Response.json({"value": "ok"})

    url = fresh_issuer.add_route("/token-request", responder)
    response = http.get(url + "?audience=sts.amazonaws.com", headers={"Authorization": "bearer x"})
    assert json.loads(response.body) == {"value": "ok"}
    assert seen[0].query == {"audience": ["sts.amazonaws.com"]}
    assert seen[0].headers["Authorization"] == "bearer x"
    assert "bearer x" not in repr(seen[0])
    # The log keeps paths only: a query could carry a secret.
    assert fresh_issuer.request_log()[-1] == "/token-request"


def test_issuers_can_be_added_while_running(fresh_issuer: LocalIssuer) -> None:
    path = fresh_issuer.add_issuer(
        "/2.0/workspaces/other/pipelines-config/identity/oidc",
        jwks_suffix="/keys.json",
        discovery_extra={"claims_supported": ["sub", "aud"]},
    )
    url = fresh_issuer.issuer_url(path)
    http = UrllibClient(ca_bundle=fresh_issuer.ca_bundle)
    discovery = get_json(http, url + "/.well-known/openid-configuration")
    assert discovery["jwks_uri"] == url + "/keys.json"
    assert discovery["claims_supported"] == ["sub", "aud"]
    assert get_json(http, url + "/keys.json") == fresh_issuer.jwks(path)


@pytest.mark.parametrize("path", ["", "org", "/org/", "/org//x", "/org/../x", "/a b", "/x?y"])
def test_bad_issuer_paths_are_refused(fresh_issuer: LocalIssuer, path: str) -> None:
    with pytest.raises(UsageError):
        fresh_issuer.add_issuer(path)


def test_an_issuer_path_cannot_be_served_twice(fresh_issuer: LocalIssuer) -> None:
    with pytest.raises(UsageError):
        fresh_issuer.add_issuer(CIRCLECI_PATH)
    with pytest.raises(UsageError):
        fresh_issuer.add_route("/.well-known/jwks", lambda request: Response.json({}))


def test_stop_joins_the_thread_and_frees_the_port() -> None:
    issuer = LocalIssuer().start()
    port = issuer.port
    ca_bundle = issuer.ca_bundle
    http = UrllibClient(ca_bundle=ca_bundle, timeout=5)
    assert http.get(issuer.base_url + "/.well-known/jwks").status == 200
    issuer.stop()
    issuer.stop()  # idempotent
    assert not issuer.running
    assert not ca_bundle.exists()  # the private scratch folder is gone
    with pytest.raises(UsageError):
        _ = issuer.base_url
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass


def test_starting_twice_is_refused(fresh_issuer: LocalIssuer) -> None:
    with pytest.raises(UsageError):
        fresh_issuer.start()


def test_state_dir_keeps_the_ca_and_keys_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with LocalIssuer(paths=[ROOT_PATH, CIRCLECI_PATH], state_dir=state) as issuer:
        thumbprint = issuer.ca_thumbprint
        issuer.mint(ROOT_PATH, {}, lifetime=3600)
        old = issuer.active_kid(ROOT_PATH)
        new = issuer.rotate(ROOT_PATH)
        circle = issuer.active_kid(CIRCLECI_PATH)
    assert stat.S_IMODE((state / "keys").stat().st_mode) == 0o700
    for key_file in [*(state / "keys").glob("*.pem"), *(state / "tls").glob("*-key.pem")]:
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600, key_file
    assert stat.S_IMODE((state / "tls" / "ca.pem").stat().st_mode) == 0o644

    with LocalIssuer(paths=[ROOT_PATH], state_dir=state) as again:
        assert again.ca_thumbprint == thumbprint
        assert again.published_kids(ROOT_PATH) == (old, new)
        assert again.active_kid(CIRCLECI_PATH) == circle  # persisted issuers come back
        raw = again.mint(CIRCLECI_PATH, {"aud": "a", "sub": "s"})
        assert jwt.get_unverified_header(raw)["kid"] == circle


def test_an_unreadable_state_dir_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "issuers.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(UsageError, match="unreadable"):
        LocalIssuer(state_dir=tmp_path)


def test_pki_reuses_its_ca_and_renews_an_expiring_server_certificate(tmp_path: Path) -> None:
    long_ago = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    pki, files = LocalPki.load_or_create(tmp_path, clock=lambda: long_ago)
    assert pki.server_not_after < datetime.datetime.now(datetime.timezone.utc)
    renewed, files_again = LocalPki.load_or_create(tmp_path)
    assert renewed.ca_cert_pem == pki.ca_cert_pem
    assert renewed.server_cert_pem != pki.server_cert_pem
    assert renewed.server_not_after > datetime.datetime.now(datetime.timezone.utc)
    assert files_again == files
    assert "KEY" not in repr(renewed)


def test_signing_uses_the_issuers_own_key(local_issuer: LocalIssuer) -> None:
    now = int(time.time())
    raw = local_issuer.mint(BITBUCKET_PATH, {"aud": "a", "sub": "s", "exp": now + 60})
    jwk = local_issuer.jwks(BITBUCKET_PATH)["keys"][0]  # type: ignore[index]
    key = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
    claims = jwt.decode(raw, key, algorithms=["RS256"], audience="a")  # type: ignore[arg-type]
    assert claims["sub"] == "s"
