"""One local stack per test module, provisioned like a real account: an OIDC provider for the
first issuer, a deploy role trusted by one repository's main branch, and two buckets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from keyless.ci.base import RawToken
from keyless.local.stack import LocalStack, RunningStack
from keyless.trust.web_identity import issuer_prefix

AUDIENCE = "sts.amazonaws.com"
REPOSITORY = "acme/site"
SUBJECT = f"repo:{REPOSITORY}:ref:refs/heads/main"
OTHER_SUBJECT = "repo:acme/other:ref:refs/heads/main"
ROLE_NAME = "ci-deploy"
BUCKET = "site-bucket"
OTHER_BUCKET = "other-bucket"
#: The second issuer is served but never registered with IAM.
UNREGISTERED_PATH = "/unregistered"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    stack: RunningStack
    issuer: str
    unregistered_issuer: str
    provider_arn: str
    role_arn: str

    def token(self, *, subject: str = SUBJECT, **claims: object) -> RawToken:
        """A GitHub-shaped token from the registered issuer."""
        full: dict[str, object] = {
            "sub": subject,
            "aud": AUDIENCE,
            "repository": subject.split(":")[1],
            "ref": "refs/heads/main",
            "jti": "run-1",
        }
        full.update(claims)
        return self.stack.mint(full, issuer=self.issuer)


def provision(stack: RunningStack) -> Scenario:
    issuer, unregistered = stack.issuers
    provider_arn = stack.register_provider(issuer)
    prefix = issuer_prefix(issuer)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
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
                "Action": ["s3:PutObject", "s3:GetObject"],
                "Resource": f"arn:aws:s3:::{BUCKET}/*",
            }
        ],
    }
    iam = stack.iam()
    role_arn = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))[
        "Role"
    ]["Arn"]
    iam.put_role_policy(
        RoleName=ROLE_NAME, PolicyName="deploy", PolicyDocument=json.dumps(permissions)
    )
    s3 = stack.admin_session().client("s3", endpoint_url=stack.endpoint_url)
    for bucket in (BUCKET, OTHER_BUCKET):
        s3.create_bucket(Bucket=bucket)
    return Scenario(
        stack=stack,
        issuer=issuer,
        unregistered_issuer=unregistered,
        provider_arn=provider_arn,
        role_arn=role_arn,
    )


@pytest.fixture(scope="module")
def scenario() -> Iterator[Scenario]:
    with LocalStack(issuer_paths=("/", UNREGISTERED_PATH)) as stack:
        yield provision(stack)
