"""keyless audit's live source against the local stack (moto behind keyless' gateway) with a few
hundred roles created by the test, through the standard credential chain and AWS_ENDPOINT_URL;
and an Organization's member accounts through moto's Organizations in-process (``mock_aws``),
since the local stack serves one account."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from keyless.audit.live import IAM_READ_CALLS, org_inventory
from keyless.audit.report import build_report
from keyless.cli.seams import Seams
from keyless.local.stack import LocalStack, RunningStack
from tests.cli.helpers import run_cli
from tests.unit.audit.dumps import GH, trust

WIDE = 80
NARROW = 80
GONE = 20
SERVICE = 20


@pytest.fixture(scope="module")
def stack() -> Iterator[RunningStack]:
    with LocalStack() as running:
        iam = running.iam()
        github = iam.create_open_id_connect_provider(
            Url=f"https://{GH}", ClientIDList=["sts.amazonaws.com"], ThumbprintList=["a" * 40]
        )["OpenIDConnectProviderArn"]
        running.register_provider()  # the stack's own issuer: a provider no role trusts
        account = github.split(":")[4]
        policy = iam.create_policy(
            PolicyName="site-deploy",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "s3:PutObject",
                            "Resource": "arn:aws:s3:::site/*",
                        }
                    ],
                }
            ),
        )["Policy"]["Arn"]
        for n in range(WIDE):
            name = f"wide-{n}"
            document = trust(GH, {"StringLike": {f"{GH}:sub": "repo:acme/*"}}, account=account)
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(document))
            iam.put_role_policy(
                RoleName=name,
                PolicyName="admin",
                PolicyDocument=json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                    }
                ),
            )
        for n in range(NARROW):
            name = f"narrow-{n}"
            condition = {
                "StringEquals": {
                    f"{GH}:aud": "sts.amazonaws.com",
                    f"{GH}:sub": "repo:acme/site:environment:production",
                }
            }
            iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(trust(GH, condition, account=account)),
            )
            iam.attach_role_policy(RoleName=name, PolicyArn=policy)
        for n in range(GONE):
            document = trust(
                "oidc.gone.example.com",
                {"StringEquals": {"oidc.gone.example.com:sub": "x"}},
                account=account,
            )
            iam.create_role(RoleName=f"gone-{n}", AssumeRolePolicyDocument=json.dumps(document))
        for n in range(SERVICE):
            service = {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "ec2.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ]
            }
            iam.create_role(RoleName=f"svc-{n}", AssumeRolePolicyDocument=json.dumps(service))
        yield running


def test_live_account_through_the_credential_chain(
    stack: RunningStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in stack.environment(admin=True).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    calls: list[str] = []

    def session(region: str) -> boto3.Session:
        made = boto3.Session(region_name=region)  # the standard chain: the environment here
        made.events.register("before-call.iam", lambda model, **_: calls.append(model.name))
        return made

    seams = Seams(admin_session=session)
    result = run_cli(["audit", "--format", "json", "--fail-on", "high"], seams=seams)
    assert result.code == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["roles_scanned"] == WIDE + NARROW + GONE + SERVICE
    roles = {role["role_name"]: role for role in report["roles"]}
    assert len(roles) == WIDE + NARROW + GONE
    assert roles["wide-0"]["who_can_assume"][0]["words"] == (
        "any workflow run of any repository in org acme"
    )
    assert roles["wide-0"]["blast_radius"]["level"] == "admin-like"
    assert roles["narrow-0"]["blast_radius"]["summary"] == ["writes S3 bucket site"]
    assert roles["narrow-0"]["provider"]["exists"] is True
    assert roles["narrow-0"]["provider"]["client_ids"] == ["sts.amazonaws.com"]
    assert len(report["roles_with_missing_provider"]) == GONE
    assert [p["url"] for p in report["orphan_providers"]] == [
        stack.issuers[0].removeprefix("https://")
    ]
    # Read-only, and exactly the calls the README's policy allows.
    allowed = {call.split(":")[1] for call in IAM_READ_CALLS}
    assert set(calls) <= allowed
    assert calls.count("GetRolePolicy") == WIDE
    assert calls.count("GetPolicyVersion") == 1  # the managed policy is read once


def test_thumbprints_of_a_private_issuer_are_checked_over_tls(
    stack: RunningStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Runs after the test above: it makes the stack's own provider stale and trusted by a role.
    for name, value in stack.environment(admin=True).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    seams = Seams(admin_session=lambda region: boto3.Session(region_name=region))
    issuer = stack.issuers[0].removeprefix("https://")
    argv = ["audit", "--format", "json", "--check-thumbprints", "--ca-bundle", str(stack.ca_bundle)]

    current = run_cli(argv, seams=seams)
    assert current.code == 0, current.stderr
    (own,) = json.loads(current.stdout)["orphan_providers"]
    assert own["url"] == issuer
    assert own["thumbprint_stale"] is False  # registered with the stack CA's thumbprint

    iam = stack.iam()
    arn = next(
        p["Arn"]
        for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
        if p["Arn"].endswith(issuer)
    )
    iam.update_open_id_connect_provider_thumbprint(
        OpenIDConnectProviderArn=arn, ThumbprintList=["0" * 40]
    )
    condition = {"StringEquals": {f"{issuer}:sub": "x", f"{issuer}:aud": "sts.amazonaws.com"}}
    account = arn.split(":")[4]
    iam.create_role(
        RoleName="private-issuer",
        AssumeRolePolicyDocument=json.dumps(trust(issuer, condition, account=account)),
    )
    stale = run_cli(argv, seams=seams)
    assert stale.code == 0, stale.stderr
    role = next(r for r in json.loads(stale.stdout)["roles"] if r["role_name"] == "private-issuer")
    assert role["provider"]["thumbprint_stale"] is True
    finding = next(f for f in role["findings"] if f["rule"] == "thumbprint-stale")
    assert stack.ca_thumbprint in finding["message"]


def test_organization_member_accounts_in_process_moto() -> None:
    from moto import mock_aws

    with mock_aws():
        management = boto3.Session(
            region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        organizations = management.client("organizations")
        organizations.create_organization(FeatureSet="ALL")
        members = []
        for n in range(2):
            created = organizations.create_account(AccountName=f"m{n}", Email=f"m{n}@example.com")
            members.append(created["CreateAccountStatus"]["AccountId"])
        sts = management.client("sts")
        for index, account in enumerate(members):
            keys = sts.assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/audit", RoleSessionName="setup"
            )["Credentials"]
            iam = boto3.Session(
                region_name="us-east-1",
                aws_access_key_id=keys["AccessKeyId"],
                aws_secret_access_key=keys["SecretAccessKey"],
                aws_session_token=keys["SessionToken"],
            ).client("iam")
            iam.create_open_id_connect_provider(
                Url=f"https://{GH}", ClientIDList=["sts.amazonaws.com"], ThumbprintList=["a" * 40]
            )
            for n in range(3 + index):
                document = trust(
                    GH, {"StringLike": {f"{GH}:sub": f"repo:acme/app{n}:*"}}, account=account
                )
                iam.create_role(RoleName=f"ci-{n}", AssumeRolePolicyDocument=json.dumps(document))
        inventory = org_inventory(management, "audit", sleep=lambda _: None)
    report = build_report(inventory)
    by_account: dict[str, int] = {}
    for role in report.roles:
        by_account[role.account_id or ""] = by_account.get(role.account_id or "", 0) + 1
    assert by_account == {members[0]: 3, members[1]: 4}
    assert all(p.exists for role in report.roles for p in role.providers)
    assert report.errors == ()
