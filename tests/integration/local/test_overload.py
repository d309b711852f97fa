"""The gateway under more simultaneous clients than it has threads: every client gets an answer,
the exchange's own or AWS's throttling error, and no connection is reset."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest

from keyless.errors import TokenVerificationError
from keyless.limits import GATEWAY_MAX_WORKERS
from keyless.local.moto_server import AdminCredentials
from keyless.local.sts import (
    Identity,
    OidcProvider,
    Role,
    StsGateway,
    TrustAnswer,
    TrustQuestion,
)
from tests.jwt_factory import make_token

pytestmark = pytest.mark.integration

CLIENTS = 200
ACCOUNT = "123456789012"
ISSUER = "https://issuer.overload.invalid"
PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/issuer.overload.invalid"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/ci-deploy"
#: Hang guard for every wait below; the test takes about a second.
GUARD_SECONDS = 60.0


class _Directory:
    def provider(self, arn: str) -> OidcProvider | None:
        if arn != PROVIDER_ARN:
            return None
        return OidcProvider(arn=arn, url=ISSUER, client_ids=("sts.amazonaws.com",))

    def role(self, name: str) -> Role | None:
        return None


@dataclass
class _HeldVerifier:
    """Holds every exchange until released, so that all the gateway's threads are taken."""

    release: threading.Event = field(default_factory=threading.Event)
    held: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, token: str, *, issuer: str, audience: str) -> Identity:
        with self.lock:
            self.held += 1
        self.release.wait(GUARD_SECONDS)
        raise TokenVerificationError("held, then refused", check="signature")


def _never(question: TrustQuestion) -> TrustAnswer:
    raise AssertionError("trust is never reached: verification refuses")


def _exchange(port: int, body: bytes, outcomes: list[str], lock: threading.Lock) -> None:
    head = (
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=GUARD_SECONDS) as sock:
            sock.sendall(head + body)
            answer = b""
            while piece := sock.recv(65_536):
                answer += piece
        if not answer:
            outcome = "closed without an answer"
        else:
            status = answer.split(b" ", 2)[1].decode()
            code = answer.split(b"<Code>", 1)[1].split(b"</Code>", 1)[0].decode()
            outcome = f"{status} {code}"
    except (ConnectionResetError, BrokenPipeError):
        outcome = "reset"
    except OSError as exc:
        outcome = f"error {exc!r}"
    with lock:
        outcomes.append(outcome)


def test_200_simultaneous_clients_get_answers_not_resets() -> None:
    verifier = _HeldVerifier()
    gateway = StsGateway(
        upstream_url="http://127.0.0.1:9",  # never reached: every exchange is refused first
        account_id=ACCOUNT,
        region="us-east-1",
        admin=AdminCredentials(access_key_id="AKIA", secret_access_key="unused"),
        gate_secret="unused",
        verify=verifier,
        evaluate=_never,
        directory=_Directory(),
    )
    token = make_token(issuer=ISSUER)
    body = urlencode(
        {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": ROLE_ARN,
            "RoleSessionName": "overload",
            "WebIdentityToken": token,
        }
    ).encode()
    outcomes: list[str] = []
    lock = threading.Lock()
    throttled = CLIENTS - GATEWAY_MAX_WORKERS
    with gateway:
        port = int(gateway.url.rsplit(":", 1)[1])
        clients = [
            threading.Thread(target=_exchange, args=(port, body, outcomes, lock))
            for _ in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        # Every thread of the gateway holds an exchange; all other clients are told to retry.
        guard = time.monotonic() + GUARD_SECONDS
        while time.monotonic() < guard:
            with lock:
                if len(outcomes) >= throttled:
                    break
            time.sleep(0.01)
        with lock:
            early = Counter(outcomes)
        verifier.release.set()
        for client in clients:
            client.join(GUARD_SECONDS)
    assert early == {"400 Throttling": throttled}, early
    assert verifier.held == GATEWAY_MAX_WORKERS
    assert Counter(outcomes) == {
        "400 Throttling": throttled,
        "400 InvalidIdentityToken": GATEWAY_MAX_WORKERS,
    }
