"""``keyless doctor --policy FILE`` reads what ``trust lint`` and ``trust check`` read: a policy
document or ``aws iam get-role`` output."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import run_cli

#: ``aws iam get-role --role-name deploy`` as the AWS CLI prints it (every field IAM returns).
GET_ROLE = {
    "Role": {
        "Path": "/",
        "RoleName": "deploy",
        "RoleId": "AROAEXAMPLEID0000001",
        "Arn": "arn:aws:iam::123456789012:role/deploy",
        "CreateDate": "2026-01-02T03:04:05+00:00",
        "AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {
                        "Federated": "arn:aws:iam::123456789012:oidc-provider/"
                        "token.actions.githubusercontent.com"
                    },
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                            "token.actions.githubusercontent.com:sub": (
                                "repo:acme/site:ref:refs/heads/main"
                            ),
                        }
                    },
                }
            ],
        },
        "MaxSessionDuration": 3600,
        "RoleLastUsed": {},
    }
}


def test_doctor_reads_get_role_output(tmp_path: Path) -> None:
    policy = tmp_path / "role.json"
    policy.write_text(json.dumps(GET_ROLE, indent=4))
    result = run_cli(["doctor", "--json", "--policy", str(policy)])
    assert "unknown element" not in result.stderr
    assert result.code == 1  # no CI here: the policy was read, the chain stops at `ci`
    assert json.loads(result.stdout)["cause"] == "no-ci"


def test_doctor_names_the_roles_of_a_list_without_role_arn(tmp_path: Path) -> None:
    role = GET_ROLE["Role"]
    policy = tmp_path / "roles.json"
    policy.write_text(json.dumps({"Roles": [role, {**role, "RoleName": "other"}]}))
    result = run_cli(["doctor", "--policy", str(policy)])
    assert result.code == 2
    assert "2 roles (deploy, other)" in result.stderr
