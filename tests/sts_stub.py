"""An STS client on botocore's Stubber, and keyless' ``Sts`` around it with a fake clock."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.stub import Stubber

from keyless.aws.sts import RetryPolicy, SigningKeys, Sts
from keyless.cli.seams import Seams
from keyless.testing import FakeClock

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient

ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/deploy"
OTHER_ROLE_ARN = "arn:aws:iam::210987654321:role/prod-deploy"
EXPIRATION = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
ACCESS_KEY_ID = "ASIAKEYLESSTEST00001"
SECRET_ACCESS_KEY = "sEcReT/KeY+ThatMustNeverBePrinted0000000"
SESSION_TOKEN = "SeSsIoNtOkEn//ThatMustNeverBePrinted+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="


def credentials(
    *, key: str = ACCESS_KEY_ID, secret: str = SECRET_ACCESS_KEY, token: str = SESSION_TOKEN
) -> dict[str, Any]:
    return {
        "AccessKeyId": key,
        "SecretAccessKey": secret,
        "SessionToken": token,
        "Expiration": EXPIRATION,
    }


def web_identity_response(
    role_arn: str = ROLE_ARN,
    session: str = "s",
    subject: str = "repo:acme/site:ref:refs/heads/main",
) -> dict[str, Any]:
    account, name = role_arn.split(":")[4], role_arn.rsplit("/", 1)[1]
    return {
        "Credentials": credentials(),
        "AssumedRoleUser": {
            "AssumedRoleId": f"AROAEXAMPLE:{session}",
            "Arn": f"arn:aws:sts::{account}:assumed-role/{name}/{session}",
        },
        "SubjectFromWebIdentityToken": subject,
        "Provider": "token.actions.githubusercontent.com",
        "Audience": "sts.amazonaws.com",
    }


def assume_role_response(role_arn: str, session: str = "s") -> dict[str, Any]:
    account, name = role_arn.split(":")[4], role_arn.rsplit("/", 1)[1]
    return {
        "Credentials": credentials(key="ASIASECONDHOP0000001"),
        "AssumedRoleUser": {
            "AssumedRoleId": f"AROASECOND:{session}",
            "Arn": f"arn:aws:sts::{account}:assumed-role/{name}/{session}",
        },
    }


def identity_response(role_arn: str = ROLE_ARN, session: str = "s") -> dict[str, Any]:
    account, name = role_arn.split(":")[4], role_arn.rsplit("/", 1)[1]
    return {
        "Account": account,
        "Arn": f"arn:aws:sts::{account}:assumed-role/{name}/{session}",
        "UserId": f"AROAEXAMPLE:{session}",
    }


@functools.cache
def stub_client() -> STSClient:
    """One client for the session (making one costs ~0.5 s); each test stubs it afresh."""
    client: STSClient = boto3.Session(
        region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y"
    ).client("sts", config=Config(signature_version=UNSIGNED))
    return client


@dataclass
class StubbedSts:
    sts: Sts
    stubber: Stubber
    time: FakeClock
    keys_used: list[SigningKeys | None]
    notices: list[str]

    @property
    def seams(self) -> Seams:
        """The CLI's seams with this STS for every exchange and ``whoami``."""
        return Seams(sts=lambda env, region, notify: self.sts)


@contextmanager
def stubbed_sts(*, retry: RetryPolicy | None = None, random: float = 0.5) -> Iterator[StubbedSts]:
    """An ``Sts`` whose every client is one stubbed client; fails if a queued answer is unused."""
    client = stub_client()
    time = FakeClock()
    keys_used: list[SigningKeys | None] = []
    notices: list[str] = []

    def factory(keys: SigningKeys | None) -> STSClient:
        keys_used.append(keys)
        return client

    sts = Sts(
        client_factory=factory,
        retry=retry,
        sleep=time.sleep,
        clock=time.monotonic,
        random=lambda: random,
        notify=notices.append,
    )
    with Stubber(client) as stubber:
        yield StubbedSts(sts=sts, stubber=stubber, time=time, keys_used=keys_used, notices=notices)
        stubber.assert_no_pending_responses()
