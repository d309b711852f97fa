"""What ``keyless provision`` asks IAM for: the desired state (OIDC provider, role, trust pinned
to one CI scope, permissions, boundary, tags) from a trust spec and the command's options.

The trust policy names the provider in the account's own partition (aws, aws-cn, aws-us-gov).
Pure apart from reading ``--policy FILE``; planning is ``keyless.aws.provision``, applying
``keyless.aws.provision_apply``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.errors import UsageError
from keyless.trust.build import AccountId, trust_policy
from keyless.trust.model import Policy, parse_policy, to_document
from keyless.trust.web_identity import provider_arn_for

if TYPE_CHECKING:
    from keyless.aws.provision_state import Desired
    from keyless.aws.thumbprint import Thumbprint
    from keyless.ci.base import TrustSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisionOptions:
    """The role's options as given (validated by ``desired_state``)."""

    role_name: str
    s3_deploy: str | None = None
    allow_delete: bool = False
    cloudfront_distribution: str | None = None
    policy: Path | None = None
    tags: tuple[str, ...] = ()
    max_session_duration: str | None = None
    permissions_boundary: str | None = None


def client_ids(spec: TrustSpec) -> tuple[str, ...]:
    """The audiences the trust requires: the provider must accept each as a client ID."""
    found = tuple(
        value
        for condition in spec.conditions
        if condition.claim == "aud" and condition.operator == "StringEquals"
        for value in condition.values
    )
    if not found:
        raise UsageError(f"{spec.provider}: the scope pins no audience; cannot register one")
    return found


def partition_trust(spec: TrustSpec, account: str, partition: str) -> Policy:
    """The trust policy for ``spec`` in ``account``, its principal in ``partition``."""
    policy = trust_policy(spec, account=AccountId(account))
    if partition == "aws":
        return policy
    # trust_policy names the provider in the commercial partition; elsewhere (aws-cn,
    # aws-us-gov) the principal must carry the account's own partition.
    document = to_document(policy)
    plain = provider_arn_for(spec.issuer, account)
    for statement in document["Statement"]:
        if statement.get("Principal", {}).get("Federated") == plain:
            statement["Principal"]["Federated"] = provider_arn_for(
                spec.issuer, account, partition=partition
            )
    return parse_policy(document)


def desired_state(
    options: ProvisionOptions,
    *,
    spec: TrustSpec,
    account: str,
    partition: str,
    prints: tuple[Thumbprint, ...],
) -> Desired:
    from keyless.aws.permissions import (
        S3DeployPreset,
        load_permission_policy,
        parse_distribution_id,
        parse_s3_location,
        s3_deploy_policy,
    )
    from keyless.aws.provision_state import (
        Desired,
        parse_max_session_duration,
        parse_permissions_boundary,
        parse_role_name,
        parse_tag,
    )

    if options.s3_deploy is not None:
        preset = S3DeployPreset(
            location=parse_s3_location(options.s3_deploy),
            allow_delete=options.allow_delete,
            distribution=(
                parse_distribution_id(options.cloudfront_distribution)
                if options.cloudfront_distribution is not None
                else None
            ),
        )
        permissions = s3_deploy_policy(preset, account_id=account, partition=partition)
    elif options.policy is not None:
        permissions = load_permission_policy(options.policy)
    else:
        raise UsageError("no permissions: pass --s3-deploy BUCKET or --policy FILE")
    tags = tuple(parse_tag(text) for text in options.tags)
    if len({key for key, _ in tags}) != len(tags):
        raise UsageError("--tag: the same key is given twice")
    return Desired(
        account_id=account,
        partition=partition,
        issuer=spec.issuer,
        ci=spec.provider,
        client_ids=client_ids(spec),
        thumbprints=prints,
        role_name=parse_role_name(options.role_name),
        trust=partition_trust(spec, account, partition),
        permissions=permissions,
        max_session_duration=(
            parse_max_session_duration(options.max_session_duration)
            if options.max_session_duration is not None
            else None
        ),
        permissions_boundary=(
            parse_permissions_boundary(options.permissions_boundary)
            if options.permissions_boundary is not None
            else None
        ),
        tags=tags,
    )
