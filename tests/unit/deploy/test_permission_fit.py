"""Every S3 call ``keyless deploy`` makes is allowed on real AWS by ``keyless provision
--s3-deploy BUCKET/PREFIX``, whose ``s3:ListBucket`` holds only with ``s3:prefix`` (moto ignores
conditions, so this is checked here, against the table in ``tests.s3_authorization``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from keyless.aws.permissions import (
    S3DeployPreset,
    parse_distribution_id,
    parse_s3_location,
    s3_deploy_policy,
)
from keyless.deploy.apply import DataPlaneConfig, DeployRequest, Invalidation, Target, deploy
from keyless.deploy.headers import HeaderPolicy, Rule
from keyless.deploy.manifest import MANIFEST_NAME
from keyless.deploy.transfer import (
    Listed,
    PutJob,
    PutOutcome,
    WrongRegionError,
    region_from_answer,
)
from keyless.trust.model import Policy
from tests.s3_authorization import S3Call, allows, classify, permissions, refusals
from tests.unit.deploy.fakes import md5, multipart_etag

BUCKET = "site-bucket"
PREFIX = "www/"
PART_SIZE = 1024
ACCOUNT = "123456789012"


def preset(*, allow_delete: bool = True) -> Policy:
    return s3_deploy_policy(
        S3DeployPreset(
            location=parse_s3_location(f"{BUCKET}/{PREFIX}"),
            allow_delete=allow_delete,
            distribution=parse_distribution_id("E2QWRUHEXAMPLE"),
        ),
        account_id=ACCOUNT,
    )


# --- the table itself, one row per kind of request ----------------------------------------------


def _call(operation: str, key: str | None = None, **kw: Any) -> S3Call:
    return S3Call(operation=operation, bucket=BUCKET, key=key, **kw)


@pytest.mark.parametrize(
    ("call", "allowed"),
    [
        (_call("ListObjectsV2", query={"list-type": "2", "prefix": "www/"}), True),
        (_call("ListObjectsV2", query={"list-type": "2", "prefix": "www/assets/"}), True),
        # No prefix, an empty one, or another one: the s3:prefix condition does not hold.
        (_call("ListObjectsV2", query={"list-type": "2"}), False),
        (_call("ListObjectsV2", query={"list-type": "2", "prefix": ""}), False),
        (_call("ListObjectsV2", query={"list-type": "2", "prefix": "other/"}), False),
        # HeadBucket is s3:ListBucket without s3:prefix: denied, hence never used.
        (_call("HeadBucket"), False),
        (_call("GetBucketLocation"), False),
        (_call("GetObject", f"www/{MANIFEST_NAME}"), True),
        (_call("GetObject", MANIFEST_NAME), False),
        (_call("PutObject", "www/index.html"), True),
        (_call("PutObject", "wwwx/index.html"), False),
        (_call("PutObject", "index.html"), False),
        # An ACL header also needs s3:PutObjectAcl, which the preset does not grant.
        (_call("PutObject", "www/index.html", headers={"x-amz-acl": "public-read"}), False),
        (_call("CreateMultipartUpload", "www/big.bin"), True),
        (_call("UploadPart", "www/big.bin"), True),
        (_call("CompleteMultipartUpload", "www/big.bin"), True),
        (_call("AbortMultipartUpload", "www/big.bin"), True),
        (
            _call("CopyObject", "www/a.js", headers={"x-amz-copy-source": f"{BUCKET}/www/a.js"}),
            True,
        ),
        (
            _call("CopyObject", "www/a.js", headers={"x-amz-copy-source": "other/www/a.js"}),
            False,
        ),
        (_call("DeleteObjects", keys=("www/a.js", "www/b.js")), True),
        (_call("DeleteObjects", keys=("www/a.js", "b.js")), False),
        (_call("DeleteObject", "www/a.js"), True),
    ],
    ids=str,
)
def test_preset_table(call: S3Call, allowed: bool) -> None:
    assert not refusals(preset(), [call]) if allowed else refusals(preset(), [call])


def test_delete_needs_allow_delete() -> None:
    call = _call("DeleteObjects", keys=("www/a.js",))
    assert refusals(preset(allow_delete=False), [call]) == [
        f"DeleteObjects {BUCKET}: s3:DeleteObject on arn:aws:s3:::{BUCKET}/www/a.js"
    ]


def test_a_call_that_needs_nothing_is_reported() -> None:
    assert refusals(preset(), [_call("DeleteObjects")]) == [
        f"DeleteObjects {BUCKET}: no permission known"
    ]


@pytest.mark.parametrize(
    ("method", "target", "headers", "operation"),
    [
        ("GET", "/b/?list-type=2&prefix=www%2F&encoding-type=url", {}, "ListObjectsV2"),
        ("HEAD", "/b", {}, "HeadBucket"),
        ("GET", "/b/www/a%20b.html", {}, "GetObject"),
        ("PUT", "/b/www/a.js", {}, "PutObject"),
        ("PUT", "/b/www/a.js", {"X-Amz-Copy-Source": "b/www/a.js"}, "CopyObject"),
        ("POST", "/b/www/big?uploads", {}, "CreateMultipartUpload"),
        ("PUT", "/b/www/big?partNumber=1&uploadId=u", {}, "UploadPart"),
        ("POST", "/b/www/big?uploadId=u", {}, "CompleteMultipartUpload"),
        ("DELETE", "/b/www/big?uploadId=u", {}, "AbortMultipartUpload"),
        ("POST", "/b?delete", {}, "DeleteObjects"),
    ],
)
def test_classify(method: str, target: str, headers: dict[str, str], operation: str) -> None:
    assert classify(method, target, headers).operation == operation


def test_classify_refuses_what_it_does_not_know() -> None:
    with pytest.raises(ValueError, match=r"no S3 operation in the table for PUT /b/k\?acl"):
        classify("PUT", "/b/k?acl", {})


def test_listing_context_carries_the_prefix() -> None:
    call = classify("GET", "/b?list-type=2&prefix=www%2F", {})
    [permission] = permissions(call)
    assert (permission.action, dict(permission.context)) == ("s3:ListBucket", {"s3:prefix": "www/"})
    assert allows(preset(), permission) is False  # another bucket


# --- the calls a deploy makes, by construction --------------------------------------------------


class RecordingS3:
    """A ``DataPlane`` over a dict that records each request as S3 would see it (multipart for
    files above the part size, as the native client splits them)."""

    def __init__(self, store: dict[str, bytes], calls: list[S3Call], part_size: int) -> None:
        self.store = store
        self.calls = calls
        self.part_size = part_size

    def _etag(self, data: bytes) -> str:
        if len(data) > self.part_size:
            return multipart_etag(data, self.part_size)
        return md5(data)

    def list_objects(self, prefix: str) -> Iterator[Listed]:
        self.calls.append(
            S3Call(
                operation="ListObjectsV2", bucket=BUCKET, query={"list-type": "2", "prefix": prefix}
            )
        )
        for key in sorted(self.store):
            if key.startswith(prefix):
                data = self.store[key]
                yield Listed(key=key, size=len(data), etag=self._etag(data))

    def get_object(self, key: str, *, limit: int) -> bytes | None:
        self.calls.append(S3Call(operation="GetObject", bucket=BUCKET, key=key))
        return self.store.get(key)

    def put_object(self, key: str, body: bytes, headers: Sequence[tuple[str, str]]) -> None:
        self.calls.append(
            S3Call(operation="PutObject", bucket=BUCKET, key=key, headers=_lower(headers))
        )
        self.store[key] = body

    def put_all(
        self, jobs: Iterable[PutJob], *, on_done: Callable[[PutOutcome, int], None]
    ) -> list[PutOutcome]:
        outcomes = []
        for job in jobs:
            data = Path(job.path).read_bytes()
            headers = _lower(job.headers)
            if job.size > self.part_size:
                operations = ["CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"]
            else:
                operations = ["PutObject"]
            for operation in operations:
                self.calls.append(
                    S3Call(operation=operation, bucket=BUCKET, key=job.key, headers=headers)
                )
            self.store[job.key] = data
            outcome = PutOutcome(key=job.key, etag=self._etag(data))
            outcomes.append(outcome)
            on_done(outcome, job.size)
        return outcomes


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


class ControlPlane:
    """boto3's side of the deploy, answered in-process by a ``before-call`` hook (nothing is
    sent), each call recorded with the region its client signs for."""

    def __init__(self, store: dict[str, bytes], calls: list[S3Call]) -> None:
        self.store = store
        self.calls = calls
        self.regions: list[str] = []
        self.invalidations: list[str] = []

    def session(self, region: str = "us-east-1") -> boto3.Session:
        session = boto3.Session(
            aws_access_key_id="AKIAKEYLESSUNIT00000",
            aws_secret_access_key="not-a-secret",
            region_name=region,
        )
        session.events.register("before-parameter-build.s3", self._record)
        session.events.register("before-call.s3", self._s3)
        session.events.register("before-call.cloudfront", self._cloudfront)
        return session

    def _record(self, model: Any, params: Mapping[str, Any], **_: Any) -> None:
        """The call's parameters, as S3 would receive them."""
        if model.name == "CopyObject":
            # botocore has turned CopySource into the header's text by now.
            headers = {"x-amz-copy-source": str(params["CopySource"])}
            if params.get("ACL"):
                headers["x-amz-acl"] = params["ACL"]
            self.calls.append(
                S3Call(operation="CopyObject", bucket=BUCKET, key=params["Key"], headers=headers)
            )
        elif model.name == "DeleteObjects":
            keys = tuple(item["Key"] for item in params["Delete"]["Objects"])
            self.calls.append(S3Call(operation="DeleteObjects", bucket=BUCKET, keys=keys))
        else:
            raise AssertionError(f"unexpected control-plane call {model.name}")

    def _s3(self, model: Any, request_signer: Any, **_: Any) -> Any:
        self.regions.append(request_signer.region_name)
        call = self.calls[-1]
        if call.operation == "CopyObject":
            assert call.key is not None
            return _answer({"CopyObjectResult": {"ETag": f'"{md5(self.store[call.key])}"'}})
        for key in call.keys:
            self.store.pop(key, None)
        return _answer({"Deleted": [{"Key": key} for key in call.keys], "Errors": []})

    def _cloudfront(self, model: Any, params: Mapping[str, Any], **_: Any) -> Any:
        self.invalidations.append(model.name)
        return _answer({"Invalidation": {"Id": "I2J0I21PCUYOIK"}})


def _answer(parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    parsed["ResponseMetadata"] = {"HTTPStatusCode": 200}
    return AWSResponse("https://s3.example", 200, HTTPHeaders(), None), parsed


@pytest.fixture
def real_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No endpoint override: the deploy resolves S3 as it does against AWS."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_CLOUDFRONT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


def _write(root: Path, files: Mapping[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def _request(root: Path, **kw: Any) -> DeployRequest:
    return DeployRequest(
        local_dir=root, target=Target.parse(f"s3://{BUCKET}/{PREFIX}"), part_size=PART_SIZE, **kw
    )


def test_a_deploys_calls_are_all_allowed_by_the_preset(real_aws: None, tmp_path: Path) -> None:
    site = tmp_path / "site"
    files = {
        "index.html": b"<h1>home</h1>",
        "about.html": b"<h1>about</h1>",
        "big.bin": b"x" * 3000,
    }
    _write(site, files)
    store: dict[str, bytes] = {}
    calls: list[S3Call] = []
    control = ControlPlane(store, calls)

    def plane(config: DataPlaneConfig) -> RecordingS3:
        return RecordingS3(store, calls, config.part_size)

    deploy(_request(site), session=control.session(), data_plane=plane)
    # Headers change (copied in place), a file goes (deleted), the changes are invalidated.
    (site / "about.html").unlink()
    rules = HeaderPolicy(rules=[Rule.parse("index.html:cache-control=no-cache")])
    result = deploy(
        _request(
            site,
            headers=rules,
            delete=True,
            max_delete_percent=100,
            invalidation=Invalidation(distribution_id="E2QWRUHEXAMPLE"),
        ),
        session=control.session(),
        data_plane=plane,
    )
    assert (result.copied, result.deleted, result.invalidation_id) == (1, 1, "I2J0I21PCUYOIK")

    operations = {call.operation for call in calls}
    assert operations == {
        "GetObject",
        "ListObjectsV2",
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "CopyObject",
        "DeleteObjects",
    }
    assert all(
        call.query["prefix"] == PREFIX for call in calls if call.operation == "ListObjectsV2"
    )
    assert {call.key for call in calls if call.operation == "GetObject"} == {PREFIX + MANIFEST_NAME}
    assert refusals(preset(), calls) == []
    assert control.invalidations == ["CreateInvalidation"]
    # Without --allow-delete, the delete is the one refusal.
    assert refusals(preset(allow_delete=False), calls) == [
        f"DeleteObjects {BUCKET}: s3:DeleteObject on arn:aws:s3:::{BUCKET}/www/about.html"
    ]


def test_the_bucket_region_comes_from_s3s_answer_not_head_bucket(
    real_aws: None, tmp_path: Path
) -> None:
    _write(tmp_path, {"index.html": b"<h1>home</h1>", "old.html": b"old"})
    store: dict[str, bytes] = {"www/old.html": b"old", "www/gone.html": b"gone"}
    calls: list[S3Call] = []
    control = ControlPlane(store, calls)
    configs: list[DataPlaneConfig] = []

    class Moved(RecordingS3):
        def get_object(self, key: str, *, limit: int) -> bytes | None:
            raise WrongRegionError("the bucket is in region eu-west-1", region="eu-west-1")

    def plane(config: DataPlaneConfig) -> RecordingS3:
        configs.append(config)
        kind = Moved if len(configs) == 1 else RecordingS3
        return kind(store, calls, config.part_size)

    result = deploy(
        _request(tmp_path, delete=True, max_delete_percent=100),
        session=control.session("us-east-1"),
        data_plane=plane,
    )
    assert result.deleted == 1
    assert [c.endpoint.region for c in configs] == ["us-east-1", "eu-west-1"]
    assert configs[1].endpoint.host(BUCKET) == f"{BUCKET}.s3.eu-west-1.amazonaws.com"
    # The copy in place (old.html's headers are adopted) and the delete: signed for the bucket's.
    assert [c.operation for c in calls if c.operation in ("CopyObject", "DeleteObjects")] == [
        "CopyObject",
        "DeleteObjects",
    ]
    assert control.regions == ["eu-west-1", "eu-west-1"]


@pytest.mark.parametrize(
    ("status", "body", "header", "region"),
    [
        (301, b"<Error><Code>PermanentRedirect</Code></Error>", "eu-west-1", "eu-west-1"),
        (307, b"", "ap-south-1", "ap-south-1"),
        (
            400,
            b"<Error><Code>AuthorizationHeaderMalformed</Code><Region>eu-central-1</Region></Error>",
            None,
            "eu-central-1",
        ),
        (403, b"<Error><Code>AccessDenied</Code></Error>", "eu-west-1", None),
        (404, b"<Error><Code>NoSuchBucket</Code></Error>", None, None),
    ],
)
def test_bucket_region_from_error_answers(
    status: int, body: bytes, header: str | None, region: str | None
) -> None:
    assert region_from_answer(status, body, header) == region
