"""IAM ARNs and account ids: one pattern each, parsed into typed values. Pure (no I/O), so the
trust engine, the STS client and the local stack's STS rules all check the same thing.

The format is AWS's: ``arn:PARTITION:iam::ACCOUNT:role/PATH/NAME``
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html). A partition is
``aws``, ``aws-cn``, ``aws-us-gov`` or one of the isolated ones (``aws-iso``, ``aws-iso-b``,
``aws-iso-e``, ``aws-iso-f``, ``aws-eusc`` in botocore's ``partitions.json``); the pattern takes
``aws`` and any hyphenated suffix of letters, so a partition AWS adds later is not refused here
(STS answers for it). Names and path segments are IAM's character set ``[\\w+=,.@-]``, ``\\w``
being ASCII; a role name has at most 64 characters and a managed policy's at most 128 (IAM API
reference, CreateRole and CreatePolicy).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, NewType

from keyless.errors import UsageError

__all__ = [
    "ACCOUNT",
    "OIDC_PROVIDER_ARN",
    "PARTITION",
    "POLICY_ARN",
    "ROLE_ARN",
    "AccountId",
    "ManagedPolicy",
    "OidcProvider",
    "Role",
    "RoleArn",
    "is_account_id",
    "oidc_provider",
    "parse_account_id",
    "parse_role_arn",
    "policy",
    "role",
    "role_account",
    "role_name",
    "role_partition",
]

#: An IAM role ARN, checked by ``parse_role_arn``.
RoleArn = NewType("RoleArn", str)
#: A 12-digit AWS account id.
AccountId = NewType("AccountId", str)

#: ``aws``, ``aws-cn``, ``aws-us-gov``, ``aws-iso-b``, ...
PARTITION: Final = r"aws(?:-[a-z]+)*"
#: Twelve ASCII digits (``\d`` would also take other scripts' digits).
ACCOUNT: Final = re.compile(r"[0-9]{12}")
_SEGMENT = r"[\w+=,.@-]+"
ROLE_ARN: Final = re.compile(
    rf"arn:(?P<partition>{PARTITION}):iam::(?P<account>[0-9]{{12}}):role"
    rf"(?P<path>/(?:{_SEGMENT}/)*)(?P<name>[\w+=,.@-]{{1,64}})",
    re.ASCII,
)
#: A customer managed policy (an account) or an AWS managed one (``aws`` in the account field).
POLICY_ARN: Final = re.compile(
    rf"arn:(?P<partition>{PARTITION}):iam::(?P<account>[0-9]{{12}}|aws):policy"
    rf"(?P<path>/(?:{_SEGMENT}/)*)(?P<name>[\w+=,.@-]{{1,128}})",
    re.ASCII,
)
#: An IAM OIDC identity provider: its ARN ends with the issuer's host and path.
OIDC_PROVIDER_ARN: Final = re.compile(
    rf"arn:(?P<partition>{PARTITION}):iam::(?P<account>[0-9]{{12}}):oidc-provider/(?P<url>.+)",
    re.ASCII,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Role:
    """The parts of an IAM role ARN."""

    arn: RoleArn
    partition: str
    account: AccountId
    #: ``/`` or ``/a/b/``, as IAM writes a path.
    path: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagedPolicy:
    """The parts of a managed policy ARN; ``account`` is ``"aws"`` for an AWS managed policy."""

    arn: str
    partition: str
    account: str
    path: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OidcProvider:
    """The parts of an IAM OIDC provider ARN; ``url`` is the issuer without ``https://``."""

    arn: str
    partition: str
    account: AccountId
    url: str


def role(value: str) -> Role | None:
    """``value`` (exactly) as a role ARN's parts, or None when it is not one."""
    match = ROLE_ARN.fullmatch(value)
    if match is None:
        return None
    return Role(
        arn=RoleArn(value),
        partition=match["partition"],
        account=AccountId(match["account"]),
        path=match["path"],
        name=match["name"],
    )


def policy(value: str) -> ManagedPolicy | None:
    """``value`` (exactly) as a managed policy ARN's parts, or None when it is not one."""
    match = POLICY_ARN.fullmatch(value)
    if match is None:
        return None
    return ManagedPolicy(
        arn=value,
        partition=match["partition"],
        account=match["account"],
        path=match["path"],
        name=match["name"],
    )


def oidc_provider(value: str) -> OidcProvider | None:
    """``value`` (exactly) as an OIDC provider ARN's parts, or None when it is not one."""
    match = OIDC_PROVIDER_ARN.fullmatch(value)
    if match is None:
        return None
    return OidcProvider(
        arn=value,
        partition=match["partition"],
        account=AccountId(match["account"]),
        url=match["url"],
    )


def is_account_id(value: str) -> bool:
    return ACCOUNT.fullmatch(value) is not None


def parse_role_arn(value: str, *, flag: str = "--role-arn") -> RoleArn:
    """``value`` (surrounding blanks dropped) as a ``RoleArn``; ``UsageError`` naming it and
    ``flag`` when it is not an IAM role ARN."""
    parts = role(value.strip())
    if parts is None:
        raise UsageError(
            f"{flag} {value!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"
        )
    return parts.arn


def parse_account_id(value: str, *, flag: str = "--expect-account") -> AccountId:
    """``value`` (surrounding blanks dropped) as an ``AccountId``; ``UsageError`` otherwise."""
    if not is_account_id(value.strip()):
        raise UsageError(f"{flag} {value!r} is not a 12-digit AWS account id")
    return AccountId(value.strip())


def _parts(arn: RoleArn) -> Role:
    parts = role(arn)
    assert parts is not None  # noqa: S101 - RoleArn values come from parse_role_arn
    return parts


def role_account(arn: RoleArn) -> AccountId:
    return _parts(arn).account


def role_name(arn: RoleArn) -> str:
    return _parts(arn).name


def role_partition(arn: RoleArn) -> str:
    return _parts(arn).partition
