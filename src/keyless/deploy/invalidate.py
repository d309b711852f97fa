"""CloudFront invalidation paths for a deploy: the changed keys, collapsed into wildcards when
they are many, within CloudFront's limits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote

from keyless.aws.errors import error_code, http_status
from keyless.errors import AccessDeniedError, AwsError, KeylessError
from keyless.limits import (
    CLOUDFRONT_MAX_EXPLICIT_PATHS,
    CLOUDFRONT_MAX_WILDCARD_PATHS,
)

if TYPE_CHECKING:
    import botocore.exceptions
    from mypy_boto3_cloudfront import CloudFrontClient

#: And at most 3,000 file paths in progress per distribution (same quotas page).
MAX_FILE_PATHS = 3000


def invalidation_paths(keys: Iterable[str]) -> list[str]:
    """URL paths to invalidate for the changed ``keys`` (S3 keys, no leading ``/``).

    ``dir/index.html`` also invalidates ``dir/`` (the URL people use). Many paths are collapsed
    into ``/dir/*`` at the deepest level that fits the limits, and ``/*`` at worst.
    """
    paths: set[str] = set()
    for key in keys:
        paths.add("/" + key)
        if key == "index.html" or key.endswith("/index.html"):
            paths.add("/" + key.removesuffix("index.html"))
    if not paths:
        return []
    if len(paths) <= CLOUDFRONT_MAX_EXPLICIT_PATHS:
        return sorted(_encode(p) for p in paths)
    depth = max(p.count("/") for p in paths)
    for level in range(depth - 1, 0, -1):
        collapsed = {_collapse(p, level) for p in paths}
        wildcards = sum(1 for p in collapsed if p.endswith("*"))
        if (
            wildcards <= CLOUDFRONT_MAX_WILDCARD_PATHS
            and len(collapsed) <= CLOUDFRONT_MAX_EXPLICIT_PATHS
        ):
            return sorted(_encode(p) for p in collapsed)
    return ["/*"]


def _collapse(path: str, level: int) -> str:
    """``/a/b/c.js`` at level 1 is ``/a/*``; paths at or above the level stay as they are."""
    parts = path.split("/")
    if len(parts) - 1 <= level:
        return path
    return "/".join(parts[: level + 1]) + "/*"


def _encode(path: str) -> str:
    # CloudFront wants URL-encoded paths (RFC 1738 unsafe and non-ASCII characters); '*' stays.
    return quote(path, safe="/*~-_.")


def create_invalidation(
    cloudfront: CloudFrontClient, distribution_id: str, paths: Sequence[str]
) -> str:
    """Create one CloudFront invalidation of ``paths``; returns its id. A refusal names the
    distribution: the objects are already deployed when this runs."""
    import botocore.exceptions

    try:
        response = cloudfront.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={
                "Paths": {"Quantity": len(paths), "Items": list(paths)},
                "CallerReference": f"keyless-{uuid.uuid4()}",
            },
        )
    except botocore.exceptions.ClientError as exc:
        raise _invalidation_error(exc, distribution_id) from exc
    return str(response["Invalidation"]["Id"])


def _invalidation_error(exc: botocore.exceptions.ClientError, distribution_id: str) -> KeylessError:
    # CreateInvalidation's errors (CloudFront API reference): NoSuchDistribution is a 404,
    # AccessDenied a 403 (a role may invalidate only the distribution it was provisioned for).
    code = error_code(exc) or "Unknown"
    status = http_status(exc)
    if code == "NoSuchDistribution" or status == 404:
        return AwsError(
            f"CloudFront distribution {distribution_id!r} does not exist in this account",
            remedy="Check the id (aws cloudfront list-distributions --query"
            " 'DistributionList.Items[].[Id,DomainName]'), then pass the right --invalidate ID.",
        )
    if code in ("AccessDenied", "AccessDeniedException") or status == 403:
        return AccessDeniedError(
            f"not allowed to invalidate CloudFront distribution {distribution_id!r}",
            remedy="The role needs cloudfront:CreateInvalidation on it: keyless provision ..."
            f" --s3-deploy BUCKET/PREFIX --cloudfront-distribution {distribution_id}.",
        )
    return AwsError(f"invalidation of CloudFront distribution {distribution_id!r} failed: {code}")
