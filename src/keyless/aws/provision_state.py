"""What ``keyless provision`` compares: the desired state of an OIDC provider and a role, what
the account has now, and the option values (role name, tags, session duration, boundary) the
desired state is built from, each checked against IAM's rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NewType

from keyless import arn as arns
from keyless.aws.thumbprint import Thumbprint
from keyless.errors import UsageError
from keyless.limits import (
    IAM_MAX_TAGS,
    IAM_OIDC_MAX_CLIENT_IDS,
    IAM_OIDC_MAX_THUMBPRINTS,
    IAM_ROLE_MAX_SESSION_SECONDS,
    IAM_ROLE_MIN_SESSION_SECONDS,
)
from keyless.trust.model import Policy
from keyless.trust.web_identity import provider_arn_for

__all__ = [
    "INLINE_POLICY_NAME",
    "Current",
    "Desired",
    "ProviderState",
    "RoleName",
    "RoleState",
    "parse_max_session_duration",
    "parse_permissions_boundary",
    "parse_role_name",
    "parse_tag",
]

RoleName = NewType("RoleName", str)

#: The role's inline policy that keyless writes and compares; other inline policies are left
#: alone (and named in the plan, since they add permissions keyless did not grant).
INLINE_POLICY_NAME = "keyless-permissions"

_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}")
_TAG_KEY = re.compile(r"[\w.:/=+\-@ ]{1,128}")
_TAG_VALUE = re.compile(r"[\w.:/=+\-@ ]{0,256}")


# --- input values --------------------------------------------------------------------------------


def parse_role_name(text: str) -> RoleName:
    if not _ROLE_NAME.fullmatch(text):
        raise UsageError(
            f"--role-name {text!r} is not an IAM role name (1-64 letters, digits and + = , . @ _ -)"
        )
    return RoleName(text)


def parse_tag(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not _TAG_KEY.fullmatch(key) or not _TAG_VALUE.fullmatch(value):
        raise UsageError(
            f"--tag {text!r} is not KEY=VALUE (key 1-128, value 0-256 characters)",
            remedy="Example: --tag team=web",
        )
    if key.lower().startswith("aws:"):
        raise UsageError(f"--tag {text!r}: keys starting with aws: are reserved for AWS")
    return key, value


def parse_max_session_duration(text: str) -> int:
    try:
        seconds = int(text)
    except ValueError:
        seconds = -1
    if not IAM_ROLE_MIN_SESSION_SECONDS <= seconds <= IAM_ROLE_MAX_SESSION_SECONDS:
        raise UsageError(
            f"--max-session-duration {text!r} is not"
            f" {IAM_ROLE_MIN_SESSION_SECONDS}..{IAM_ROLE_MAX_SESSION_SECONDS}"
            " seconds (1 to 12 hours)"
        )
    return seconds


def parse_permissions_boundary(text: str) -> str:
    if arns.policy(text) is None:
        raise UsageError(
            f"--permissions-boundary {text!r} is not a managed policy ARN",
            remedy="Example: arn:aws:iam::123456789012:policy/ci-boundary",
        )
    return text


# --- desired and current state -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Desired:
    """What the account should have after ``apply``."""

    account_id: str
    partition: str = "aws"
    issuer: str
    #: The CI (``--ci`` name) whose tokens the issuer mints; lint grades the trust by its
    #: subject grammar even when the issuer's URL does not say (``--issuer``).
    ci: str | None = None
    #: The audiences the provider must accept (its client IDs).
    client_ids: tuple[str, ...]
    thumbprints: tuple[Thumbprint, ...] = ()
    role_name: RoleName
    trust: Policy
    permissions: Policy
    policy_name: str = INLINE_POLICY_NAME
    #: ``None``: IAM's default on a new role, left as it is on an existing one.
    max_session_duration: int | None = None
    #: ``None``: no boundary on a new role, an existing one left as it is (removing a boundary
    #: would widen what the role may do, so keyless never does it implicitly).
    permissions_boundary: str | None = None
    #: Tags the role must have; tags it has beyond these are kept.
    tags: tuple[tuple[str, str], ...] = ()
    description: str = "keyless: assumed by CI jobs through OpenID Connect"

    def __post_init__(self) -> None:
        if not self.client_ids:
            # Empty means deny: a provider without client IDs accepts no token at all.
            raise UsageError("no audience (client ID) for the OIDC provider")
        if len(self.client_ids) > IAM_OIDC_MAX_CLIENT_IDS:
            raise UsageError(
                f"{len(self.client_ids)} client IDs; IAM allows {IAM_OIDC_MAX_CLIENT_IDS}"
            )
        if len(self.thumbprints) > IAM_OIDC_MAX_THUMBPRINTS:
            raise UsageError(
                f"{len(self.thumbprints)} thumbprints; IAM allows {IAM_OIDC_MAX_THUMBPRINTS}"
            )
        if len(self.tags) > IAM_MAX_TAGS:
            raise UsageError(f"{len(self.tags)} tags; IAM allows {IAM_MAX_TAGS} per role")

    @property
    def provider_arn(self) -> str:
        return provider_arn_for(self.issuer, self.account_id, partition=self.partition)

    @property
    def role_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:role/{self.role_name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderState:
    arn: str
    client_ids: tuple[str, ...]
    thumbprints: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleState:
    arn: str
    #: The trust policy as IAM returned it (decoded JSON).
    trust: Any
    max_session_duration: int
    permissions_boundary: str | None
    tags: tuple[tuple[str, str], ...]
    #: Names of all inline policies of the role.
    inline_policies: tuple[str, ...]
    #: keyless' own inline policy (decoded JSON), ``None`` when absent.
    permissions: Any
    attached_policies: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Current:
    provider: ProviderState | None = None
    role: RoleState | None = None
