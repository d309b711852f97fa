"""A local stack provisioned like an account a pipeline deploys to: OIDC providers for a
GitHub-shaped and a Bitbucket-shaped issuer, roles pinned to them, and helpers that run the real
keyless and AWS CLI programs in a CI job's environment (HOME and the AWS config in tmp dirs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from keyless.ci.base import RawToken
from keyless.local.stack import LocalStack, RunningStack
from keyless.trust.web_identity import issuer_prefix

BIN = Path(sys.executable).parent
KEYLESS = BIN / "keyless"
AWS = BIN / "aws"
#: Seconds one program may take (a cold AWS CLI start on a busy 2-core machine included).
TIMEOUT_SECONDS = 120

BITBUCKET_PATH = "/2.0/workspaces/keyless-test/pipelines-config/identity/oidc"
UNREGISTERED_PATH = "/unregistered"
WORKSPACE_UUID = "5c0ffee0-0000-4000-8000-000000000001"
BITBUCKET_AUDIENCE = f"ari:cloud:bitbucket::workspace/{WORKSPACE_UUID}"
REPO_UUID = "{7a1e0000-0000-4000-8000-00000000000a}"
PROD_UUID = "{e0000000-0000-4000-8000-0000000000e1}"
STAGING_UUID = "{e0000000-0000-4000-8000-0000000000e2}"
STEP_UUID = "{3f2a9c1d-0000-4000-8000-000000000001}"
#: What `keyless assume` names the session from the Bitbucket variables below.
BITBUCKET_SESSION = "bitbucket-site-42-3f2a9c1d"
GITHUB_AUDIENCE = "sts.amazonaws.com"
GITHUB_MAIN = "repo:acme/site:ref:refs/heads/main"
BUCKET = "site-bucket"


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    stack: RunningStack
    github_issuer: str
    bitbucket_issuer: str
    unregistered_issuer: str
    #: Bitbucket: any step of the repository (and the chain's first hop).
    bb_deploy: str
    #: Bitbucket: only steps deploying to the PROD environment.
    bb_prod: str
    #: GitHub: only the main branch, name-only subject.
    gh_main: str
    #: Reached from bb_deploy with sts:AssumeRole (the second hop).
    chained: str

    def bitbucket_token(
        self,
        *,
        environment: str | None = None,
        audience: str = BITBUCKET_AUDIENCE,
        lifetime: int = 3600,
    ) -> RawToken:
        middle = f"{environment}:" if environment else ""
        claims: dict[str, object] = {
            "sub": f"{REPO_UUID}:{middle}{STEP_UUID}",
            "aud": audience,
            "repositoryUuid": REPO_UUID,
            "workspaceUuid": "{" + WORKSPACE_UUID + "}",
            "stepUuid": STEP_UUID,
            "branchName": "main",
        }
        if environment:
            claims["deploymentEnvironmentUuid"] = environment
        return self.stack.mint(claims, issuer=self.bitbucket_issuer, lifetime=lifetime)

    def github_token(self, *, subject: str = GITHUB_MAIN, issuer: str | None = None) -> RawToken:
        claims = {
            "sub": subject,
            "aud": GITHUB_AUDIENCE,
            "repository": "acme/site",
            "ref": "refs/heads/main",
            "run_id": "9876543210",
            "jti": uuid.uuid4().hex,  # two tokens of one second differ, as GitHub's do
        }
        return self.stack.mint(claims, issuer=issuer or self.github_issuer)

    def job_env(self, home: Path, **variables: str) -> dict[str, str]:
        """A CI job's environment: PATH, a private HOME and AWS config, the stack's endpoint,
        and no credentials of the person running the tests."""
        env = {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(home),
            "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "no-credentials"),
            "AWS_ENDPOINT_URL": self.stack.endpoint_url,
            "AWS_REGION": self.stack.region,
            "AWS_DEFAULT_REGION": self.stack.region,
            # No instance metadata lookups: there is no instance.
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
            "LANG": "C.UTF-8",
        }
        env.update(variables)
        return env

    def bitbucket_env(self, home: Path, token: str | None, **variables: str) -> dict[str, str]:
        env = self.job_env(
            home,
            BITBUCKET_BUILD_NUMBER="42",
            BITBUCKET_REPO_SLUG="site",
            BITBUCKET_REPO_UUID=REPO_UUID,
            BITBUCKET_STEP_UUID=STEP_UUID,
            **variables,
        )
        if token is not None:
            env["BITBUCKET_STEP_OIDC_TOKEN"] = token
        return env

    def admin(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.stack.admin.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.stack.admin.secret_access_key,
        }


def run(
    argv: Sequence[str], env: Mapping[str, str], *, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed programs; secrets travel in env, never argv
        list(argv),
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
        cwd=cwd,
    )


def _trust(provider_arn: str, prefix: str, conditions: dict[str, dict[str, str]]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        operator: {f"{prefix}:{key}": value for key, value in pairs.items()}
                        for operator, pairs in conditions.items()
                    },
                }
            ],
        }
    )


def provision(stack: RunningStack) -> Account:
    github, bitbucket, unregistered = stack.issuers
    gh_provider = stack.register_provider(github, client_ids=[GITHUB_AUDIENCE])
    bb_provider = stack.register_provider(bitbucket, client_ids=[BITBUCKET_AUDIENCE])
    iam = stack.iam()
    bb, gh = issuer_prefix(bitbucket), issuer_prefix(github)

    def role(name: str, trust: str, actions: list[str]) -> str:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        permissions = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
        iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(permissions))
        return arn

    bb_aud = {"StringEquals": {"aud": BITBUCKET_AUDIENCE}}
    bb_deploy = role(
        "bb-deploy",
        _trust(bb_provider, bb, {**bb_aud, "StringLike": {"sub": f"{REPO_UUID}:*"}}),
        ["s3:PutObject", "s3:GetObject", "sts:AssumeRole"],
    )
    bb_prod = role(
        "bb-prod",
        _trust(bb_provider, bb, {**bb_aud, "StringLike": {"sub": f"{REPO_UUID}:{PROD_UUID}:*"}}),
        ["s3:PutObject"],
    )
    gh_main = role(
        "gh-main",
        _trust(gh_provider, gh, {"StringEquals": {"aud": GITHUB_AUDIENCE, "sub": GITHUB_MAIN}}),
        ["s3:GetObject"],
    )
    session_prefix = f"arn:aws:sts::{stack.account_id}:assumed-role/bb-deploy"
    chained_trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    # The session principal too: moto matches the caller's session ARN only.
                    "Principal": {"AWS": [bb_deploy, f"{session_prefix}/{BITBUCKET_SESSION}"]},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    chained = role("chained", chained_trust, ["s3:GetObject"])
    stack.admin_session().client("s3", endpoint_url=stack.endpoint_url).create_bucket(Bucket=BUCKET)
    return Account(
        stack=stack,
        github_issuer=github,
        bitbucket_issuer=bitbucket,
        unregistered_issuer=unregistered,
        bb_deploy=bb_deploy,
        bb_prod=bb_prod,
        gh_main=gh_main,
        chained=chained,
    )


@pytest.fixture(scope="module")
def account() -> Iterator[Account]:
    """One provisioned local stack per test module."""
    with LocalStack(issuer_paths=("/", BITBUCKET_PATH, UNREGISTERED_PATH)) as stack:
        yield provision(stack)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder
