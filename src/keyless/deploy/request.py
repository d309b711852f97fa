"""What a deploy is asked (``DeployRequest``), tells as it goes (``Progress``) and returns
(``DeployResult``); ``deploy.apply`` runs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from keyless.deploy.headers import HeaderPolicy
from keyless.deploy.invalidate import invalidation_paths
from keyless.deploy.local_tree import Filters
from keyless.deploy.plan import DEFAULT_PART_SIZE, Plan, normalize_prefix
from keyless.errors import KeylessError, UsageError
from keyless.limits import DEFAULT_CONCURRENCY, DEFAULT_MAX_DELETE_PERCENT, DEPLOY_MAX_CONCURRENCY

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Target:
        """``s3://BUCKET[/PREFIX]``; the prefix always ends in ``/`` (or is empty)."""
        if not url.startswith("s3://"):
            raise UsageError(
                f"destination {url!r} is not an S3 URL", remedy="Use s3://BUCKET[/PREFIX]."
            )
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not _BUCKET.match(bucket):
            raise UsageError(
                f"bucket name {bucket!r} is not valid",
                remedy="S3 bucket names are 3-63 lower-case letters, digits, '.' and '-'.",
            )
        return cls(bucket=bucket, prefix=normalize_prefix(prefix))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Invalidation:
    distribution_id: str
    #: Explicit paths (``--paths``); empty means "the changed keys, collapsed".
    paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployRequest:
    local_dir: Path
    target: Target
    headers: HeaderPolicy = field(default_factory=HeaderPolicy)
    filters: Filters = field(default_factory=Filters)
    delete: bool = False
    max_delete_percent: float = DEFAULT_MAX_DELETE_PERCENT
    force: bool = False
    dry_run: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    part_size: int = DEFAULT_PART_SIZE
    invalidation: Invalidation | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= DEPLOY_MAX_CONCURRENCY:
            raise UsageError(
                f"--concurrency {self.concurrency} is out of range",
                remedy=f"Use 1 to {DEPLOY_MAX_CONCURRENCY}.",
            )
        if not 0 <= self.max_delete_percent <= 100:
            raise UsageError(
                f"--max-delete {self.max_delete_percent:g} is not a percentage",
                remedy="Use 0 to 100.",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployResult:
    plan: Plan
    dry_run: bool
    uploaded: int = 0
    copied: int = 0
    deleted: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    invalidation_id: str | None = None
    invalidated_paths: tuple[str, ...] = ()
    #: The distribution of ``--invalidate`` (in a dry run too, with the paths it would send).
    distribution_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "uploaded": self.uploaded,
            "copied": self.copied,
            "deleted": self.deleted,
            "unchanged": len(self.plan.unchanged),
            "skipped": len(self.plan.skipped),
            "bytes": self.bytes_sent,
            "seconds": round(self.seconds, 3),
            "invalidation": (
                {
                    "distribution": self.distribution_id,
                    "id": self.invalidation_id,
                    "paths": list(self.invalidated_paths),
                }
                if self.distribution_id or self.invalidation_id or self.invalidated_paths
                else None
            ),
            "plan": self.plan.to_json(),
        }


class Progress(Protocol):
    """What a deploy tells its caller as it goes; ``done`` is called from worker threads."""

    def planned(self, plan: Plan) -> None: ...

    def done(self, action: str, key: str, size: int, ok: bool) -> None: ...

    def notice(self, text: str) -> None:
        """One line worth telling that does not stop the deploy."""
        ...


class Silent:
    """The progress of a deploy nobody watches."""

    def planned(self, plan: Plan) -> None:
        pass

    def notice(self, text: str) -> None:
        pass

    def done(self, action: str, key: str, size: int, ok: bool) -> None:
        pass


class InvalidationFailedError(KeylessError):
    """The objects are deployed, the CloudFront invalidation failed; ``result`` is the deploy's."""

    def __init__(self, cause: KeylessError, *, result: DeployResult) -> None:
        super().__init__(
            f"deployed, but not invalidated: {cause.message}",
            remedy=(cause.remedy or "")
            + "\nThe objects are deployed; a run with the right id and --paths "
            + " ".join(result.invalidated_paths[:5])
            + (" ..." if len(result.invalidated_paths) > 5 else "")
            + " invalidates them (nothing is uploaded again).",
        )
        self.kind = cause.kind
        self.result = result


def paths_to_invalidate(request: DeployRequest, plan: Plan) -> tuple[str, ...]:
    """What ``--invalidate`` sends: ``--paths``, else the changed keys, collapsed."""
    if request.invalidation is None:
        return ()
    changed = [u.key for u in plan.uploads] + [d.key for d in plan.deletes]
    return tuple(request.invalidation.paths) or tuple(invalidation_paths(changed))
