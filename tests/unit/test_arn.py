"""IAM ARNs and account ids: every partition, the parts, the one-line refusals, and one pattern
for the client's check and the local stack's STS rule."""

from __future__ import annotations

import pytest

from keyless import arn
from keyless.aws.provision_state import parse_permissions_boundary
from keyless.aws.sts import ExchangeRequest
from keyless.errors import UsageError
from keyless.local.sts.rules import StsError, parse_request
from keyless.trust.build import account_id

#: The partitions botocore's partitions.json lists (and the IAM ARN reference names the first
#: three of: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html).
PARTITIONS = ("aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f",
              "aws-eusc")  # fmt: skip

MALFORMED_ROLES = (
    "deploy",
    "arn:aws:iam::123:role/x",
    "arn:aws:iam::123456789012:user/x",
    "arn:aws:iam::123456789012:role/",
    "arn:aws:iam::123456789012:role//x",
    "arn:aws:iam::123456789012:role/a b",
    "arn:aws:iam::12345678901٢:role/x",  # a digit of another script
    "arn:aws:iam::123456789012:role/" + "n" * 65,
    "arn:aws-:iam::123456789012:role/x",
    "arn:awscn:iam::123456789012:role/x",
    "arn:AWS:iam::123456789012:role/x",
    "arn:aws:sts::123456789012:role/x",
    "arn:aws:iam:us-east-1:123456789012:role/x",
)


@pytest.mark.parametrize("partition", PARTITIONS)
def test_every_partition_is_accepted_and_parsed(partition: str) -> None:
    role = arn.role(f"arn:{partition}:iam::123456789012:role/ci/deploy/site-Deploy_1")
    assert role is not None
    assert (role.partition, role.account, role.path, role.name) == (
        partition,
        "123456789012",
        "/ci/deploy/",
        "site-Deploy_1",
    )
    policy = arn.policy(f"arn:{partition}:iam::aws:policy/job-function/ViewOnlyAccess")
    assert policy is not None
    assert (policy.partition, policy.account, policy.path, policy.name) == (
        partition,
        "aws",
        "/job-function/",
        "ViewOnlyAccess",
    )
    provider = arn.oidc_provider(
        f"arn:{partition}:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    )
    assert provider is not None
    assert (provider.partition, provider.account, provider.url) == (
        partition,
        "123456789012",
        "token.actions.githubusercontent.com",
    )


def test_a_role_without_a_path_has_the_root_path() -> None:
    role = arn.role("arn:aws:iam::123456789012:role/" + "n" * 64)
    assert role is not None
    assert (role.path, role.name) == ("/", "n" * 64)
    assert arn.role_account(role.arn) == "123456789012"
    assert arn.role_name(role.arn) == "n" * 64
    assert arn.role_partition(role.arn) == "aws"


@pytest.mark.parametrize("bad", MALFORMED_ROLES)
def test_malformed_role_arns_are_refused_in_one_line(bad: str) -> None:
    assert arn.role(bad) is None
    with pytest.raises(UsageError) as caught:
        arn.parse_role_arn(bad, flag="--chain-role-arn")
    assert str(caught.value) == (
        f"--chain-role-arn {bad!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
    )


def test_surrounding_blanks_are_dropped_from_a_role_arn() -> None:
    assert arn.parse_role_arn(" arn:aws:iam::123456789012:role/x\n") == (
        "arn:aws:iam::123456789012:role/x"
    )


@pytest.mark.parametrize("bad", ["1234", "1234567890123", "12345678901a", "١٢٣٤٥٦٧٨٩٠١٢", ""])
def test_malformed_account_ids_are_refused_with_todays_messages(bad: str) -> None:
    assert not arn.is_account_id(bad)
    with pytest.raises(UsageError) as caught:
        arn.parse_account_id(bad)
    assert str(caught.value) == f"--expect-account {bad!r} is not a 12-digit AWS account id"
    with pytest.raises(UsageError) as built:
        account_id(bad)
    assert str(built.value) == f"AWS account ID {bad!r} is not 12 digits"


@pytest.mark.parametrize(
    "bad",
    [
        "ReadOnlyAccess",
        "arn:aws:iam::123:policy/x",
        "arn:aws:iam::123456789012:role/x",
        "arn:aws:iam::123456789012:policy/",
        "arn:aws:iam::123456789012:policy/" + "p" * 129,
        "arn:aws:iam::123456789012:policy/ä",
    ],
)
def test_malformed_policy_arns_are_refused_in_one_line(bad: str) -> None:
    assert arn.policy(bad) is None
    with pytest.raises(UsageError) as boundary:
        parse_permissions_boundary(bad)
    assert str(boundary.value) == f"--permissions-boundary {bad!r} is not a managed policy ARN"
    with pytest.raises(UsageError) as session:
        ExchangeRequest(
            role_arn=arn.RoleArn("arn:aws:iam::123456789012:role/x"),
            session_name="keyless-1",
            session_policy_arns=(bad,),
        )
    assert str(session.value) == (
        f"--session-policy-arn {bad!r} is not a managed policy ARN"
        " (arn:aws:iam::123456789012:policy/NAME)"
    )


def _local_stack_accepts(role_arn: str) -> bool:
    params = {"RoleArn": role_arn, "RoleSessionName": "keyless-1", "WebIdentityToken": "t" * 10}
    try:
        parse_request(params)
    except StsError as exc:
        if exc.message == "Request ARN is invalid":
            return False
        raise
    return True


def _client_accepts(role_arn: str) -> bool:
    try:
        arn.parse_role_arn(role_arn)
    except UsageError:
        return False
    return True


@pytest.mark.parametrize(
    "candidate",
    [
        *(f"arn:{p}:iam::123456789012:role/x" for p in PARTITIONS),
        "arn:aws:iam::123456789012:role/a/b/c",
        # STS's own length rule (at least 20 characters) answers for shorter ones first.
        *(bad for bad in MALFORMED_ROLES if len(bad) >= 20),
    ],
)
def test_the_local_stack_and_the_client_accept_the_same_role_arns(candidate: str) -> None:
    assert _local_stack_accepts(candidate) == _client_accepts(candidate)
