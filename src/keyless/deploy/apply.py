"""Run a deploy: list the bucket, plan, upload, then delete, then remember, then invalidate.

boto3 is the control plane (endpoint, copies in place, deletes, CloudFront); ``transfer`` is the
data plane (listing, the manifest, uploads). Deletes start only after every upload succeeded, so a
deploy killed part-way leaves the old objects in place and converges when run again; the manifest
is kept current as the deploy goes (``deploy.journal``), so that run repeats no upload or copy.

Every S3 call stays inside what ``keyless provision --s3-deploy BUCKET/PREFIX`` grants: listings
carry ``prefix=PREFIX/`` (its ``s3:ListBucket`` has an ``s3:prefix`` condition), the manifest lives
under the prefix, and the bucket's region comes from S3's answers, never from HeadBucket.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from keyless.deploy import manifest
from keyless.deploy.control import Control, copy_in_place, delete_objects
from keyless.deploy.environment import EnvironmentSession, environment_session
from keyless.deploy.hash_ahead import HashAhead
from keyless.deploy.invalidate import create_invalidation
from keyless.deploy.journal import Journal
from keyless.deploy.local_tree import FileDigests, LocalFile, walk
from keyless.deploy.plan import Plan, PlanOptions, Reason, RemoteObject, build_plan, refuse_empty
from keyless.deploy.remote import list_remote, read_manifest, write_manifest
from keyless.deploy.request import (
    DeployRequest,
    DeployResult,
    Invalidation,
    InvalidationFailedError,
    Progress,
    Silent,
    Target,
    paths_to_invalidate,
)
from keyless.deploy.session import (
    ca_bundle,
    refreshable,
    signing,
    standard_session,
    stop_if_ended,
)
from keyless.deploy.transfer import CrtS3, DataPlane, Endpoint, FrozenCredentials, WrongRegionError
from keyless.deploy.uploads import send
from keyless.errors import AwsError, KeylessError
from keyless.limits import S3_COPY_MAX_BYTES

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_cloudfront import CloudFrontClient

__all__ = [
    "DataPlaneConfig",
    "DeployRequest",
    "DeployResult",
    "Invalidation",
    "InvalidationFailedError",
    "Progress",
    "Target",
    "crt_data_plane",
    "deploy",
    "invalidate",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class DataPlaneConfig:
    endpoint: Endpoint
    bucket: str
    credentials: Callable[[], FrozenCredentials]
    #: False for fixed keys: read once instead of at every signature.
    refreshable: bool = True
    concurrency: int
    part_size: int
    ca_bundle: str | None = None


def crt_data_plane(config: DataPlaneConfig) -> DataPlane:
    return CrtS3(
        endpoint=config.endpoint,
        bucket=config.bucket,
        credentials=config.credentials,
        refreshable=config.refreshable,
        concurrency=config.concurrency,
        part_size=config.part_size,
        ca_bundle=config.ca_bundle,
    )


def deploy(
    request: DeployRequest,
    *,
    session: boto3.Session | EnvironmentSession | None = None,
    progress: Progress | None = None,
    data_plane: Callable[[DataPlaneConfig], DataPlane] = crt_data_plane,
    clock: Callable[[], float] = time.monotonic,
    planner: Callable[..., Plan] = build_plan,
    inflater: Callable[[], manifest.Inflater] = manifest.gzip_inflater,
) -> DeployResult:
    """Plan and (unless ``dry_run``) apply one deploy; raises ``KeylessError`` on failure.
    ``planner`` and ``inflater`` (the manifest's decompressor) are seams for tests."""
    started = clock()
    # The local side first: a missing or empty LOCAL_DIR is refused before any AWS call.
    local = list(walk(request.local_dir, request.filters))
    if all(f.excluded for f in local):
        refuse_empty(has_excluded=bool(local))
    # boto3 only when the environment does not decide everything (``deploy.environment``).
    session = session or environment_session() or standard_session()
    progress = progress or Silent()
    target = request.target
    credentials = session.get_credentials()
    if credentials is None:
        raise AwsError(
            "no AWS credentials found",
            remedy="Run inside 'keyless exec', or set AWS_PROFILE or the AWS_* variables.",
        )
    control = Control(session, target.bucket, request.concurrency)
    config = DataPlaneConfig(
        endpoint=control.endpoint(),
        bucket=target.bucket,
        credentials=signing(credentials),
        refreshable=refreshable(credentials),
        concurrency=request.concurrency,
        part_size=request.part_size,
        ca_bundle=ca_bundle(session),
    )
    plane = data_plane(config)
    try:
        # The first request tells the bucket's region if it is not the configured one.
        old, unreadable = read_manifest(plane, target, inflater=inflater)
    except WrongRegionError as moved:
        plane = data_plane(replace(config, endpoint=control.endpoint(moved.region)))
        old, unreadable = read_manifest(plane, target, inflater=inflater)
    if unreadable:
        progress.notice(
            f"notice: ignoring the manifest s3://{target.bucket}/{target.prefix}"
            f"{manifest.MANIFEST_NAME} ({unreadable}): every object is compared by content,"
            " and the manifest is written anew"
        )
    listed: dict[str, str] = {}
    plan = _plan(request, local, list_remote(plane, target, old, listed), old, planner)
    progress.planned(plan)
    if request.dry_run:
        return DeployResult(
            plan=plan,
            dry_run=True,
            seconds=clock() - started,
            distribution_id=request.invalidation.distribution_id if request.invalidation else None,
            invalidated_paths=paths_to_invalidate(request, plan),
        )
    journal = Journal(
        _known_entries(old, listed, plan, target.prefix),
        stored=None if unreadable else old,
        write=lambda known: write_manifest(plane, target, known),
        clock=clock,
    )
    result = _apply(request, plan, plane, control, journal, credentials, progress)
    if request.invalidation:
        distribution = request.invalidation.distribution_id
        paths = paths_to_invalidate(request, plan)
        result = _invalidate(distribution, paths, result, session, lambda: clock() - started)
    return replace(result, seconds=clock() - started)


def _plan(
    request: DeployRequest,
    local: list[LocalFile],
    remote: Iterable[RemoteObject],
    known: Mapping[str, manifest.Entry],
    planner: Callable[..., Plan],
) -> Plan:
    """The plan, with the MD5s it asks for hashed ahead while the listing comes in."""
    target = request.target
    digests = HashAhead(FileDigests(), workers=os.cpu_count() or 1)
    try:
        digests.known(local, known)
        return planner(
            local,
            digests.ahead(remote, local, target.prefix),
            options=PlanOptions(
                prefix=target.prefix,
                delete=request.delete,
                max_delete_percent=request.max_delete_percent,
                force=request.force,
                filters=request.filters,
                part_size=request.part_size,
            ),
            headers=request.headers,
            digests=digests,
        )
    finally:
        digests.close()


def _known_entries(
    old: Mapping[str, manifest.Entry], listed: Mapping[str, str], plan: Plan, prefix: str
) -> dict[str, manifest.Entry]:
    """What the manifest keeps before any upload: the old entries of objects still there with the
    same ETag (stale ones are dropped), and the unchanged objects as the plan saw them."""
    entries = {k: e for k, e in old.items() if listed.get(prefix + k) == e.etag}
    for u in plan.unchanged:
        entries[u.key.removeprefix(prefix)] = manifest.Entry(
            etag=u.etag, md5=u.md5, headers=u.headers, crc64nvme=u.crc64nvme
        )
    return entries


def _apply(
    request: DeployRequest,
    plan: Plan,
    plane: DataPlane,
    control: Control,
    journal: Journal,
    credentials: object,
    progress: Progress,
) -> DeployResult:
    """Uploads, then copies in place, then deletes; ``journal`` remembers what succeeded."""
    target = request.target
    data = [
        u for u in plan.uploads if u.reason is not Reason.HEADERS or u.file.size > S3_COPY_MAX_BYTES
    ]
    copies = [
        u for u in plan.uploads if u.reason is Reason.HEADERS and u.file.size <= S3_COPY_MAX_BYTES
    ]
    sent = deleted = 0
    try:
        if data:
            sent = send(
                plane,
                data,
                target=target,
                journal=journal,
                entries=journal.entries,
                credentials=credentials,
                part_size=request.part_size,
                progress=progress,
            )
        if copies:
            stop_if_ended(credentials)
            copy_in_place(control.client(), target, copies, journal, request.concurrency, progress)
        # Deletes only now, after every upload and copy succeeded, and with the manifest stored:
        # a deploy killed from here on repeats no upload.
        journal.flush()
        if plan.deletes:
            stop_if_ended(credentials)
            deleted = delete_objects(
                control.client(), target, [d.key for d in plan.deletes], progress
            )
            for d in plan.deletes:
                journal.entries.pop(d.key.removeprefix(target.prefix), None)
    finally:
        # Even after a failure: what did succeed is remembered, so the next run redoes less.
        journal.flush()
    return DeployResult(
        plan=plan,
        dry_run=False,
        uploaded=len(data),
        copied=len(copies),
        deleted=deleted,
        bytes_sent=sent,
    )


def _invalidate(
    distribution: str,
    paths: tuple[str, ...],
    result: DeployResult,
    session: boto3.Session | EnvironmentSession,
    elapsed: Callable[[], float],
) -> DeployResult:
    """``result`` with the invalidation of ``--invalidate`` sent (none when no path changed)."""
    result = replace(result, distribution_id=distribution, invalidated_paths=paths)
    if not paths:
        return result
    from keyless.aws import clients

    try:
        ident = invalidate(clients.control_cloudfront(session), distribution, list(paths))
    except KeylessError as exc:
        raise InvalidationFailedError(exc, result=replace(result, seconds=elapsed())) from exc
    return replace(result, invalidation_id=ident)


def invalidate(cloudfront: CloudFrontClient, distribution_id: str, paths: list[str]) -> str:
    """Create one CloudFront invalidation; returns its id (``deploy.invalidate``)."""
    return create_invalidation(cloudfront, distribution_id, paths)
