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

import contextlib
import os
import re
import time
from collections import deque
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from keyless.aws.errors import error_code, http_status
from keyless.deploy import manifest
from keyless.deploy.environment import (
    EnvironmentKeys,
    EnvironmentSession,
    ending,
    environment_session,
)
from keyless.deploy.headers import HeaderPolicy, ObjectHeaders
from keyless.deploy.invalidate import create_invalidation, invalidation_paths
from keyless.deploy.journal import Journal, ahead_jobs
from keyless.deploy.local_tree import FileDigests, FileVanishedError, Filters, LocalFile, walk
from keyless.deploy.plan import (
    DEFAULT_PART_SIZE,
    Plan,
    PlanOptions,
    Reason,
    RemoteObject,
    Upload,
    build_plan,
    normalize_prefix,
    refuse_empty,
)
from keyless.deploy.transfer import (
    CrtS3,
    DataPlane,
    Endpoint,
    FrozenCredentials,
    PutJob,
    PutOutcome,
    WrongRegionError,
)
from keyless.errors import AccessDeniedError, AwsError, KeylessError, NetworkError, UsageError
from keyless.limits import (
    AWS_DEFAULT_REGION,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_DELETE_PERCENT,
    DEPLOY_HASH_AHEAD,
    DEPLOY_HASH_BATCH,
    DEPLOY_MAX_CONCURRENCY,
    S3_COPY_MAX_BYTES,
    S3_DELETE_BATCH_KEYS,
)

if TYPE_CHECKING:
    import boto3
    import botocore.exceptions
    from mypy_boto3_cloudfront import CloudFrontClient
    from mypy_boto3_s3 import S3Client


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


class _Silent:
    def planned(self, plan: Plan) -> None:
        pass

    def notice(self, text: str) -> None:
        pass

    def done(self, action: str, key: str, size: int, ok: bool) -> None:
        pass


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
    session = session or environment_session() or _standard_session()
    progress = progress or _Silent()
    target = request.target
    credentials = session.get_credentials()
    if credentials is None:
        raise AwsError(
            "no AWS credentials found",
            remedy="Run inside 'keyless exec', or set AWS_PROFILE or the AWS_* variables.",
        )
    control = _Control(session, target.bucket, request.concurrency)
    config = DataPlaneConfig(
        endpoint=control.endpoint(),
        bucket=target.bucket,
        credentials=_signing(credentials),
        refreshable=_refreshable(credentials),
        concurrency=request.concurrency,
        part_size=request.part_size,
        ca_bundle=_ca_bundle(session),
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
    digests = _HashAhead(FileDigests(), workers=os.cpu_count() or 1)
    try:
        digests.known(local, old)
        plan = planner(
            local,
            digests.ahead(list_remote(plane, target, old, listed), local, target.prefix),
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
    progress.planned(plan)
    if request.dry_run:
        return DeployResult(
            plan=plan,
            dry_run=True,
            seconds=clock() - started,
            distribution_id=request.invalidation.distribution_id if request.invalidation else None,
            invalidated_paths=_invalidation_paths(request, plan),
        )

    # Only entries of objects still there with the same ETag: stale ones are dropped.
    before = {k: e for k, e in old.items() if listed.get(target.prefix + k) == e.etag}
    entries = dict(before)
    entries.update(
        {
            u.key.removeprefix(target.prefix): manifest.Entry(
                etag=u.etag, md5=u.md5, headers=u.headers
            )
            for u in plan.unchanged
        }
    )
    data = [
        u for u in plan.uploads if u.reason is not Reason.HEADERS or u.file.size > S3_COPY_MAX_BYTES
    ]
    copies = [
        u for u in plan.uploads if u.reason is Reason.HEADERS and u.file.size <= S3_COPY_MAX_BYTES
    ]
    sent = deleted = 0
    journal = Journal(
        entries,
        stored=None if unreadable else old,
        write=lambda known: write_manifest(plane, target, known),
        clock=clock,
    )
    by_key = {u.key: u for u in data}

    def uploaded(outcome: PutOutcome, size: int) -> None:
        upload = by_key.get(outcome.key)
        if upload is not None and outcome.error is None and outcome.etag:
            journal.confirm(outcome.key.removeprefix(target.prefix), _entry(upload, outcome.etag))
        progress.done("upload", outcome.key, size, outcome.error is None)

    # Credentials that end mid-deploy are renewed before a request needs them, or the deploy
    # stops before they expire (before the deletes, then): checked before each upload and step.
    ended: list[KeylessError] = []

    def jobs(feed: Iterable[Upload]) -> Iterator[PutJob]:
        for upload in feed:
            reason = usable(credentials)
            if reason is not None:
                ended.append(reason)
                return
            yield _job(upload)

    try:
        if data:
            # Large files first (stable otherwise): they take longest, so they overlap the rest.
            order = sorted(data, key=lambda u: u.file.size <= request.part_size)
            feed = ahead_jobs(
                order,
                journal,
                prefix=target.prefix,
                single_part_max=request.part_size,
                digests=FileDigests(),
                workers=os.cpu_count() or 1,
            )
            outcomes = plane.put_all(jobs(feed), on_done=uploaded)
            try:
                sent = _record_uploads(data, outcomes, entries, target)
            except KeylessError as failed:
                # An upload refused for expired credentials: the credentials are the cause.
                reason = ended[0] if ended else usable(credentials)
                if reason is not None:
                    raise reason from failed
                raise
            if ended:
                raise ended[0]
        if copies:
            _stop_if_ended(credentials)
            _copy_in_place(control.client(), target, copies, journal, request.concurrency, progress)
        # Deletes only now, after every upload and copy succeeded, and with the manifest stored:
        # a deploy killed from here on repeats no upload.
        journal.flush()
        if plan.deletes:
            _stop_if_ended(credentials)
            deleted = _delete(control.client(), target, [d.key for d in plan.deletes], progress)
            for d in plan.deletes:
                entries.pop(d.key.removeprefix(target.prefix), None)
    finally:
        # Even after a failure: what did succeed is remembered, so the next run redoes less.
        journal.flush()
    result = DeployResult(
        plan=plan,
        dry_run=False,
        uploaded=len(data),
        copied=len(copies),
        deleted=deleted,
        bytes_sent=sent,
    )
    if request.invalidation:
        distribution = request.invalidation.distribution_id
        paths = _invalidation_paths(request, plan)
        result = replace(result, distribution_id=distribution, invalidated_paths=paths)
        if paths:
            from keyless.aws import clients

            try:
                ident = invalidate(clients.control_cloudfront(session), distribution, list(paths))
            except KeylessError as exc:
                raise InvalidationFailedError(
                    exc, result=replace(result, seconds=clock() - started)
                ) from exc
            result = replace(result, invalidation_id=ident)
    return replace(result, seconds=clock() - started)


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


def _invalidation_paths(request: DeployRequest, plan: Plan) -> tuple[str, ...]:
    """What ``--invalidate`` sends: ``--paths``, else the changed keys, collapsed."""
    if request.invalidation is None:
        return ()
    changed = [u.key for u in plan.uploads] + [d.key for d in plan.deletes]
    return tuple(request.invalidation.paths) or tuple(invalidation_paths(changed))


class _HashAhead:
    """``FileDigests`` that compute MD5s ahead of the planner on a few threads (file reads and
    hashlib release the GIL), so the planner finds them done: a no-change run is bound by hashing.

    Files the manifest knows (their objects were there last time) are hashed from the start, in
    listing order and in batches, while the listing is still coming; any other file as soon as
    its object is listed with the same size. Only the planner decides what an MD5 means.
    """

    def __init__(self, inner: FileDigests, *, workers: int) -> None:
        self._inner = inner
        self._pool = ThreadPoolExecutor(max_workers=workers)
        #: By key: the file, its batch and its place in the batch.
        self._started: dict[str, tuple[LocalFile, Future[list[str | None]], int]] = {}

    def known(self, local: Iterable[LocalFile], keys: Container[str]) -> None:
        """Start hashing the files whose (relative) key is in ``keys``, likeliest first."""
        files = sorted((f for f in local if not f.excluded and f.key in keys), key=_by_key)
        for start in range(0, len(files), DEPLOY_HASH_BATCH):
            self._submit(files[start : start + DEPLOY_HASH_BATCH])

    def ahead(
        self, remote: Iterable[RemoteObject], local: Iterable[LocalFile], prefix: str
    ) -> Iterator[RemoteObject]:
        files = {f.key: f for f in local if not f.excluded}
        window: deque[RemoteObject] = deque()
        for obj in remote:
            rel = obj.key[len(prefix) :] if obj.key.startswith(prefix) else None
            file = files.get(rel) if rel is not None and rel not in self._started else None
            # Only where the planner will ask for an MD5: same size, not a multipart ETag.
            if file and file.size == obj.size and ("-" not in obj.etag or obj.md5):
                self._submit([file])
            window.append(obj)
            if len(window) > DEPLOY_HASH_AHEAD:
                yield window.popleft()
        yield from window

    def _submit(self, files: list[LocalFile]) -> None:
        batch = self._pool.submit(self._md5s, files)
        for index, file in enumerate(files):
            self._started[file.key] = (file, batch, index)

    def _md5s(self, files: list[LocalFile]) -> list[str | None]:
        # A file that cannot be read here is read again by the planner, which reports it.
        found: list[str | None] = []
        for file in files:
            try:
                found.append(self._inner.md5(file))
            except (OSError, UsageError):
                found.append(None)
        return found

    def md5(self, file: LocalFile) -> str:
        started = self._started.pop(file.key, None)
        if started is not None and started[0] is file:
            digest = started[1].result()[started[2]]
            if digest is not None:
                return digest
        return self._inner.md5(file)

    def multipart_etags(self, file: LocalFile, part_sizes: Sequence[int]) -> dict[int, str]:
        return self._inner.multipart_etags(file, part_sizes)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _by_key(file: LocalFile) -> str:
    # Code point order is UTF-8 byte order, the order of S3's listing.
    return file.key


def _signing(credentials: Any) -> Callable[[], FrozenCredentials]:
    """What the native client calls at each signature: the credentials, renewed when due. An
    exception there cannot reach keyless (awscrt reports it as unraisable), so a renewal that
    fails leaves the last good credentials in use; ``usable`` stops the deploy before they end."""
    last: list[FrozenCredentials] = [credentials.get_frozen_credentials()]

    def frozen() -> FrozenCredentials:
        with contextlib.suppress(Exception):  # see above
            last[0] = credentials.get_frozen_credentials()
        return last[0]

    return frozen


def _standard_session() -> boto3.Session:
    from keyless.aws import clients

    return clients.session()


def _refreshable(credentials: object) -> bool:
    if isinstance(credentials, EnvironmentKeys):
        return False
    from botocore.credentials import RefreshableCredentials

    return isinstance(credentials, RefreshableCredentials)


def _ca_bundle(session: boto3.Session | EnvironmentSession) -> str | None:
    if isinstance(session, EnvironmentSession):
        return session.ca_bundle
    bundle = session._session.get_config_variable("ca_bundle")
    return str(bundle) if bundle else None


def usable(credentials: object) -> KeylessError | None:
    """Why no new request should start on ``credentials`` now, or None (renewed first if due)."""
    if isinstance(credentials, EnvironmentKeys):
        why = ending(credentials)
        if why is None:
            return None
        from keyless.aws.renew import SessionExpiredError

        return SessionExpiredError(
            why, remedy="Run the deploy with fresh credentials (or with --role-arn, which renews)."
        )
    from keyless.aws import renew

    return renew.usable(credentials)


def _stop_if_ended(credentials: object) -> None:
    reason = usable(credentials)
    if reason is not None:
        raise reason


def _job(upload: Upload) -> PutJob:
    return PutJob(
        key=upload.key,
        path=upload.file.path,
        size=upload.file.size,
        headers=upload.headers.http(),
    )


def _entry(upload: Upload, etag: str) -> manifest.Entry:
    md5 = upload.md5 if upload.md5 != etag else None
    return manifest.Entry(etag=etag, md5=md5, headers=upload.headers.digest())


def _record_uploads(
    data: list[Upload],
    outcomes: list[PutOutcome],
    entries: dict[str, manifest.Entry],
    target: Target,
) -> int:
    by_key = {u.key: u for u in data}
    failures = [o for o in outcomes if o.error is not None]
    sent = 0
    for outcome in outcomes:
        upload = by_key[outcome.key]
        rel = outcome.key.removeprefix(target.prefix)
        if outcome.error is None and outcome.etag:
            sent += upload.file.size
            entries[rel] = _entry(upload, outcome.etag)
    if failures:
        first = failures[0]
        gone = next((o for o in failures if not by_key[o.key].file.path.is_file()), None)
        if gone is not None:
            # The client's own error for a missing file says nothing useful (RuntimeError).
            raise FileVanishedError(gone.key.removeprefix(target.prefix))
        message = (
            f"upload of {first.key!r} failed: {first.error}"
            + (f" (HTTP {first.status})" if first.status else "")
            + f"; {len(failures)} failed, {len(data) - len(outcomes)} not started; nothing deleted"
        )
        remedy = "Fix the cause and run the same deploy again: it sends only what is missing."
        if first.error in ("AccessDenied", "Forbidden") or first.status == 403:
            raise AccessDeniedError(
                message,
                remedy=f"The credentials need s3:PutObject on {target} (keyless provision"
                f" --s3-deploy {target.bucket}/{target.prefix.rstrip('/')} grants it, for that"
                " prefix only). " + remedy,
            )
        raise AwsError(message, remedy=remedy)
    return sent


def _copy_in_place(
    s3: S3Client,
    target: Target,
    copies: list[Upload],
    journal: Journal,
    concurrency: int,
    progress: Progress,
) -> None:
    import botocore.exceptions

    def copy(upload: Upload) -> tuple[Upload, str]:
        args = _copy_args(upload.headers)
        try:
            response = s3.copy_object(
                Bucket=target.bucket,
                Key=upload.key,
                CopySource={"Bucket": target.bucket, "Key": upload.key},
                # Only if the object is still the one planned against (no lost update).
                CopySourceIfMatch=f'"{upload.remote_etag}"',
                MetadataDirective="REPLACE",
                **args,
            )
        except botocore.exceptions.ClientError as exc:
            progress.done("copy", upload.key, 0, False)
            raise _aws_error(exc, f"copy of {upload.key!r} in place") from exc
        progress.done("copy", upload.key, 0, True)
        etag = str(response.get("CopyObjectResult", {}).get("ETag", "")).strip('"').lower()
        return upload, etag

    with ThreadPoolExecutor(max_workers=min(concurrency, DEFAULT_CONCURRENCY)) as pool:
        for upload, etag in pool.map(copy, copies):
            journal.set(upload.key.removeprefix(target.prefix), _entry(upload, etag))


def _copy_args(headers: ObjectHeaders) -> dict[str, Any]:
    args: dict[str, Any] = {"ContentType": headers.content_type}
    optional = {
        "CacheControl": headers.cache_control,
        "ContentEncoding": headers.content_encoding,
        "ContentDisposition": headers.content_disposition,
        "ContentLanguage": headers.content_language,
        "ACL": headers.acl,
        "StorageClass": headers.storage_class,
    }
    args.update({name: value for name, value in optional.items() if value})
    if headers.expires:
        args["Expires"] = parsedate_to_datetime(headers.expires)
    args["Metadata"] = dict(headers.metadata)
    return args


def _delete(s3: S3Client, target: Target, keys: list[str], progress: Progress) -> int:
    import botocore.exceptions

    deleted = 0
    for start in range(0, len(keys), S3_DELETE_BATCH_KEYS):
        batch = keys[start : start + S3_DELETE_BATCH_KEYS]
        try:
            response = s3.delete_objects(
                Bucket=target.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
        except botocore.exceptions.ClientError as exc:
            raise _aws_error(exc, f"delete in {target}") from exc
        errors = response.get("Errors", [])
        failed = {e.get("Key") for e in errors}
        for key in batch:
            progress.done("delete", key, 0, key not in failed)
        deleted += len(batch) - len(failed)
        if errors:
            first = errors[0]
            raise AwsError(
                f"delete of {first.get('Key')!r} failed: {first.get('Code')}; "
                f"{len(errors)} objects not deleted",
                remedy="Check the role allows s3:DeleteObject on the prefix, then run again.",
            )
    return deleted


def invalidate(cloudfront: CloudFrontClient, distribution_id: str, paths: list[str]) -> str:
    """Create one CloudFront invalidation; returns its id (``deploy.invalidate``)."""
    return create_invalidation(cloudfront, distribution_id, paths)


# --- listing and the manifest -------------------------------------------------------------------


def list_remote(
    plane: DataPlane,
    target: Target,
    known: Mapping[str, manifest.Entry],
    listed: dict[str, str] | None = None,
) -> Iterator[RemoteObject]:
    """Every object under the prefix, page by page, with what the manifest knows of its ETag;
    ``listed`` collects each key's ETag."""
    for item in plane.list_objects(target.prefix):
        if listed is not None:
            listed[item.key] = item.etag
        entry = known.get(item.key.removeprefix(target.prefix))
        if entry is not None and entry.etag != item.etag:
            entry = None  # rewritten since keyless saw it: what it knew no longer holds
        yield RemoteObject(
            key=item.key,
            size=item.size,
            etag=item.etag,
            md5=entry.md5 if entry else None,
            headers=entry.headers if entry else None,
        )


def read_manifest(
    plane: DataPlane,
    target: Target,
    *,
    inflater: Callable[[], manifest.Inflater] = manifest.gzip_inflater,
) -> tuple[dict[str, manifest.Entry], str | None]:
    """What keyless wrote last time, and why it cannot be used if it cannot: missing or denied
    means "nothing known" (no reason), an unusable one costs a re-check, never the deploy."""
    try:
        data = plane.get_object(
            target.prefix + manifest.MANIFEST_NAME, limit=manifest.MANIFEST_MAX_BYTES
        )
    except AccessDeniedError:
        return {}, None
    if not data:
        return {}, None
    try:
        return manifest.decode(data, inflater=inflater), None
    except manifest.ManifestUnreadable as exc:
        return {}, str(exc)


def write_manifest(plane: DataPlane, target: Target, entries: Mapping[str, manifest.Entry]) -> None:
    try:
        plane.put_object(
            target.prefix + manifest.MANIFEST_NAME,
            manifest.encode(entries),
            [("Content-Type", "application/gzip"), ("Cache-Control", "no-store")],
        )
    except (AwsError, AccessDeniedError, NetworkError):
        # Losing the manifest costs a re-check next time, not correctness; a denied PutObject
        # is reported by the uploads themselves, naming the object.
        return


# --- clients and errors -------------------------------------------------------------------------


class _Control:
    """The boto3 side: endpoint and region as botocore resolves them, and a client made only
    when a deploy needs one (copies, deletes): creating it costs about 0.25 s of CPU.

    The region is the configured one until the data plane learns the bucket's own from S3's
    answer (``WrongRegionError``); no HeadBucket, which a prefix-limited role may not call.
    """

    def __init__(
        self, session: boto3.Session | EnvironmentSession, bucket: str, concurrency: int
    ) -> None:
        self._session = session
        self._bucket = bucket
        self._concurrency = concurrency
        self._region = session.region_name or AWS_DEFAULT_REGION
        self._client: S3Client | None = None

    def client(self) -> S3Client:
        if self._client is None:
            from keyless.aws import clients

            self._client = clients.control_s3(
                self._session, region=self._region, concurrency=self._concurrency
            )
        return self._client

    def endpoint(self, region: str | None = None) -> Endpoint:
        """Where the data plane sends its requests, for ``region`` (default: the configured)."""
        if region is not None and region != self._region:
            self._region = region
            self._client = None
        if isinstance(self._session, EnvironmentSession):
            configured = self._session.configured_endpoint()
        else:
            from keyless.aws import clients

            configured = clients.configured_endpoint_url(self._session, "s3")
        if configured:
            # A custom endpoint (the local stack, moto, MinIO) serves every bucket it has.
            return Endpoint.from_url(configured, region=self._region)
        s3 = self.client()
        return Endpoint.from_url(s3.meta.endpoint_url, region=s3.meta.region_name or self._region)


def _aws_error(exc: botocore.exceptions.ClientError, what: str) -> AwsError | AccessDeniedError:
    code = error_code(exc) or "Unknown"
    status = http_status(exc)
    if code in ("AccessDenied", "403", "Forbidden") or status == 403:
        return AccessDeniedError(
            f"{what}: access denied",
            remedy="The role needs s3:ListBucket, s3:GetObject, s3:PutObject and (with --delete) "
            "s3:DeleteObject on the bucket and prefix.",
        )
    if code in ("NoSuchBucket", "404") or status == 404:
        return AwsError(f"{what}: no such bucket", remedy="Check the bucket name and the account.")
    return AwsError(f"{what} failed: {code}")
