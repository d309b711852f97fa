"""keyless provision against the local stack: the role it makes is assumable by exactly its
scope, can deploy under its prefix and nowhere else, and a re-run changes nothing."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from keyless.aws.thumbprint import issuer_thumbprint
from keyless.local.moto_server import AdminCredentials
from keyless.local.stack import RunningStack
from tests.integration.provision.conftest import (
    BITBUCKET_AUDIENCE,
    BITBUCKET_SCOPE,
    BUCKET,
    ENV_UUID,
    OTHER_ENV_UUID,
    REPO_UUID,
    SIBLING_UUID,
    STEP_UUID,
    Provisioner,
    as_json,
    braced,
    s3_error,
)

pytestmark = pytest.mark.integration

CREATED = ["CreateOpenIDConnectProvider", "CreateRole", "PutRolePolicy"]


def bitbucket_claims(repository: str = REPO_UUID, environment: str | None = None) -> dict[str, str]:
    middle = f"{braced(environment)}:" if environment else ""
    claims = {
        "sub": f"{braced(repository)}:{middle}{STEP_UUID}",
        "aud": BITBUCKET_AUDIENCE,
        "repositoryUuid": braced(repository),
        "stepUuid": STEP_UUID,
    }
    if environment:
        claims["deploymentEnvironmentUuid"] = braced(environment)
    return claims


def ca_sha1(stack: RunningStack) -> str:
    ca = x509.load_pem_x509_certificate(stack.ca_bundle.read_bytes())
    return hashlib.sha1(ca.public_bytes(serialization.Encoding.DER)).hexdigest()  # noqa: S324


# --- a role per scope, and what its tokens can do -----------------------------------------------


def test_bitbucket_repository_scope(provisioner: Provisioner, stack: RunningStack) -> None:
    issuer = provisioner.issuer("/bb-repo")
    argv = [
        *BITBUCKET_SCOPE,
        "--issuer",
        issuer,
        "--role-name",
        "bb-repo",
        "--s3-deploy",
        f"{BUCKET}/bb-repo",
    ]
    # Any step of the repository may deploy with it: high (docs/lint-severity.md), so refused
    # before anything is written unless --allow-risky says it is meant.
    refused = provisioner.run(argv)
    assert refused.code == 2
    assert "subject-repo-wide" in refused.stderr
    assert "--allow-risky" in refused.stderr
    assert provisioner.writes == []
    result = provisioner.run([*argv, "--allow-risky"])
    assert result.code == 0, result.stderr
    assert stack.admin.secret_access_key not in result.stdout + result.stderr
    role_arn = result.stdout.strip()
    assert role_arn == f"arn:aws:iam::{stack.account_id}:role/bb-repo"
    assert provisioner.writes == CREATED
    provider = stack.iam().get_open_id_connect_provider(
        OpenIDConnectProviderArn=f"arn:aws:iam::{stack.account_id}:oidc-provider/"
        + issuer.removeprefix("https://")
    )
    assert provider["ClientIDList"] == [BITBUCKET_AUDIENCE]
    assert provider["ThumbprintList"] == [ca_sha1(stack)]

    s3 = provisioner.s3(provisioner.assume(role_arn, issuer, bitbucket_claims()))
    s3.put_object(Bucket=BUCKET, Key="bb-repo/index.html", Body=b"<h1>hi</h1>")
    assert s3_error(s3.put_object, Bucket=BUCKET, Key="elsewhere/index.html", Body=b"x") == (
        "AccessDenied"
    )
    assert s3_error(s3.delete_object, Bucket=BUCKET, Key="bb-repo/index.html") == "AccessDenied"
    # Any deployment environment of the repository is in a repository scope.
    provisioner.assume(role_arn, issuer, bitbucket_claims(environment=ENV_UUID))
    # A sibling repository of the same workspace is not.
    sibling = bitbucket_claims(repository=SIBLING_UUID)
    assert provisioner.refused(role_arn, issuer, sibling) == "AccessDenied"


def test_bitbucket_deployment_environment_scope(provisioner: Provisioner) -> None:
    issuer = provisioner.issuer("/bb-env")
    result = provisioner.run(
        [
            *BITBUCKET_SCOPE,
            "--environment-uuid",
            ENV_UUID,
            "--issuer",
            issuer,
            "--role-name",
            "bb-env",
            "--s3-deploy",
            f"{BUCKET}/bb-env",
            "--allow-delete",
        ]
    )
    assert result.code == 0, result.stderr
    role_arn = result.stdout.strip()

    s3 = provisioner.s3(
        provisioner.assume(role_arn, issuer, bitbucket_claims(environment=ENV_UUID))
    )
    s3.put_object(Bucket=BUCKET, Key="bb-env/app.js", Body=b"1")
    s3.delete_object(Bucket=BUCKET, Key="bb-env/app.js")  # --allow-delete
    assert s3_error(s3.put_object, Bucket=BUCKET, Key="bb-repo/app.js", Body=b"x") == (
        "AccessDenied"
    )
    for claims in (
        bitbucket_claims(),  # a step without a deployment environment
        bitbucket_claims(environment=OTHER_ENV_UUID),
        bitbucket_claims(repository=SIBLING_UUID, environment=ENV_UUID),
    ):
        assert provisioner.refused(role_arn, issuer, claims) == "AccessDenied"


def test_github_environment_scope(provisioner: Provisioner) -> None:
    issuer = provisioner.issuer("/gh")
    result = provisioner.run(
        [
            "--ci",
            "github",
            "--repository",
            "acme/site",
            "--environment",
            "prod",
            "--issuer",
            issuer,
            "--role-name",
            "gh-prod",
            "--s3-deploy",
            f"{BUCKET}/gh",
        ]
    )
    assert result.code == 0, result.stderr
    role_arn = result.stdout.strip()
    own = {"sub": "repo:acme/site:environment:prod", "aud": "sts.amazonaws.com"}
    s3 = provisioner.s3(provisioner.assume(role_arn, issuer, own))
    s3.put_object(Bucket=BUCKET, Key="gh/index.html", Body=b"x")
    assert s3_error(s3.put_object, Bucket=BUCKET, Key="index.html", Body=b"x") == "AccessDenied"
    assert s3_error(s3.delete_object, Bucket=BUCKET, Key="gh/index.html") == "AccessDenied"
    for sub in ("repo:acme/other:environment:prod", "repo:acme/site:ref:refs/heads/main"):
        claims = {**own, "sub": sub}
        assert provisioner.refused(role_arn, issuer, claims) == "AccessDenied"


def test_gitlab_branch_scope(provisioner: Provisioner) -> None:
    issuer = provisioner.issuer("/gl")
    result = provisioner.run(
        [
            "--ci",
            "gitlab",
            "--project",
            "acme/site",
            "--ref",
            "main",
            "--gitlab-url",
            issuer,
            "--role-name",
            "gl-main",
            "--s3-deploy",
            f"{BUCKET}/gl",
        ]
    )
    assert result.code == 0, result.stderr
    role_arn = result.stdout.strip()
    # GitLab's audience for AWS is the instance URL, here the local issuer.
    own = {"sub": "project_path:acme/site:ref_type:branch:ref:main", "aud": issuer}
    s3 = provisioner.s3(provisioner.assume(role_arn, issuer, own))
    s3.put_object(Bucket=BUCKET, Key="gl/index.html", Body=b"x")
    assert s3_error(s3.put_object, Bucket=BUCKET, Key="gh/x", Body=b"x") == "AccessDenied"
    for sub in (
        "project_path:acme/site-fork:ref_type:branch:ref:main",
        "project_path:acme/site:ref_type:branch:ref:feature",
        "project_path:acme/site:ref_type:tag:ref:main",
    ):
        assert provisioner.refused(role_arn, issuer, {**own, "sub": sub}) == "AccessDenied"


# --- idempotence, reuse, widening ---------------------------------------------------------------


def test_a_second_run_writes_nothing_and_says_unchanged(provisioner: Provisioner) -> None:
    issuer = provisioner.issuer("/idem")
    # A repository scope on a deploy role is high: --allow-risky (test_bitbucket_repository_scope).
    argv = [*BITBUCKET_SCOPE, "--issuer", issuer, "--role-name", "idem", "--allow-risky"]
    argv += ["--s3-deploy", f"{BUCKET}/idem", "--tag", "team=web", "--max-session-duration", "7200"]

    planned = provisioner.run([*argv, "--dry-run", "--json"])
    assert planned.code == 0, planned.stderr
    assert provisioner.writes == []
    document = as_json(planned)
    assert document["status"] == "planned"
    assert {c["item"]: c["action"] for c in document["plan"]["changes"]}["role"] == "create"

    first = provisioner.run([*argv, "--json"])
    assert first.code == 0, first.stderr
    assert provisioner.writes == CREATED
    assert as_json(first)["status"] == "applied"

    second = provisioner.run([*argv, "--json"])
    assert second.code == 0, second.stderr
    assert provisioner.writes == []
    document = as_json(second)
    assert document["status"] == "unchanged"
    assert document["calls"] == []
    assert {change["action"] for change in document["plan"]["changes"]} == {"unchanged"}

    human = provisioner.run(argv)
    assert human.code == 0
    assert provisioner.writes == []
    assert "Nothing to change" in human.stderr
    assert " create " not in human.stderr
    assert " update " not in human.stderr


def test_an_existing_provider_gets_the_missing_audience(
    provisioner: Provisioner, stack: RunningStack
) -> None:
    issuer = provisioner.issuer("/aud")
    provider_arn = stack.register_provider(issuer, client_ids=("another-audience",))
    argv = ["--ci", "github", "--repository", "acme/site", "--ref", "main", "--issuer", issuer]
    argv += ["--role-name", "gh-main", "--s3-deploy", f"{BUCKET}/aud"]
    result = provisioner.run(argv)
    assert result.code == 0, result.stderr
    assert provisioner.writes == [
        "AddClientIDToOpenIDConnectProvider",
        "CreateRole",
        "PutRolePolicy",
    ]
    assert "also accepts the audiences another-audience" in result.stderr
    clients = stack.iam().get_open_id_connect_provider(OpenIDConnectProviderArn=provider_arn)
    assert clients["ClientIDList"] == ["another-audience", "sts.amazonaws.com"]
    own = {"sub": "repo:acme/site:ref:refs/heads/main", "aud": "sts.amazonaws.com"}
    provisioner.assume(result.stdout.strip(), issuer, own)

    again = provisioner.run(argv)
    assert again.code == 0
    assert provisioner.writes == []


def test_a_narrower_role_is_not_widened_without_force(
    provisioner: Provisioner, stack: RunningStack
) -> None:
    issuer = provisioner.issuer("/narrow")
    common = ["--issuer", issuer, "--role-name", "narrow", "--s3-deploy", f"{BUCKET}/narrow"]
    narrow = provisioner.run([*BITBUCKET_SCOPE, "--environment-uuid", ENV_UUID, *common])
    assert narrow.code == 0, narrow.stderr
    role_arn = narrow.stdout.strip()
    trust_before = stack.iam().get_role(RoleName="narrow")["Role"]["AssumeRolePolicyDocument"]

    # --allow-risky accepts the repository scope's lint grade; the widening still needs --force.
    wider = provisioner.run([*BITBUCKET_SCOPE, *common, "--allow-risky"])
    assert wider.code == 2
    assert provisioner.writes == []
    assert "widens who can assume it" in wider.stderr
    assert "pass --force if that is intended" in wider.stderr
    assert f'-          "{issuer.removeprefix("https://")}:sub"' in wider.stderr  # the diff
    assert wider.stdout == ""
    trust_after = stack.iam().get_role(RoleName="narrow")["Role"]["AssumeRolePolicyDocument"]
    assert trust_after == trust_before
    assert provisioner.refused(role_arn, issuer, bitbucket_claims()) == "AccessDenied"

    forced = provisioner.run([*BITBUCKET_SCOPE, *common, "--allow-risky", "--force"])
    assert forced.code == 0, forced.stderr
    assert provisioner.writes == ["UpdateAssumeRolePolicy"]
    provisioner.assume(role_arn, issuer, bitbucket_claims())


def test_the_local_issuers_thumbprint_is_the_sha1_of_its_ca(stack: RunningStack) -> None:
    for issuer in stack.issuers:
        assert issuer_thumbprint(issuer, ca_bundle=stack.ca_bundle) == ca_sha1(stack)


# --- a denied call part-way --------------------------------------------------------------------

_LIMITED_POLICY = """{
  "Version": "2012-10-17",
  "Statement": [{
    "Effect": "Allow",
    "Action": ["sts:GetCallerIdentity", "iam:Get*", "iam:List*", "iam:CreateOpenIDConnectProvider"],
    "Resource": "*"
  }]
}"""


def limited_user(stack: RunningStack) -> AdminCredentials:
    iam = stack.iam()
    iam.create_user(UserName="provisioner-limited")
    iam.put_user_policy(
        UserName="provisioner-limited", PolicyName="limited", PolicyDocument=_LIMITED_POLICY
    )
    key = iam.create_access_key(UserName="provisioner-limited")["AccessKey"]
    return AdminCredentials(
        access_key_id=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"]
    )


def test_a_denied_call_part_way_reports_what_exists(
    provisioner: Provisioner, stack: RunningStack
) -> None:
    issuer = provisioner.issuer("/denied")
    argv = [*BITBUCKET_SCOPE, "--issuer", issuer, "--role-name", "denied", "--allow-risky"]
    argv += ["--s3-deploy", f"{BUCKET}/denied"]
    limited = limited_user(stack)

    result = provisioner.run([*argv, "--json"], credentials=limited)
    assert result.code == 2
    assert limited.secret_access_key not in result.stdout + result.stderr
    assert provisioner.writes == ["CreateOpenIDConnectProvider", "CreateRole"]
    provider_arn = (
        f"arn:aws:iam::{stack.account_id}:oidc-provider/{issuer.removeprefix('https://')}"
    )
    assert "stopped part-way: iam:CreateRole failed with AccessDenied" in result.stderr
    assert f"done       create the OIDC provider {provider_arn}" in result.stderr
    assert "failed     create the role denied with its trust policy: AccessDenied" in result.stderr
    assert "not done   write the inline policy keyless-permissions of role denied" in result.stderr
    assert "run the same keyless provision command again" in result.stderr
    document = as_json(result)
    assert document["status"] == "incomplete"
    assert [item["call"] for item in document["error"]["done"]] == [
        "iam:CreateOpenIDConnectProvider"
    ]
    assert [item["call"] for item in document["error"]["pending"]] == ["iam:PutRolePolicy"]
    # What the report says exists, exists; what it says did not happen, did not.
    stack.iam().get_open_id_connect_provider(OpenIDConnectProviderArn=provider_arn)
    names = [role["RoleName"] for role in stack.iam().list_roles()["Roles"]]
    assert "denied" not in names

    finished = provisioner.run(argv)
    assert finished.code == 0, finished.stderr
    assert provisioner.writes == ["CreateRole", "PutRolePolicy"]
