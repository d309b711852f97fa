"""The gateway's key-set fetches: bounded on a flood of unknown kids, prompt on a rotation, and
one total deadline against an issuer that answers one byte at a time."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyless.errors import TokenVerificationError
from keyless.limits import GATEWAY_JWKS_REFRESH_MIN_INTERVAL_SECONDS
from keyless.local.issuer import DISCOVERY_SUFFIX, LocalIssuer
from keyless.local.keysets import DeadlineHttpClient, GatewayKeyCache, deadline_fetcher
from keyless.local.pki import LocalPki
from keyless.local.sts import (
    OidcProvider,
    Role,
    StsError,
    TokensVerifier,
    TrustAnswer,
    TrustQuestion,
    WebIdentityExchange,
)
from tests.jwt_factory import make_token

pytestmark = pytest.mark.integration

AUDIENCE = "sts.amazonaws.com"
ACCOUNT = "123456789012"
#: Hang guard of every wait below (the tests take about two seconds in all).
GUARD_SECONDS = 30.0


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer() as running:
        yield running


def _fetches(issuer: LocalIssuer, url: str) -> tuple[int, int]:
    log = issuer.request_log()
    base = url.removeprefix(issuer.base_url)
    discovery = sum(1 for path in log if path == base.rstrip("/") + DISCOVERY_SUFFIX)
    jwks = sum(1 for path in log if path.startswith(base) and path.endswith("jwks"))
    return discovery, jwks


def test_a_flood_of_unknown_kids_costs_one_refetch(issuer: LocalIssuer) -> None:
    url = issuer.issuer_url(issuer.add_issuer("/flood"))
    verifier = TokensVerifier(ca_bundle=issuer.ca_bundle)
    tokens = [
        issuer.mint(url, {"sub": "s", "aud": AUDIENCE}, headers={"kid": f"unknown-{n}"})
        for n in range(50)
    ]
    start = threading.Barrier(len(tokens))
    checks: list[str] = []

    def exchange(token: str) -> None:
        start.wait(GUARD_SECONDS)
        try:
            verifier(token, issuer=url, audience=AUDIENCE)
        except TokenVerificationError as exc:
            checks.append(exc.check)

    threads = [threading.Thread(target=exchange, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD_SECONDS)
    assert checks == ["kid"] * len(tokens)
    discovery, jwks = _fetches(issuer, url)
    # The first fetch, then at most one refetch for the unknown kids.
    assert 1 <= discovery <= 2
    assert 1 <= jwks <= 2
    assert discovery == jwks


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_rotation_verifies_on_the_next_exchange_after_the_interval(issuer: LocalIssuer) -> None:
    url = issuer.issuer_url(issuer.add_issuer("/rotation"))
    clock = _Clock()
    client = DeadlineHttpClient(ca_bundle=issuer.ca_bundle)
    cache = GatewayKeyCache(fetch=deadline_fetcher(client), clock=clock)
    verifier = TokensVerifier(ca_bundle=issuer.ca_bundle, cache=cache)
    claims = {"sub": "s", "aud": AUDIENCE}

    verifier(issuer.mint(url, claims), issuer=url, audience=AUDIENCE)
    assert _fetches(issuer, url) == (1, 1)
    # A rotation right after the first fetch shows on the next exchange.
    issuer.rotate(url)
    clock.now += 0.1
    verifier(issuer.mint(url, claims), issuer=url, audience=AUDIENCE)
    assert _fetches(issuer, url) == (2, 2)
    # Within the interval of that refetch, unknown kids cost nothing more...
    issuer.rotate(url)
    rotated = issuer.mint(url, claims)
    clock.now += 0.1
    with pytest.raises(TokenVerificationError) as refused:
        verifier(rotated, issuer=url, audience=AUDIENCE)
    assert refused.value.check == "kid"
    assert _fetches(issuer, url) == (2, 2)
    # ...and once it has passed, the next exchange finds the new key.
    clock.now += GATEWAY_JWKS_REFRESH_MIN_INTERVAL_SECONDS
    verifier(rotated, issuer=url, audience=AUDIENCE)
    assert _fetches(issuer, url) == (3, 3)


# --- a key set sent one byte at a time ----------------------------------------------------------


class _SlowKeySet:
    """HTTPS on 127.0.0.1: a prompt discovery document whose ``jwks_uri`` answers one byte per
    ``drip`` seconds, for as long as the client listens or until ``stop``."""

    def __init__(self, tls: Path, *, drip: float) -> None:
        files = LocalPki.generate().write(tls)
        self.ca_bundle = files.ca_bundle
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(files.server_chain, files.server_key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.url = f"https://127.0.0.1:{self._listener.getsockname()[1]}"
        self._drip = drip
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept)]
        self._threads[0].start()

    def stop(self) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(GUARD_SECONDS)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(sock,))
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(GUARD_SECONDS)
        try:
            with self._context.wrap_socket(raw, server_side=True) as sock:
                request = b""
                while b"\r\n\r\n" not in request:
                    piece = sock.recv(4096)
                    if not piece:
                        return
                    request += piece
                if request.startswith(b"GET /.well-known/openid-configuration "):
                    body = f'{{"issuer": "{self.url}", "jwks_uri": "{self.url}/jwks"}}'.encode()
                    sock.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                    return
                answer = b'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{"keys": [' + (
                    b" " * 100_000
                )
                for byte in answer:
                    if self._stop.wait(self._drip):
                        return
                    sock.sendall(bytes([byte]))
        except OSError:
            return  # the client gave up: the point of the test


class _Directory:
    def __init__(self, issuer: str) -> None:
        host = issuer.removeprefix("https://")
        self._arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"

    def provider(self, arn: str) -> OidcProvider | None:
        return OidcProvider(arn=arn, url=arn, client_ids=(AUDIENCE,)) if arn == self._arn else None

    def role(self, name: str) -> Role | None:
        return None


def _never(question: TrustQuestion) -> TrustAnswer:
    raise AssertionError("trust is never reached: the keys cannot be had")


def test_a_slow_key_set_is_an_idp_communication_error_by_the_deadline(tmp_path: Path) -> None:
    deadline = 1.0
    slow = _SlowKeySet(tmp_path / "tls", drip=0.2)  # each read succeeds; the whole never ends
    try:
        client = DeadlineHttpClient(ca_bundle=slow.ca_bundle)
        cache = GatewayKeyCache(fetch=deadline_fetcher(client), deadline=deadline)
        exchange = WebIdentityExchange(
            account_id=ACCOUNT,
            directory=_Directory(slow.url),
            verify=TokensVerifier(ca_bundle=slow.ca_bundle, cache=cache),
            evaluate=_never,
        )
        params = {
            "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/ci-deploy",
            "RoleSessionName": "slow",
            "WebIdentityToken": make_token(issuer=slow.url),
        }
        outcome: list[object] = []

        def decide() -> None:
            try:
                exchange.decide(params)
            except StsError as refusal:
                outcome.append(refusal)

        began = time.monotonic()
        runner = threading.Thread(target=decide)
        runner.start()
        runner.join(GUARD_SECONDS)
        elapsed = time.monotonic() - began
        assert not runner.is_alive(), "the exchange did not end by its deadline"
    finally:
        slow.stop()
    (refusal,) = outcome
    assert isinstance(refusal, StsError)
    assert refusal.code == "IDPCommunicationError", refusal.detail
    assert refusal.status == 400
    assert elapsed >= deadline  # it was the deadline that ended it, not an early failure
