"""One local stack for the provisioning tests: an issuer per scenario (so each test starts from an
account without its provider), a bucket to deploy to, and a way to run ``keyless provision`` with
given credentials while counting its IAM write calls."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from keyless.cli.seams import Seams
from keyless.local.moto_server import AdminCredentials
from keyless.local.stack import LocalStack, RunningStack
from tests.cli.helpers import Result, run_cli

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sts.type_defs import CredentialsTypeDef

BUCKET = "site-bucket"
#: One issuer path per scenario.
PATHS = ("/bb-repo", "/bb-env", "/gh", "/gl", "/idem", "/aud", "/narrow", "/denied")

WORKSPACE_UUID = "0d9b4a1e-7f3c-4c2a-9b1e-5a6f7c8d9e01"
REPO_UUID = "6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
SIBLING_UUID = "7b2a1d3f-4c5e-4f60-9b0a-1d2e3f4a5b6c"
ENV_UUID = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
OTHER_ENV_UUID = "1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b"
STEP_UUID = "{c0ffee00-1111-4222-8333-444455556666}"
BITBUCKET_AUDIENCE = f"ari:cloud:bitbucket::workspace/{WORKSPACE_UUID}"

BITBUCKET_SCOPE = ["--ci", "bitbucket", "--workspace", "acme"]
BITBUCKET_SCOPE += ["--workspace-uuid", WORKSPACE_UUID, "--repository-uuid", REPO_UUID]


def braced(uuid: str) -> str:
    return "{" + uuid + "}"


@dataclass(kw_only=True)
class Provisioner:
    """Runs ``keyless provision`` against the stack and records the IAM calls it makes."""

    stack: RunningStack
    monkeypatch: pytest.MonkeyPatch
    #: IAM write calls (anything but Get*/List*) of the last run, in order.
    writes: list[str] = field(default_factory=list)

    def issuer(self, path: str) -> str:
        return self.stack.issuer.issuer_url(path)

    def run(self, argv: list[str], *, credentials: AdminCredentials | None = None) -> Result:
        self.writes.clear()
        creds = credentials or self.stack.admin
        for name, value in self.stack.environment().items():
            self.monkeypatch.setenv(name, value)

        def session(region: str) -> boto3.Session:
            made = self.stack.session(
                access_key_id=creds.access_key_id, secret_access_key=creds.secret_access_key
            )
            made.events.register("before-call.iam", self._before_call)
            return made

        argv = ["provision", *argv, "--ca-bundle", str(self.stack.ca_bundle)]
        return run_cli(argv, seams=Seams(admin_session=session))

    def _before_call(self, model: Any, params: Mapping[str, Any], **_: Any) -> Any:
        # A response returned here is used instead of sending the request (botocore before-call).
        if not model.name.startswith(("Get", "List")):
            self.writes.append(model.name)
        return None

    def assume(
        self, role_arn: str, issuer: str, claims: Mapping[str, object]
    ) -> CredentialsTypeDef:
        token = self.stack.mint(claims, issuer=issuer)
        return self.stack.sts().assume_role_with_web_identity(
            RoleArn=role_arn, RoleSessionName="provision-test", WebIdentityToken=token
        )["Credentials"]

    def refused(self, role_arn: str, issuer: str, claims: Mapping[str, object]) -> str:
        """The error code of an exchange that must fail."""
        with pytest.raises(ClientError) as caught:
            self.assume(role_arn, issuer, claims)
        return str(caught.value.response["Error"]["Code"])

    def s3(self, credentials: CredentialsTypeDef) -> S3Client:
        client: S3Client = self.stack.session(
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials["SessionToken"],
        ).client("s3", endpoint_url=self.stack.endpoint_url)
        return client


def s3_error(call: Any, **params: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(**params)
    return str(caught.value.response["Error"]["Code"])


def as_json(result: Result) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(result.stdout)
    return document


@pytest.fixture(scope="module")
def stack() -> Iterator[RunningStack]:
    with LocalStack(issuer_paths=PATHS) as running:
        admin_s3 = running.admin_session().client("s3", endpoint_url=running.endpoint_url)
        admin_s3.create_bucket(Bucket=BUCKET)
        yield running


@pytest.fixture
def provisioner(stack: RunningStack, monkeypatch: pytest.MonkeyPatch) -> Provisioner:
    return Provisioner(stack=stack, monkeypatch=monkeypatch)
