"""The data plane: list, read and PUT objects with the AWS Common Runtime's native S3 client.

botocore's per-call machinery costs about 1 ms of CPU per object before any I/O, and its XML
parser about 0.4 ms per listed key, so both per-object paths stay out of it: awscrt signs (SigV4,
session token included), checksums, retries and splits large files into parts natively; Python
builds each request, parses listings with the C XML parser and counts the callbacks. Credentials
are read from the boto3 session at signing time, so refreshable ones (web identity, SSO,
profiles) keep working through long deploys.
"""

from __future__ import annotations

import io
import re
import threading
import xml.etree.ElementTree as ElementTree
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, unquote_plus, urlsplit

# awscrt ships no type information (no py.typed, no stubs): its names are Any to mypy here, and
# this module is the only one that touches them.
from awscrt.auth import (  # type: ignore[import-untyped]
    AwsCredentials,
    AwsCredentialsProvider,
)
from awscrt.http import HttpHeaders, HttpRequest  # type: ignore[import-untyped]
from awscrt.io import (  # type: ignore[import-untyped]
    ClientBootstrap,
    ClientTlsContext,
    DefaultHostResolver,
    EventLoopGroup,
    TlsConnectionOptions,
    TlsContextOptions,
)
from awscrt.s3 import (  # type: ignore[import-untyped]
    S3ChecksumAlgorithm,
    S3ChecksumConfig,
    S3ChecksumLocation,
    S3Client,
    S3FileIoOptions,
    S3RequestTlsMode,
    S3RequestType,
    S3RetryConfig,
    S3RetryMode,
    create_default_s3_signing_config,
)

from keyless.errors import AccessDeniedError, AwsError, NetworkError
from keyless.limits import (
    S3_CONNECT_TIMEOUT_MS,
    S3_CRT_MEMORY_LIMIT_BYTES,
    S3_DRAIN_TIMEOUT_SECONDS,
    S3_LARGE_UPLOADS_IN_FLIGHT,
    S3_LIST_PAGE_KEYS,
    S3_MAX_ATTEMPTS,
    S3_REQUEST_TIMEOUT_SECONDS,
    S3_RETRY_BASE_DELAY_MS,
    S3_RETRY_MAX_DELAY_SECONDS,
)

#: The native client's throughput goal; it sizes its connection pool from it unless capped.
CRT_THROUGHPUT_TARGET_GBPS = 5.0

# A bucket name that can be a DNS label under a TLS wildcard (no dots): virtual-hosted style.
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where S3 requests go, as botocore resolved it (``AWS_ENDPOINT_URL[_S3]`` included)."""

    scheme: str
    netloc: str
    region: str
    #: Path-style for custom endpoints (moto, MinIO, the local stack) and dotted bucket names.
    virtual_hosted: bool

    @classmethod
    def from_url(cls, url: str, *, region: str) -> Endpoint:
        parts = urlsplit(url)
        aws = parts.hostname is not None and parts.hostname.endswith(".amazonaws.com")
        return cls(scheme=parts.scheme, netloc=parts.netloc, region=region, virtual_hosted=aws)

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    def host(self, bucket: str) -> str:
        if self._virtual(bucket):
            return f"{bucket}.{self.netloc}"
        return self.netloc

    def path(self, bucket: str, key: str, query: Sequence[tuple[str, str]] = ()) -> str:
        # S3 keys are encoded once, segment by segment; '+' must be %2B or S3 reads a space.
        encoded = quote(key, safe="/-_.~")
        if self._virtual(bucket):
            path = f"/{encoded}"
        else:
            path = f"/{bucket}/{encoded}" if key else f"/{bucket}"
        if query:
            # Sorted and fully encoded, as SigV4's canonical query string wants them.
            path += "?" + "&".join(
                f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}"
                for name, value in sorted(query)
            )
        return path

    def _virtual(self, bucket: str) -> bool:
        return self.virtual_hosted and bool(_DNS_BUCKET.match(bucket))


class WrongRegionError(AwsError):
    """S3 answered that the bucket lives in ``region``, not the one the request was signed for.

    Found from the answer itself (``x-amz-bucket-region``, or ``<Region>`` in the error body), not
    with HeadBucket: that needs ``s3:ListBucket`` without a prefix, which a role limited to one
    prefix does not have.
    """

    def __init__(self, message: str, *, region: str) -> None:
        super().__init__(message, remedy="Pass the bucket's region with --region.")
        self.region = region


@dataclass(frozen=True, slots=True, kw_only=True)
class PutJob:
    key: str
    path: str
    size: int
    headers: Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Listed:
    key: str
    size: int
    #: Lower case, without quotes.
    etag: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PutOutcome:
    key: str
    etag: str | None = None
    #: S3's error code (``AccessDenied``, ``BadDigest``...) or the client's error name.
    error: str | None = None
    status: int | None = None


class FrozenCredentials(Protocol):
    """What botocore's ``get_frozen_credentials()`` returns (never logged, never printed)."""

    @property
    def access_key(self) -> str | None: ...

    @property
    def secret_key(self) -> str | None: ...

    @property
    def token(self) -> str | None: ...


class Uploader(Protocol):
    def put_all(
        self, jobs: Iterable[PutJob], *, on_done: Callable[[PutOutcome, int], None]
    ) -> list[PutOutcome]:
        """Upload every job (stopping early after a failure); ``on_done(outcome, bytes)``
        is called from a worker thread as each object finishes."""
        ...


class DataPlane(Uploader, Protocol):
    def list_objects(self, prefix: str) -> Iterator[Listed]:
        """Every object under ``prefix``, in S3's order, page by page."""
        ...

    def get_object(self, key: str, *, limit: int) -> bytes | None:
        """A small object's body, or None when it does not exist (or is larger than ``limit``)."""
        ...

    def put_object(self, key: str, body: bytes, headers: Sequence[tuple[str, str]]) -> None: ...


class CrtS3:
    """``DataPlane`` on ``awscrt.s3.S3Client``, at most ``concurrency`` requests in flight."""

    def __init__(
        self,
        *,
        endpoint: Endpoint,
        bucket: str,
        credentials: Callable[[], FrozenCredentials],
        concurrency: int,
        refreshable: bool = True,
        part_size: int,
        ca_bundle: str | None = None,
        stream_large: bool | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._bucket = bucket
        self._concurrency = concurrency
        self._part_size = part_size
        # Files of more than one part are read from disk as they are sent (no part buffers), with
        # their CRC32 in a trailer (aws-chunked), as the AWS SDKs send it: only over TLS by
        # default, since the trailer is not covered by the signature (and some S3 look-alikes do
        # not decode aws-chunked bodies). Elsewhere the client buffers each part, so fewer large
        # files go at a time (``S3_LARGE_UPLOADS_IN_FLIGHT``).
        self._stream_large = endpoint.secure if stream_large is None else stream_large

        def provide() -> AwsCredentials:
            frozen = credentials()
            if not frozen.access_key or not frozen.secret_key:
                raise AwsError("the AWS credentials have no access key or secret key")
            return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)

        if refreshable:
            # Called at each signature, so credentials that expire are renewed in flight.
            provider = AwsCredentialsProvider.new_delegate(provide)
        else:
            fixed = provide()
            provider = AwsCredentialsProvider.new_static(
                fixed.access_key_id, fixed.secret_access_key, fixed.session_token
            )
        event_loops = EventLoopGroup()
        bootstrap = ClientBootstrap(event_loops, DefaultHostResolver(event_loops))
        tls_options = None
        if endpoint.secure and ca_bundle:
            context = TlsContextOptions()
            context.override_default_trust_store_from_path(ca_filepath=ca_bundle)
            tls_options = TlsConnectionOptions(ClientTlsContext(context))
        self._client = S3Client(
            bootstrap=bootstrap,
            region=endpoint.region,
            tls_mode=S3RequestTlsMode.ENABLED if endpoint.secure else S3RequestTlsMode.DISABLED,
            tls_connection_options=tls_options,
            signing_config=create_default_s3_signing_config(
                region=endpoint.region, credential_provider=provider
            ),
            part_size=part_size,
            multipart_upload_threshold=part_size,
            throughput_target_gbps=CRT_THROUGHPUT_TARGET_GBPS,
            memory_limit=S3_CRT_MEMORY_LIMIT_BYTES,
            max_active_connections_override=concurrency,
            connect_timeout_ms=S3_CONNECT_TIMEOUT_MS,
            # Stated rather than the client's defaults (6 attempts, 0.5 s base, 20 s cap), so
            # that a fault that persists fails the deploy after a known number of attempts.
            retry_config=S3RetryConfig(
                max_retries=S3_MAX_ATTEMPTS - 1,
                backoff_scale_factor_ms=S3_RETRY_BASE_DELAY_MS,
                max_backoff_secs=S3_RETRY_MAX_DELAY_SECONDS,
                retry_mode=S3RetryMode.EXPONENTIAL_BACKOFF,
            ),
        )
        # CRC32 in a header: S3 recomputes it and rejects a body that does not match (BadDigest).
        self._checksum = S3ChecksumConfig(
            algorithm=S3ChecksumAlgorithm.CRC32, location=S3ChecksumLocation.HEADER
        )
        self._trailer = S3ChecksumConfig(
            algorithm=S3ChecksumAlgorithm.CRC32, location=S3ChecksumLocation.TRAILER
        )
        self._streamed = S3FileIoOptions(should_stream=True)

    def put_all(
        self, jobs: Iterable[PutJob], *, on_done: Callable[[PutOutcome, int], None]
    ) -> list[PutOutcome]:
        slots = threading.BoundedSemaphore(self._concurrency)
        # Buffered large files wait here for one of their few slots while small ones go on.
        large = threading.BoundedSemaphore(
            self._concurrency if self._stream_large else S3_LARGE_UPLOADS_IN_FLIGHT
        )
        waiting: deque[PutJob] = deque()
        outcomes: list[PutOutcome] = []
        failed = threading.Event()
        host = self._endpoint.host(self._bucket)

        def start(job: PutJob, held: threading.BoundedSemaphore | None) -> bool:
            slots.acquire()
            if failed.is_set():
                slots.release()
                if held is not None:
                    held.release()
                return False
            self._start(job, host, slots, held, outcomes, failed, on_done)
            return True

        def start_waiting(*, block: bool) -> bool:
            while waiting and large.acquire(blocking=block):
                if not start(waiting.popleft(), large):
                    return False
            return True

        for job in jobs:
            if job.size > self._part_size:
                waiting.append(job)
            elif not start(job, None):
                break
            if not start_waiting(block=False):
                break
        else:
            start_waiting(block=True)
        # Wait for the requests in flight: every slot back means every callback has run.
        for _ in range(self._concurrency):
            if not slots.acquire(timeout=S3_DRAIN_TIMEOUT_SECONDS):
                raise AwsError("uploads did not finish in time after a failure or interrupt")
        return outcomes

    # --- single requests (listing pages, the manifest) ------------------------------------------

    def list_objects(self, prefix: str) -> Iterator[Listed]:
        query = [("list-type", "2"), ("prefix", prefix), ("max-keys", str(S3_LIST_PAGE_KEYS))]
        # encoding-type=url: keys may hold characters XML 1.0 cannot carry.
        query.append(("encoding-type", "url"))
        pending: _Pending | None = self._begin("GET", "", query, b"", (), "ListObjectsV2")
        while pending is not None:
            status, body = pending.result()
            if status != 200:
                raise self._failure(pending, status, body, f"listing s3://{self._bucket}/{prefix}")
            # The body comes from the endpoint keyless signs for; expat (>= 2.4) caps entity
            # expansion and ElementTree resolves no external entities.
            root = ElementTree.fromstring(body)  # noqa: S314
            namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            token = root.findtext(f"{namespace}NextContinuationToken")
            pending = None
            if root.findtext(f"{namespace}IsTruncated") == "true" and token:
                # Ask for the next page before handing out this one: the server lists while
                # the planner hashes.
                page = [*query, ("continuation-token", token)]
                pending = self._begin("GET", "", page, b"", (), "ListObjectsV2")
            for item in root.iter(f"{namespace}Contents"):
                yield Listed(
                    key=unquote_plus(item.findtext(f"{namespace}Key") or ""),
                    size=int(item.findtext(f"{namespace}Size") or 0),
                    etag=(item.findtext(f"{namespace}ETag") or "").strip('"').lower(),
                )

    def get_object(self, key: str, *, limit: int) -> bytes | None:
        pending = self._begin("GET", key, (), b"", (), "GetObject", limit=limit)
        status, body = pending.result()
        if status == 200:
            return body
        if status in (404, 413):
            return None
        raise self._failure(pending, status, body, f"reading s3://{self._bucket}/{key}")

    def put_object(self, key: str, body: bytes, headers: Sequence[tuple[str, str]]) -> None:
        pending = self._begin("PUT", key, (), body, headers, "PutObject")
        status, answer = pending.result()
        if status != 200:
            raise self._failure(pending, status, answer, f"writing s3://{self._bucket}/{key}")

    def _failure(
        self, pending: _Pending, status: int, body: bytes, what: str
    ) -> AwsError | AccessDeniedError:
        region = region_from_answer(status, body, pending.bucket_region)
        if region and region != self._endpoint.region:
            return WrongRegionError(
                f"{what}: the bucket is in region {region}, not {self._endpoint.region}",
                region=region,
            )
        return _failure(status, body, what)

    def _begin(
        self,
        method: str,
        key: str,
        query: Sequence[tuple[str, str]],
        body: bytes,
        headers: Sequence[tuple[str, str]],
        operation: str,
        *,
        limit: int | None = None,
    ) -> _Pending:
        """Send one request now; its ``result()`` waits for the answer."""
        pairs = [("Host", self._endpoint.host(self._bucket)), *headers]
        if method == "PUT":
            pairs.append(("Content-Length", str(len(body))))
        path = self._endpoint.path(self._bucket, key, query)
        request = HttpRequest(
            method, path, HttpHeaders(pairs), io.BytesIO(body) if method == "PUT" else None
        )
        pending = _Pending(netloc=self._endpoint.netloc, limit=limit)
        kind = {"GetObject": S3RequestType.GET_OBJECT, "PutObject": S3RequestType.PUT_OBJECT}
        pending.future = self._client.make_request(
            type=kind.get(operation, S3RequestType.DEFAULT),
            operation_name=None if operation in kind else operation,
            request=request,
            checksum_config=self._checksum if method == "PUT" else None,
            on_body=pending.on_body,
            on_done=pending.on_done,
        ).finished_future
        return pending

    def _start(
        self,
        job: PutJob,
        host: str,
        slots: threading.BoundedSemaphore,
        held: threading.BoundedSemaphore | None,
        outcomes: list[PutOutcome],
        failed: threading.Event,
        on_done: Callable[[PutOutcome, int], None],
    ) -> None:
        headers = HttpHeaders([("Host", host), ("Content-Length", str(job.size)), *job.headers])
        request = HttpRequest("PUT", self._endpoint.path(self._bucket, job.key), headers)
        etag: list[str] = []

        def on_headers(status_code: int, headers: list[tuple[str, str]], **_: Any) -> None:
            for name, value in headers:
                if name.lower() == "etag":
                    etag.append(value.strip('"').lower())

        def finished(
            error: BaseException | None,
            status_code: int | None = None,
            error_body: bytes | None = None,
            **_: Any,
        ) -> None:
            # Runs on a native event-loop thread: keep it short and never raise.
            try:
                if error is None:
                    outcome = PutOutcome(key=job.key, etag=etag[-1] if etag else None)
                else:
                    failed.set()
                    outcome = PutOutcome(
                        key=job.key, error=_error_code(error, error_body), status=status_code
                    )
                outcomes.append(outcome)
                on_done(outcome, job.size if error is None else 0)
            finally:
                if held is not None:
                    held.release()
                slots.release()

        streamed = self._stream_large and job.size > self._part_size
        try:
            self._client.make_request(
                type=S3RequestType.PUT_OBJECT,
                request=request,
                send_filepath=job.path,
                fio_options=self._streamed if streamed else None,
                checksum_config=self._trailer if streamed else self._checksum,
                on_headers=on_headers,
                on_done=finished,
            )
        except Exception as exc:  # e.g. the file vanished between planning and upload
            failed.set()
            outcomes.append(PutOutcome(key=job.key, error=type(exc).__name__))
            if held is not None:
                held.release()
            slots.release()


class _Pending:
    """One request in flight: its callbacks fill it from a native thread, ``result()`` waits."""

    def __init__(self, *, netloc: str, limit: int | None) -> None:
        self.future: Any = None
        self._netloc = netloc
        self._limit = limit
        self._received = bytearray()
        self._state: dict[str, Any] = {}
        #: ``x-amz-bucket-region`` of an error answer (redirects and region errors carry it).
        self.bucket_region: str | None = None

    def on_body(self, chunk: bytes, **_: Any) -> None:
        if self._limit is None or len(self._received) <= self._limit:
            self._received.extend(chunk)

    def on_done(
        self,
        error: BaseException | None,
        status_code: int | None = None,
        error_body: bytes | None = None,
        error_headers: Sequence[tuple[str, str]] | None = None,
        **_: Any,
    ) -> None:
        for name, value in error_headers or ():
            if name.lower() == "x-amz-bucket-region":
                self.bucket_region = value.strip()
        self._state.update(error=error, status=status_code, error_body=error_body)

    def result(self) -> tuple[int, bytes]:
        try:
            self.future.result(S3_REQUEST_TIMEOUT_SECONDS)
        except Exception:  # the outcome is in the state; the future only repeats it
            self._state.setdefault("error", "timeout")
        status = self._state.get("status")
        if self._state.get("error") is not None and not status:
            code = _error_code(self._state["error"], None)
            raise NetworkError(f"cannot reach S3 at {self._netloc} ({code})")
        if self._limit is not None and len(self._received) > self._limit:
            return 413, b""
        if status == 200:
            return 200, bytes(self._received)
        return int(status or 0), self._state.get("error_body") or b""


def _failure(status: int, body: bytes, what: str) -> AwsError | AccessDeniedError:
    code = _error_code(None, body) or f"HTTP {status}"
    if status == 403:
        return AccessDeniedError(
            f"{what}: access denied ({code})",
            remedy="The role needs s3:ListBucket, s3:GetObject and s3:PutObject on the bucket "
            "and prefix (and s3:DeleteObject with --delete).",
        )
    if code == "NoSuchBucket":
        return AwsError(f"{what}: no such bucket", remedy="Check the bucket name and the account.")
    return AwsError(f"{what} failed: {code}")


def region_from_answer(status: int, body: bytes, header: str | None) -> str | None:
    """The bucket's region from a redirect (301, 307) or a region error (400), else None."""
    if status not in (301, 307, 400):
        return None
    if header:
        return header
    # AuthorizationHeaderMalformed names the right region in the body only.
    match = re.search(rb"<Region>([a-z0-9-]{1,32})</Region>", body or b"")
    return match.group(1).decode("ascii") if match else None


def _error_code(error: BaseException | str | None, body: bytes | None) -> str:
    """S3's error code from the body, else the client's error name; "" when there is neither."""
    if body:
        match = re.search(rb"<Code>([^<]{1,64})</Code>", body)
        if match:
            return match.group(1).decode("ascii", "replace")
    if error is None:
        return ""
    if isinstance(error, str):
        return error
    name = getattr(error, "name", None)
    return str(name) if name else type(error).__name__
