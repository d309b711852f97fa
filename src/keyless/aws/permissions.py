"""What a provisioned role may do: the ``--s3-deploy`` least-privilege preset, or a permission
policy from a file, validated as IAM validates identity policies before anything is written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NewType

from keyless.errors import PolicyError, UsageError
from keyless.limits import (
    IAM_INLINE_POLICY_MAX_CHARS,
)
from keyless.trust.model import Policy, PolicyVersion, loads_policy, parse_policy, to_document

__all__ = [
    "DistributionId",
    "S3DeployPreset",
    "S3Location",
    "check_permission_policy",
    "load_permission_policy",
    "parse_distribution_id",
    "parse_s3_location",
    "policy_size",
    "s3_deploy_policy",
]


DistributionId = NewType("DistributionId", str)

# S3 User Guide, "General purpose bucket naming rules": 3-63 lowercase letters, digits, dots and
# hyphens, beginning and ending with a letter or digit.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_DISTRIBUTION = re.compile(r"[A-Z0-9]{1,32}")
#: Characters that IAM reads as wildcards or policy variables inside an ARN.
_IAM_SPECIAL = re.compile(r"[*?$]")


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Location:
    """``BUCKET[/PREFIX]``; ``prefix`` is empty or ends with ``/``."""

    bucket: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_s3_location(text: str) -> S3Location:
    """``--s3-deploy BUCKET[/PREFIX]`` (an ``s3://`` in front is accepted)."""
    bucket, _, prefix = text.removeprefix("s3://").partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise UsageError(
            f"--s3-deploy: {bucket!r} is not an S3 bucket name",
            remedy="Bucket names are 3-63 lowercase letters, digits, dots and hyphens.",
        )
    prefix = prefix.strip("/")
    if _IAM_SPECIAL.search(prefix):
        raise UsageError(
            f"--s3-deploy: prefix {prefix!r} contains * ? or $, which IAM reads as a wildcard"
            " or a variable; choose a prefix without them"
        )
    if "//" in prefix:
        raise UsageError(f"--s3-deploy: prefix {prefix!r} has an empty path segment")
    return S3Location(bucket=bucket, prefix=f"{prefix}/" if prefix else "")


def parse_distribution_id(text: str) -> DistributionId:
    if not _DISTRIBUTION.fullmatch(text):
        raise UsageError(
            f"--cloudfront-distribution {text!r} is not a distribution id (e.g. E2QWRUHEXAMPLE)"
        )
    return DistributionId(text)


@dataclass(frozen=True, slots=True, kw_only=True)
class S3DeployPreset:
    """``--s3-deploy``: what ``keyless deploy`` needs on one prefix, and nothing more."""

    location: S3Location
    allow_delete: bool = False
    distribution: DistributionId | None = None


def s3_deploy_policy(preset: S3DeployPreset, *, account_id: str, partition: str = "aws") -> Policy:
    """The permission policy of the preset, for the role in ``account_id``."""
    bucket, prefix = preset.location.bucket, preset.location.prefix
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    statements: list[dict[str, Any]] = []
    listing: dict[str, Any] = {
        "Sid": "ListThePrefix",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": bucket_arn,
    }
    if prefix:
        # ListBucket is a bucket-level action: only the s3:prefix condition keeps a listing inside
        # the prefix (S3 User Guide, "Limiting the listing to a prefix", example 2 of bucket
        # policy condition keys). The `*` also matches the prefix itself.
        listing["Condition"] = {"StringLike": {"s3:prefix": f"{prefix}*"}}
    statements.append(listing)
    statements.append(
        {
            "Sid": "WriteUnderThePrefix",
            "Effect": "Allow",
            # GetObject: keyless deploy reads its manifest and copies objects in place to change
            # headers (CopyObject needs read on the source). AbortMultipartUpload: a failed
            # multipart upload is cleaned up instead of leaving billed parts behind. Multipart
            # uploads themselves are s3:PutObject.
            "Action": ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
            "Resource": f"{bucket_arn}/{prefix}*",
        }
    )
    if preset.allow_delete:
        statements.append(
            {
                "Sid": "DeleteUnderThePrefix",
                "Effect": "Allow",
                "Action": "s3:DeleteObject",
                "Resource": f"{bucket_arn}/{prefix}*",
            }
        )
    if preset.distribution is not None:
        statements.append(
            {
                "Sid": "InvalidateTheDistribution",
                "Effect": "Allow",
                "Action": "cloudfront:CreateInvalidation",
                "Resource": (
                    f"arn:{partition}:cloudfront::{account_id}:distribution/{preset.distribution}"
                ),
            }
        )
    return parse_policy({"Version": PolicyVersion.V2012_10_17.value, "Statement": statements})


def policy_size(policy: Policy) -> int:
    """Characters IAM counts against the inline policy quota (whitespace outside strings is not
    counted: the compact JSON form)."""
    return len(json.dumps(to_document(policy), separators=(",", ":"), ensure_ascii=False))


def check_permission_policy(policy: Policy, *, where: str = "permission policy") -> Policy:
    """``policy`` if IAM would accept it as a role's inline (identity-based) policy.

    IAM User Guide, "IAM JSON policy elements": an identity-based policy has no ``Principal``,
    and every statement names the resources it applies to.
    """
    if policy.version is not PolicyVersion.V2012_10_17:
        raise PolicyError(
            f'{where}: Version must be "2012-10-17"'
            " (without it, policy variables are literal text and newer features are refused)"
        )
    if not policy.statements:
        raise PolicyError(f"{where}: no statements; it would allow nothing")
    for statement in policy.statements:
        at = f"{where}: {statement.label}"
        if statement.principal is not None or statement.not_principal is not None:
            raise PolicyError(
                f"{at} has a Principal; a permission policy applies to the role itself",
                remedy="Remove Principal. The trust policy (who may assume) is built by keyless.",
            )
        if statement.resource is None and statement.not_resource is None:
            raise PolicyError(f"{at} has no Resource; name what it applies to")
    size = policy_size(policy)
    if size > IAM_INLINE_POLICY_MAX_CHARS:
        raise PolicyError(
            f"{where} is {size} characters, more than the {IAM_INLINE_POLICY_MAX_CHARS} IAM allows"
            " for a role's inline policies",
            remedy="Split it into a customer managed policy and attach that instead.",
        )
    return policy


def load_permission_policy(path: Path) -> Policy:
    """``--policy FILE``: JSON, IAM policy grammar, and identity-policy rules."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--policy: cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise UsageError(f"--policy: {path} is not UTF-8 text") from None
    try:
        policy = loads_policy(text)
    except PolicyError as exc:
        raise PolicyError(f"--policy {path}: {exc.message}", remedy=exc.remedy) from None
    return check_permission_policy(policy, where=f"--policy {path}")
