"""peek() and verify() against the real local HTTPS issuer: every forged or broken token is refused
with its own check, and no message ever quotes the token."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from keyless import tokens
from keyless.errors import IssuerError, TokenError, TokenVerificationError, UsageError
from keyless.http import HttpResponse, UrllibClient
from keyless.limits import JWKS_REFRESH_MIN_INTERVAL_SECONDS, TOKEN_MAX_CHARS
from keyless.local.issuer import LocalIssuer
from keyless.testing import FakeClock, MockTransport, json_response
from tests.fixtures.issuer import BITBUCKET_PATH, CIRCLECI_PATH, ROOT_PATH, RecordingClient

AUDIENCE = "ari:cloud:bitbucket::workspace/0f5e3c0e-4f5e-4d4a-9f0e-2b1d8d9c7a11"
CLAIMS = {"sub": "{repo}:{step}", "aud": AUDIENCE, "branchName": "main"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: object) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def refused(call: Callable[[], object], check: str, *, raw: str) -> TokenVerificationError:
    """Run ``call``; it must raise ``TokenVerificationError`` with ``check`` and a one-line
    message that quotes neither the token nor its signature."""
    with pytest.raises(TokenVerificationError) as info:
        call()
    error = info.value
    assert error.check == check, f"expected check {check!r}, got {error.check!r}: {error}"
    text = error.diagnostics()
    assert "\n" not in error.message
    for part in [p for p in [raw, *raw.split(".")] if len(p) > 8]:
        assert part not in text
    return error


class Env:
    """The session issuer and what a test needs to verify against one of its issuers."""

    def __init__(self, issuer: LocalIssuer, http: UrllibClient, path: str = BITBUCKET_PATH):
        self.issuer = issuer
        self.http = http
        self.path = path
        self.url = issuer.issuer_url(path)

    def mint(self, claims: Mapping[str, object] | None = None, **kwargs: Any) -> str:
        return self.issuer.mint(self.path, {**CLAIMS, **(claims or {})}, **kwargs)

    def verify(self, raw: str, **kwargs: Any) -> tokens.VerifiedClaims:
        options: dict[str, Any] = {"issuer": self.url, "audience": AUDIENCE, "http": self.http}
        options.update(kwargs)
        return tokens.verify(raw, **options)

    def signed(self, header: str, payload: str) -> str:
        """A token with raw header/payload segments, correctly signed by the issuer's key."""
        signing_input = f"{header}.{payload}"
        return f"{signing_input}.{b64(self.issuer.sign(self.path, signing_input.encode()))}"

    def header(self, **fields: object) -> dict[str, object]:
        return {"alg": "RS256", "typ": "JWT", "kid": self.issuer.active_kid(self.path), **fields}

    def payload(self, **fields: object) -> dict[str, object]:
        now = int(time.time())
        base: dict[str, object] = {"iss": self.url, "iat": now, "nbf": now, "exp": now + 300}
        return {**base, **CLAIMS, **fields}

    def public_pem(self) -> bytes:
        jwk = next(
            k
            for k in self.issuer.jwks(self.path)["keys"]  # type: ignore[attr-defined]
            if k["kid"] == self.issuer.active_kid(self.path)
        )
        key = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
        assert isinstance(key, rsa.RSAPublicKey)
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@pytest.fixture
def env(local_issuer: LocalIssuer, issuer_http: UrllibClient) -> Env:
    return Env(local_issuer, issuer_http)


# --- the good path -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [ROOT_PATH, BITBUCKET_PATH, CIRCLECI_PATH])
def test_verifies_a_token_of_each_issuer_over_https(
    local_issuer: LocalIssuer, issuer_http: UrllibClient, path: str
) -> None:
    env = Env(local_issuer, issuer_http, path)
    raw = env.mint()
    verified = env.verify(raw)
    assert verified.issuer == env.url
    assert verified.subject == "{repo}:{step}"
    assert verified.audience == (AUDIENCE,)
    assert verified.kid == local_issuer.active_kid(path)
    assert verified.algorithm == "RS256"
    assert verified.expires_at - verified.issued_at == 300
    assert verified.claims["branchName"] == "main"


def test_root_issuer_has_no_trailing_slash(env: Env) -> None:
    assert not env.issuer.issuer_url(ROOT_PATH).endswith("/")


def test_audience_may_be_a_list_that_contains_the_expected_one(env: Env) -> None:
    verified = env.verify(env.mint({"aud": ["sts.amazonaws.com", AUDIENCE]}))
    assert verified.audience == ("sts.amazonaws.com", AUDIENCE)


def test_verified_claims_are_frozen_and_made_only_by_verify(env: Env) -> None:
    verified = env.verify(env.mint())
    with pytest.raises(dataclasses.FrozenInstanceError):
        verified.subject = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        verified.claims["sub"] = "other"  # type: ignore[index]
    fields = {f.name: getattr(verified, f.name) for f in dataclasses.fields(verified)}
    fields.pop("_seal")
    with pytest.raises(TypeError, match=r"only by keyless\.tokens\.verify"):
        tokens.VerifiedClaims(**fields)


def test_peek_reads_without_verifying_and_keeps_no_signature(env: Env) -> None:
    raw = env.mint(headers={"kid": "not-a-real-key"})
    token = tokens.peek(raw)
    assert isinstance(token, tokens.UnverifiedToken)
    assert "verified" in (tokens.UnverifiedToken.__doc__ or "").lower()
    assert token.kid == "not-a-real-key"
    assert token.issuer == env.url
    assert token.audience == (AUDIENCE,)
    assert {f.name for f in dataclasses.fields(token)} == {"header", "claims"}
    assert raw.split(".")[2] not in repr(token)


# --- the explicit decode options ---------------------------------------------------------------


EXPECTED_DECODE_OPTIONS = {
    "verify_signature": True,
    "verify_exp": True,
    "verify_nbf": True,
    "verify_iat": True,
    "verify_aud": True,
    "verify_iss": True,
    "verify_sub": True,
    "verify_jti": True,
    "strict_aud": False,
    "require": ["exp", "iat", "iss", "aud", "sub"],
    "enforce_minimum_key_length": True,
}


def test_decode_options_are_spelled_out_and_fresh_each_time() -> None:
    assert tokens.decode_options() == EXPECTED_DECODE_OPTIONS
    tokens.decode_options()["verify_signature"] = False
    assert tokens.decode_options()["verify_signature"] is True


def test_verify_passes_a_raw_key_pinned_algorithms_and_the_options_to_pyjwt(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    real_decode = jwt.decode

    def spy(raw: str, **kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        return real_decode(raw, **kwargs)

    monkeypatch.setattr(jwt, "decode", spy)
    env.verify(env.mint(), leeway=30)
    (call,) = calls
    assert call["options"] == EXPECTED_DECODE_OPTIONS
    assert call["algorithms"] == ["RS256"]
    assert isinstance(call["key"], rsa.RSAPublicKey)  # a raw key, not a PyJWK
    assert call["audience"] == AUDIENCE
    assert call["issuer"] == env.url
    assert call["leeway"] == 30


# --- forged and broken tokens, each with its own check -----------------------------------------


def test_alg_none_is_refused(env: Env) -> None:
    raw = f"{segment(env.header(alg='none'))}.{segment(env.payload())}."
    refused(lambda: env.verify(raw), "algorithm", raw=raw)


def test_hs256_signed_with_the_public_key_is_refused(env: Env) -> None:
    # The classic key confusion: the issuer's public PEM used as an HMAC secret (RFC 8725 §2.1).
    signing_input = f"{segment(env.header(alg='HS256'))}.{segment(env.payload())}"
    mac = hmac.new(env.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    raw = f"{signing_input}.{b64(mac)}"
    error = refused(lambda: env.verify(raw), "algorithm", raw=raw)
    assert "HS256" in str(error)


def test_header_alg_that_does_not_fit_the_key_is_refused(env: Env) -> None:
    # The issuer's JWK says alg RS256: a token claiming RS384 for that key is refused (the
    # header alg must agree with the key's kty/alg/crv), as is any ES* for an RSA key.
    for alg in ("RS384", "ES256"):
        raw = env.mint(headers={"alg": alg})
        error = refused(lambda: env.verify(raw), "algorithm", raw=raw)  # noqa: B023
        assert "does not fit key" in str(error)


def test_unknown_kid_is_refused(env: Env) -> None:
    raw = env.mint(headers={"kid": "no-such-key"})
    error = refused(lambda: env.verify(raw), "kid", raw=raw)
    assert "no-such-key" in str(error)


def test_missing_kid_is_refused(env: Env) -> None:
    raw = env.mint(headers={"kid": None})
    refused(lambda: env.verify(raw), "kid", raw=raw)


def test_signature_by_another_key_is_refused(env: Env) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raw = jwt.encode(
        env.payload(), other, algorithm="RS256", headers={"kid": env.issuer.active_kid(env.path)}
    )
    refused(lambda: env.verify(raw), "signature", raw=raw)


def test_a_key_embedded_in_the_header_is_ignored(env: Env) -> None:
    # jwk/jku/x5u/x5c name key sources an attacker controls; keys come only from the issuer.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(other.public_key()))
    headers = {
        "kid": env.issuer.active_kid(env.path),
        "jwk": jwk,
        "jku": "https://127.0.0.1:9/keys",
        "x5u": "https://127.0.0.1:9/cert",
    }
    raw = jwt.encode(env.payload(), other, algorithm="RS256", headers=headers)
    refused(lambda: env.verify(raw), "signature", raw=raw)


def test_expired_token_is_refused(env: Env) -> None:
    now = int(time.time())
    raw = env.mint({"iat": now - 3600, "nbf": now - 3600, "exp": now - 1800})
    error = refused(lambda: env.verify(raw), "expired", raw=raw)
    assert "expired" in str(error)


def test_the_injected_clock_decides_expiry(env: Env) -> None:
    raw = env.mint(lifetime=300)
    env.verify(raw, clock=lambda: time.time() + 200)  # inside lifetime
    refused(lambda: env.verify(raw, clock=lambda: time.time() + 3600), "expired", raw=raw)
    refused(lambda: env.verify(raw, clock=lambda: time.time() + 400, leeway=0), "expired", raw=raw)


def test_leeway_covers_small_clock_skew(env: Env) -> None:
    now = int(time.time())
    raw = env.mint({"iat": now - 330, "nbf": now - 330, "exp": now - 30})
    env.verify(raw, leeway=60)
    refused(lambda: env.verify(raw, leeway=0), "expired", raw=raw)


def test_nbf_in_the_future_is_refused(env: Env) -> None:
    now = int(time.time())
    raw = env.mint({"nbf": now + 3600, "exp": now + 7200})
    refused(lambda: env.verify(raw), "not-yet-valid", raw=raw)


def test_iat_in_the_future_is_refused(env: Env) -> None:
    now = int(time.time())
    raw = env.mint({"iat": now + 3600, "nbf": now, "exp": now + 7200})
    refused(lambda: env.verify(raw), "issued-at", raw=raw)


def test_wrong_issuer_is_refused(env: Env) -> None:
    other = env.issuer.issuer_url(CIRCLECI_PATH)
    raw = env.mint({"iss": other})
    error = refused(lambda: env.verify(raw), "issuer", raw=raw)
    assert other in str(error)


def test_trailing_slash_is_a_different_issuer(env: Env) -> None:
    raw = env.mint({"iss": env.url + "/"})
    refused(lambda: env.verify(raw), "issuer", raw=raw)
    raw = env.mint()
    refused(lambda: env.verify(raw, issuer=env.url + "/"), "issuer", raw=raw)


def test_wrong_audience_is_refused(env: Env) -> None:
    raw = env.mint()
    error = refused(lambda: env.verify(raw, audience="sts.amazonaws.com"), "audience", raw=raw)
    assert "sts.amazonaws.com" in str(error)
    raw = env.mint({"aud": ["a", "b"]})
    refused(lambda: env.verify(raw), "audience", raw=raw)


def test_token_over_the_size_cap_is_refused_before_parsing(env: Env) -> None:
    raw = env.mint({"padding": "x" * TOKEN_MAX_CHARS})
    assert len(raw) > 20_000
    refused(lambda: tokens.peek(raw), "size", raw=raw)
    refused(lambda: env.verify(raw), "size", raw=raw)
    garbage = "!" * (TOKEN_MAX_CHARS + 1)  # not even a JWT: the cap comes first
    refused(lambda: tokens.peek(garbage), "size", raw=garbage)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.rsplit(".", 1)[0],  # two parts
        lambda t: t + ".AAAA",  # four parts
        lambda t: t + ".AAAA.AAAA",  # five parts: a JWE
        lambda t: t.replace(".", "=.", 1),  # padding
        lambda t: t[:10] + "+" + t[11:],  # standard base64 alphabet
        lambda t: t[:10] + " " + t[11:],  # whitespace inside
        lambda t: "",  # nothing
    ],
    ids=["two", "four", "five", "padding", "alphabet", "space", "empty"],
)
def test_not_three_strict_base64url_parts_is_refused(
    env: Env, mangle: Callable[[str], str]
) -> None:
    raw = mangle(env.mint())
    refused(lambda: env.verify(raw), "format", raw=raw)


def test_non_json_payload_is_refused_even_when_signed(env: Env) -> None:
    raw = env.signed(segment(env.header()), b64(b"not json at all"))
    refused(lambda: env.verify(raw), "format", raw=raw)
    raw = env.signed(segment(env.header()), segment(["a", "list"]))
    refused(lambda: env.verify(raw), "format", raw=raw)


def test_duplicate_member_names_are_refused_even_when_signed(env: Env) -> None:
    payload = json.dumps(env.payload())[:-1] + ', "sub": "repo:attacker/other"}'
    raw = env.signed(segment(env.header()), b64(payload.encode()))
    error = refused(lambda: env.verify(raw), "format", raw=raw)
    assert "'sub'" in str(error)
    header = json.dumps(env.header())[:-1] + ', "alg": "none"}'
    raw = env.signed(b64(header.encode()), segment(env.payload()))
    refused(lambda: env.verify(raw), "format", raw=raw)


def test_unknown_crit_is_refused(env: Env) -> None:
    raw = env.mint(headers={"crit": ["urn:example:must-understand"], "urn:example:x": 1})
    refused(lambda: env.verify(raw), "crit", raw=raw)


def test_b64_false_is_refused(env: Env) -> None:
    raw = env.mint(headers={"b64": False, "crit": ["b64"]})
    refused(lambda: env.verify(raw), "crit", raw=raw)


@pytest.mark.parametrize(
    ("claims", "check"),
    [
        ({"iat": 1.5}, "format"),
        ({"exp": "tomorrow"}, "format"),
        ({"exp": True}, "format"),
        ({"sub": 42}, "format"),
        ({"iss": ["a"]}, "format"),
        ({"aud": [1, 2]}, "format"),
        ({"aud": []}, "format"),
    ],
)
def test_claim_types_are_checked(env: Env, claims: dict[str, object], check: str) -> None:
    raw = env.signed(segment(env.header()), segment(env.payload(**claims)))
    refused(lambda: env.verify(raw), check, raw=raw)


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "aud"])
def test_required_claims_must_be_present(env: Env, claim: str) -> None:
    payload = env.payload()
    del payload[claim]
    raw = env.signed(segment(env.header()), segment(payload))
    error = refused(lambda: env.verify(raw), "missing-claim", raw=raw)
    assert f"'{claim}'" in str(error)


def test_every_refusal_is_a_token_error(env: Env) -> None:
    with pytest.raises(TokenError):
        tokens.peek("a.b")


def test_an_empty_audience_is_a_usage_error(env: Env) -> None:
    with pytest.raises(UsageError):
        env.verify(env.mint(), audience="")


# --- discovery and JWKS ------------------------------------------------------------------------


def test_discovery_issuer_must_match_the_configured_issuer(env: Env) -> None:
    # The token and the configuration both say ".../oidc/"; the issuer's own document says
    # ".../oidc": OIDC Discovery §4.3 refuses to trust its jwks_uri.
    raw = env.mint({"iss": env.url + "/"})
    with pytest.raises(IssuerError, match="names issuer"):
        env.verify(raw, issuer=env.url + "/")


def serving(documents: Mapping[str, object]) -> MockTransport:
    """Serves fixed JSON documents by URL; anything else is a 404."""
    routes = {url: json_response(document) for url, document in documents.items()}
    return MockTransport(routes=routes, otherwise=HttpResponse(status=404, body=b"{}"))


ISSUER = "https://issuer.example.test"


def fake_issuer(
    jwks: Mapping[str, object], *, issuer: str = ISSUER, jwks_uri: str | None = None
) -> MockTransport:
    uri = jwks_uri or issuer + "/keys"
    return serving(
        {
            ISSUER + "/.well-known/openid-configuration": {"issuer": issuer, "jwks_uri": uri},
            uri: jwks,
        }
    )


def ec_token(key: ec.EllipticCurvePrivateKey, *, alg: str = "ES256", kid: str = "ec-1") -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "s", "aud": "a", "iat": now, "exp": now + 60}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def ec_jwks(key: ec.EllipticCurvePrivateKey, **extra: str) -> dict[str, object]:
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**jwk, "kid": "ec-1", "use": "sig", **extra}]}


def test_discovery_naming_another_issuer_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    http = fake_issuer(ec_jwks(key), issuer="https://attacker.example.test")
    with pytest.raises(IssuerError, match=r"attacker\.example\.test"):
        tokens.verify(ec_token(key), issuer=ISSUER, audience="a", http=http)
    assert not any(url.endswith("/keys") for url in http.urls)  # jwks_uri never fetched


def test_a_plain_http_jwks_uri_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    http = fake_issuer(ec_jwks(key), jwks_uri="http://issuer.example.test/keys")
    with pytest.raises(IssuerError, match="https jwks_uri"):
        tokens.verify(ec_token(key), issuer=ISSUER, audience="a", http=http)


def test_a_plain_http_issuer_is_refused() -> None:
    with pytest.raises(IssuerError):
        tokens.verify("a.b.c", issuer="http://issuer.example.test", audience="a", http=serving({}))


def test_an_unreachable_issuer_is_an_issuer_error() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(IssuerError, match="HTTP 404"):
        tokens.verify(ec_token(key), issuer=ISSUER, audience="a", http=serving({}))


def test_es256_verifies_and_the_curve_must_fit_the_algorithm() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    verified = tokens.verify(
        ec_token(key), issuer=ISSUER, audience="a", http=fake_issuer(ec_jwks(key))
    )
    assert verified.algorithm == "ES256"
    # A P-256 key with an ES384 header: the curve decides, not the token (JWA §3.4).
    p384 = ec.generate_private_key(ec.SECP384R1())
    raw = ec_token(p384, alg="ES384")
    refused(
        lambda: tokens.verify(raw, issuer=ISSUER, audience="a", http=fake_issuer(ec_jwks(key))),
        "algorithm",
        raw=raw,
    )


def test_jwks_keys_keyless_cannot_use_are_skipped() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwks = ec_jwks(key)
    keys = jwks["keys"]
    assert isinstance(keys, list)
    keys += [
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {**keys[0], "kid": "enc", "use": "enc"},
        {**keys[0], "kid": "wrong-alg", "alg": "ES384"},
    ]
    http = fake_issuer(jwks)
    tokens.verify(ec_token(key), issuer=ISSUER, audience="a", http=http)
    for kid in ("hmac", "enc", "wrong-alg"):
        raw = ec_token(key, kid=kid)
        refused(
            lambda: tokens.verify(raw, issuer=ISSUER, audience="a", http=http),  # noqa: B023
            "kid",
            raw=raw,
        )


def test_a_jwks_without_usable_keys_is_an_issuer_error() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    http = fake_issuer({"keys": [{"kty": "oct", "kid": "ec-1", "k": "c2VjcmV0"}]})
    with pytest.raises(IssuerError, match="no usable"):
        tokens.verify(ec_token(key), issuer=ISSUER, audience="a", http=http)


# --- rotation and the cache --------------------------------------------------------------------


def test_rotation_refreshes_on_unknown_kid_at_most_once_per_interval(
    fresh_issuer: LocalIssuer,
) -> None:
    http = RecordingClient(inner=UrllibClient(ca_bundle=fresh_issuer.ca_bundle))
    clock = FakeClock()
    cache = tokens.JwksCache(clock=clock)
    url = fresh_issuer.issuer_url(BITBUCKET_PATH)

    def verify(raw: str) -> tokens.VerifiedClaims:
        return tokens.verify(raw, issuer=url, audience=AUDIENCE, http=http, cache=cache)

    first = fresh_issuer.mint(BITBUCKET_PATH, CLAIMS)
    verify(first)
    assert http.count("/jwks") == 1

    second_kid = fresh_issuer.rotate(BITBUCKET_PATH)
    second = fresh_issuer.mint(BITBUCKET_PATH, CLAIMS)
    clock.now += JWKS_REFRESH_MIN_INTERVAL_SECONDS
    assert verify(second).kid == second_kid  # unknown kid -> one refresh -> verified
    assert http.count("/jwks") == 2
    verify(first)  # the old key stays published while its token is valid
    assert http.count("/jwks") == 2

    fresh_issuer.rotate(BITBUCKET_PATH)
    third = fresh_issuer.mint(BITBUCKET_PATH, CLAIMS)
    refused(lambda: verify(third), "kid", raw=third)  # inside the interval: no refresh
    for n in range(5):  # a flood of unknown kids costs no request either
        forged = fresh_issuer.mint(BITBUCKET_PATH, CLAIMS, headers={"kid": f"flood-{n}"})
        refused(lambda: verify(forged), "kid", raw=forged)  # noqa: B023
    assert http.count("/jwks") == 2
    server_side = [p for p in fresh_issuer.request_log() if p.endswith("/jwks")]
    assert len(server_side) == 2

    clock.now += JWKS_REFRESH_MIN_INTERVAL_SECONDS
    verify(third)
    assert http.count("/jwks") == 3


def test_a_failed_refresh_keeps_the_last_good_key_set(fresh_issuer: LocalIssuer) -> None:
    http = RecordingClient(inner=UrllibClient(ca_bundle=fresh_issuer.ca_bundle))
    clock = FakeClock()
    cache = tokens.JwksCache(clock=clock, ttl=60, min_refresh_interval=10)
    url = fresh_issuer.issuer_url(CIRCLECI_PATH)
    raw = fresh_issuer.mint(CIRCLECI_PATH, CLAIMS)
    tokens.verify(raw, issuer=url, audience=AUDIENCE, http=http, cache=cache)

    http.down = True
    clock.now += 120  # past the TTL: a refresh is attempted, fails, the old set is kept
    tokens.verify(raw, issuer=url, audience=AUDIENCE, http=http, cache=cache)
    attempts = len(http.urls)
    tokens.verify(raw, issuer=url, audience=AUDIENCE, http=http, cache=cache)
    assert len(http.urls) == attempts  # and the failed refresh is not retried at once

    unknown = fresh_issuer.mint(CIRCLECI_PATH, CLAIMS, headers={"kid": "elsewhere"})
    refused(
        lambda: tokens.verify(unknown, issuer=url, audience=AUDIENCE, http=http, cache=cache),
        "kid",
        raw=unknown,
    )


def test_no_key_set_and_no_network_is_an_issuer_error(fresh_issuer: LocalIssuer) -> None:
    http = RecordingClient(inner=UrllibClient(ca_bundle=fresh_issuer.ca_bundle), down=True)
    raw = fresh_issuer.mint(ROOT_PATH, CLAIMS)
    with pytest.raises(IssuerError, match="cannot fetch the discovery document"):
        tokens.verify(raw, issuer=fresh_issuer.issuer_url(ROOT_PATH), audience=AUDIENCE, http=http)


def test_an_issuer_whose_ca_is_not_trusted_is_an_issuer_error(env: Env) -> None:
    raw = env.mint()
    with pytest.raises(IssuerError, match="cannot fetch"):
        env.verify(raw, http=UrllibClient())  # the system store does not know the local CA
