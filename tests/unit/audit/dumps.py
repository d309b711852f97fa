"""Generated inputs for the audit tests: a get-account-authorization-details dump with roles of
several CIs, dangerous and safe trusts, roles trusting a provider that does not exist and
providers that no role trusts. Expected facts are returned next to the dump."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"
GH = "token.actions.githubusercontent.com"
GL = "gitlab.com"
BK = "agent.buildkite.com"
#: Registered providers; UNUSED is trusted by no role.
UNUSED = "oidc.unused.example.com"
#: Trusted by some roles, registered nowhere.
MISSING = "oidc.gone.example.com"
SITE_BUCKET = "site-bucket"


def trust(
    issuer: str, condition: dict[str, Any] | None, *, account: str = ACCOUNT
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/{issuer}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
    }
    if condition is not None:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def _sub(issuer: str, operator: str, value: str, aud: str = "sts.amazonaws.com") -> dict[str, Any]:
    return {"StringEquals": {f"{issuer}:aud": aud}, operator: {f"{issuer}:sub": value}}


#: (kind, issuer, condition, expected words, expected worst severity)
KINDS: tuple[tuple[str, str, dict[str, Any] | None, str, str | None], ...] = (
    (
        "gh-env",
        GH,
        _sub(GH, "StringEquals", "repo:acme/site:environment:production"),
        "deployment environment production of acme/site",
        "medium",
    ),
    (
        "gh-branch",
        GH,
        _sub(GH, "StringLike", "repo:acme/site:ref:refs/heads/*"),
        "any branch of acme/site",
        "high",  # anyone who can push a branch, to a role that may write (docs/lint-severity.md)
    ),
    (
        "gh-pr-org",
        GH,
        _sub(GH, "StringLike", "repo:acme/*:pull_request"),
        "pull requests of any repository in org acme",
        "high",
    ),
    ("gh-open", GH, None, "any job anywhere on GitHub Actions", "critical"),
    (
        "gl-group",
        GL,
        _sub(GL, "StringLike", "project_path:acme/*:ref_type:branch:ref:main"),
        "branch main of any project in group acme",
        "high",
    ),
    (
        "bk-pipe",
        BK,
        _sub(
            BK, "StringLike", "organization:acme:pipeline:site:ref:refs/heads/main:commit:*:step:*"
        ),
        "branch main of pipeline acme/site",
        None,
    ),
    (
        "gone",
        MISSING,
        _sub(MISSING, "StringEquals", "deploy"),
        "subject deploy from " + MISSING,
        "medium",
    ),
)


@dataclass
class Dump:
    document: dict[str, Any]
    #: role name -> (kind, words, worst severity)
    expected: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)
    service_roles: int = 0


def authorization_details(per_kind: int = 40, service_roles: int = 60) -> Dump:
    roles = []
    dump = Dump(document={}, service_roles=service_roles)
    admin = f"arn:aws:iam::{ACCOUNT}:policy/Admin"
    for kind, issuer, condition, words, severity in KINDS:
        for n in range(per_kind):
            name = f"{kind}-{n:03d}"
            attached = [{"PolicyName": "Admin", "PolicyArn": admin}] if kind == "gh-open" else []
            roles.append(
                {
                    "RoleName": name,
                    "Arn": f"arn:aws:iam::{ACCOUNT}:role/{name}",
                    "AssumeRolePolicyDocument": trust(issuer, condition),
                    "RolePolicyList": [
                        {
                            "PolicyName": "deploy",
                            "PolicyDocument": {
                                "Version": "2012-10-17",
                                "Statement": [
                                    {
                                        "Effect": "Allow",
                                        "Action": ["s3:PutObject"],
                                        "Resource": f"arn:aws:s3:::{SITE_BUCKET}/*",
                                    }
                                ],
                            },
                        }
                    ],
                    "AttachedManagedPolicies": attached,
                }
            )
            dump.expected[name] = (kind, words, severity)
    for n in range(service_roles):
        roles.append(
            {
                "RoleName": f"svc-{n}",
                "Arn": f"arn:aws:iam::{ACCOUNT}:role/svc-{n}",
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "ec2.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "RolePolicyList": [],
                "AttachedManagedPolicies": [],
            }
        )
    dump.document = {
        "RoleDetailList": roles,
        "Policies": [
            {
                "PolicyName": "Admin",
                "Arn": admin,
                "DefaultVersionId": "v1",
                "PolicyVersionList": [
                    {
                        "VersionId": "v1",
                        "IsDefaultVersion": True,
                        "Document": {
                            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
                        },
                    }
                ],
            }
        ],
        "OpenIDConnectProviderList": [
            {"Arn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"} for host in (GH, GL, BK, UNUSED)
        ],
    }
    return dump
