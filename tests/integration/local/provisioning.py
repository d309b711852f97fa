"""A served local stack provisioned as `keyless provision` would: an OIDC provider for a CI scope's
local issuer and a deploy role pinned to the scope, with the S3 deploy preset; and the programs
and folders the end-to-end tests run with."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

from keyless.aws.permissions import S3DeployPreset, parse_s3_location, s3_deploy_policy
from keyless.ci.base import CiProvider, Scope
from keyless.local.stack import RunningStack
from keyless.trust.build import AccountId, trust_policy
from keyless.trust.model import to_document

BIN = Path(sys.executable).parent
KEYLESS = BIN / "keyless"
AWS = BIN / "aws"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
BUCKET = "site-bucket"
#: Seconds one program may take (a cold start on a busy 2-core machine included).
TIMEOUT_SECONDS = 120


def provision(
    stack: RunningStack, provider: CiProvider, scope: Scope, *, role: str, prefix: str
) -> str:
    """A role that ``scope``'s jobs may assume, allowed to deploy to ``BUCKET/prefix``; its ARN."""
    assert stack.ci is not None
    issuer = stack.ci.issuer_for(provider, scope)
    spec = dataclasses.replace(scope.trust_spec(), issuer=issuer)
    audiences = [
        value
        for condition in spec.conditions
        if condition.claim == "aud"
        for value in condition.values
    ]
    iam = stack.iam()
    existing = {p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]}
    arn = f"arn:aws:iam::{stack.account_id}:oidc-provider/{issuer.removeprefix('https://')}"
    if arn not in existing:
        stack.register_provider(issuer, client_ids=audiences)
    trust = to_document(trust_policy(spec, account=AccountId(stack.account_id)))
    created = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
    preset = S3DeployPreset(
        location=parse_s3_location(f"{BUCKET}/{prefix}"), allow_delete=False, distribution=None
    )
    permissions = to_document(s3_deploy_policy(preset, account_id=stack.account_id))
    iam.put_role_policy(
        RoleName=role, PolicyName="keyless-permissions", PolicyDocument=json.dumps(permissions)
    )
    return created["Role"]["Arn"]


def create_bucket(stack: RunningStack) -> None:
    s3 = stack.admin_session().client("s3", endpoint_url=stack.endpoint_url)
    s3.create_bucket(Bucket=BUCKET)


def keys(stack: RunningStack, prefix: str) -> list[str]:
    s3 = stack.admin_session().client("s3", endpoint_url=stack.endpoint_url)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
    return sorted(
        item["Key"].removeprefix(f"{prefix}/")
        for item in listed.get("Contents", [])
        if not item["Key"].removeprefix(f"{prefix}/").startswith(".keyless-")
    )


def checkout(tmp_path: Path) -> Path:
    """A copy of examples/bitbucket, as the root of a repository."""
    folder = tmp_path / "site-repo"
    shutil.copytree(EXAMPLES / "bitbucket", folder)
    return folder


def program_env(**extra: str) -> dict[str, str]:
    """The test process' environment (CI and AWS variables already dropped by the conftest), the
    venv's programs (keyless, the AWS CLI) first on PATH."""
    env = {**os.environ, "AWS_PAGER": "", "LANG": "C.UTF-8", **extra}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env
