"""moto's S3 on 127.0.0.1 behind a fault proxy with a fresh bucket per test; and one local stack
(short sessions, a role for one GitHub-shaped subject) for the exchange and expiry tests."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto.server import ThreadedMotoServer

from keyless.local.stack import LocalStack, RunningStack
from keyless.trust.web_identity import issuer_prefix
from tests.faultproxy import FaultProxy

#: Sessions the stack issues last this long (its test-only setting; STS's minimum is 900 s).
SESSION_SECONDS = 4.0
BUCKET = "expiring-site"
SUBJECT = "repo:acme/site:ref:refs/heads/main"
AUDIENCE = "sts.amazonaws.com"

_buckets = itertools.count()


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def proxy(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """Every AWS client of the test goes through the proxy to moto, with fixed fake keys."""
    with FaultProxy(moto_url) as running:
        monkeypatch.setenv("AWS_ENDPOINT_URL", running.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAKEYLESSTEST00000")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/keyless-test-config")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/keyless-test-credentials")
        yield running


@pytest.fixture
def bucket(proxy: FaultProxy, moto_url: str) -> str:
    name = f"faults-{next(_buckets)}"
    boto3.client("s3", endpoint_url=moto_url).create_bucket(Bucket=name)
    proxy.clear()
    return name


@dataclass(frozen=True, slots=True, kw_only=True)
class Scene:
    stack: RunningStack
    role_arn: str


@pytest.fixture(scope="package")
def scene() -> Iterator[Scene]:
    with LocalStack(test_only_session_seconds=SESSION_SECONDS) as stack:
        issuer = stack.issuers[0]
        provider = stack.register_provider(issuer)
        prefix = issuer_prefix(issuer)
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {f"{prefix}:aud": AUDIENCE, f"{prefix}:sub": SUBJECT}
                    },
                }
            ],
        }
        permissions = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "s3:*",
                    "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
                }
            ],
        }
        iam = stack.iam()
        role = iam.create_role(RoleName="deploy", AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(
            RoleName="deploy", PolicyName="s3", PolicyDocument=json.dumps(permissions)
        )
        stack.admin_session().client("s3", endpoint_url=stack.endpoint_url).create_bucket(
            Bucket=BUCKET
        )
        yield Scene(stack=stack, role_arn=role["Role"]["Arn"])


def token(scene: Scene, **times: int) -> str:
    """A token the role trusts, valid 10 minutes unless ``times`` (iat, nbf, exp) say otherwise."""
    claims: dict[str, object] = {"sub": SUBJECT, "aud": AUDIENCE, **times}
    return scene.stack.mint(claims, lifetime=600)
