"""The boto3 side of a deploy (the control plane): the endpoint as botocore resolves it, copies in
place for header-only changes, and deletes in batches.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from keyless.aws.errors import error_code, http_status
from keyless.deploy.environment import EnvironmentSession
from keyless.deploy.headers import ObjectHeaders
from keyless.deploy.journal import Journal
from keyless.deploy.plan import Upload
from keyless.deploy.remote import entry_of
from keyless.deploy.request import Progress, Target
from keyless.deploy.transfer import Endpoint
from keyless.errors import AccessDeniedError, AwsError
from keyless.limits import AWS_DEFAULT_REGION, DEFAULT_CONCURRENCY, S3_DELETE_BATCH_KEYS

if TYPE_CHECKING:
    import boto3
    import botocore.exceptions
    from mypy_boto3_s3 import S3Client


def copy_in_place(
    s3: S3Client,
    target: Target,
    copies: list[Upload],
    journal: Journal,
    concurrency: int,
    progress: Progress,
) -> None:
    import botocore.exceptions

    def copy(upload: Upload) -> tuple[Upload, str]:
        args = copy_args(upload.headers)
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
            raise aws_error(exc, f"copy of {upload.key!r} in place") from exc
        progress.done("copy", upload.key, 0, True)
        etag = str(response.get("CopyObjectResult", {}).get("ETag", "")).strip('"').lower()
        return upload, etag

    with ThreadPoolExecutor(max_workers=min(concurrency, DEFAULT_CONCURRENCY)) as pool:
        for upload, etag in pool.map(copy, copies):
            journal.set(upload.key.removeprefix(target.prefix), entry_of(upload, etag, copied=True))


def copy_args(headers: ObjectHeaders) -> dict[str, Any]:
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


def delete_objects(s3: S3Client, target: Target, keys: list[str], progress: Progress) -> int:
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
            raise aws_error(exc, f"delete in {target}") from exc
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


class Control:
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


def aws_error(exc: botocore.exceptions.ClientError, what: str) -> AwsError | AccessDeniedError:
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
