"""A bounded load test of the exchange on loopback: every valid exchange succeeds, every invalid
one fails 4xx, nothing fails 5xx, and the stack leaves no thread or process behind."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from keyless.local.moto_server import isolated_session
from keyless.local.stack import LocalStack
from tests.integration.local.conftest import (
    AUDIENCE,
    OTHER_SUBJECT,
    SUBJECT,
    UNREGISTERED_PATH,
    Scenario,
    provision,
)
from tests.jwt_factory import make_token

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient

pytestmark = pytest.mark.integration

VALID_EXCHANGES = 500
INVALID_EXCHANGES = 500
CONCURRENT_CLIENTS = 16


def invalid_tokens(scenario: Scenario) -> Iterator[str]:
    """Each kind of refusal in turn: trust, signature, audience, expiry, issuer, format."""
    now = int(time.time())
    kid = scenario.stack.issuer.active_kid(scenario.issuer)
    kinds: list[Callable[[], str]] = [
        lambda: scenario.token(subject=OTHER_SUBJECT),
        lambda: make_token({"sub": SUBJECT}, issuer=scenario.issuer, subject=SUBJECT, kid=kid),
        lambda: scenario.token(aud="someone-else"),
        lambda: scenario.token(iat=now - 4000, nbf=now - 4000, exp=now - 3700),
        lambda: scenario.stack.mint(
            {"sub": SUBJECT, "aud": AUDIENCE}, issuer=scenario.unregistered_issuer
        ),
        lambda: "garbage",
    ]
    for make in itertools.islice(itertools.cycle(kinds), INVALID_EXCHANGES):
        yield make()


def test_concurrent_exchanges(capsys: pytest.CaptureFixture[str]) -> None:
    threads_before = set(threading.enumerate())
    with LocalStack(issuer_paths=("/", UNREGISTERED_PATH)) as stack:
        scenario = provision(stack)
        valid = [scenario.token(jti=f"run-{n}") for n in range(VALID_EXCHANGES)]
        invalid = list(invalid_tokens(scenario))

        clients: list[STSClient] = []
        lock = threading.Lock()
        local = threading.local()
        # One client per worker, no retries: a 5xx or a dropped connection must show, not heal.
        config = Config(signature_version=UNSIGNED, retries={"max_attempts": 1})

        def status_of(token: str) -> int:
            sts: STSClient | None = getattr(local, "sts", None)
            if sts is None:
                sts = isolated_session(region=stack.region).client(
                    "sts", endpoint_url=stack.endpoint_url, config=config
                )
                local.sts = sts
                with lock:
                    clients.append(sts)
            try:
                sts.assume_role_with_web_identity(
                    RoleArn=scenario.role_arn, RoleSessionName="load", WebIdentityToken=token
                )
            except ClientError as exc:
                return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])
            except BotoCoreError:
                return -1  # no HTTP answer at all
            return 200

        with ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
            began = time.perf_counter()
            valid_statuses = list(pool.map(status_of, valid))
            elapsed = time.perf_counter() - began
            invalid_statuses = list(pool.map(status_of, invalid))
        for client in clients:
            client.close()
        moto_pid = stack.moto_pid

    with capsys.disabled():
        print(
            f"\n[load] {VALID_EXCHANGES} valid exchanges from {CONCURRENT_CLIENTS} concurrent"
            f" clients in {elapsed:.2f} s: {VALID_EXCHANGES / elapsed:.1f} exchanges/s"
            f" (stack started in {stack.started_in:.2f} s)"
        )
    assert valid_statuses == [200] * VALID_EXCHANGES
    assert all(400 <= status < 500 for status in invalid_statuses), sorted(set(invalid_statuses))
    assert {403, 400} <= set(invalid_statuses)
    with pytest.raises(ProcessLookupError):
        os.kill(moto_pid, 0)
    assert set(threading.enumerate()) == threads_before
