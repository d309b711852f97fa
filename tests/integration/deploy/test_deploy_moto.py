"""``keyless deploy`` end to end against a real moto S3 server on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import boto3
import pytest

from keyless.deploy.apply import (
    DataPlaneConfig,
    DeployRequest,
    DeployResult,
    Target,
    crt_data_plane,
    deploy,
)
from keyless.deploy.headers import HeaderPolicy, Rule
from keyless.deploy.local_tree import Digest, Filters, LocalFile, PartDigests, crc64nvme_hex
from keyless.deploy.manifest import MANIFEST_NAME
from keyless.deploy.plan import DeleteRefusedError, Digests, Plan, build_plan
from keyless.deploy.transfer import DataPlane, PutJob, PutOutcome
from keyless.errors import UsageError

pytestmark = pytest.mark.integration

SITE = {
    "index.html": b"<!doctype html><title>home</title>",
    "about/index.html": b"<!doctype html><title>about</title>",
    "assets/app.3f2a.js": b"console.log('app');",
    "assets/app.3f2a.js.br": b"\x1b\x0f\x00brotli-bytes",
    "assets/app.wasm": b"\x00asm\x01\x00\x00\x00",
    "img/logo.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    "ünï côdé/a b+c%d#e.txt": b"names round-trip",
}


def _write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _remote(bucket: str, prefix: str = "") -> dict[str, bytes]:
    s3 = boto3.client("s3")
    found: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith(MANIFEST_NAME):
                continue
            found[key.removeprefix(prefix)] = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return found


def _request(root: Path, bucket: str, **kw: Any) -> DeployRequest:
    kw.setdefault("target", Target.parse(f"s3://{bucket}/site"))
    return DeployRequest(local_dir=root, **kw)


def test_first_deploy_then_nothing_then_rebuild_then_one_edit(tmp_path: Path, bucket: str) -> None:
    _write(tmp_path, SITE)
    first = deploy(_request(tmp_path, bucket))
    assert first.uploaded == len(SITE)
    assert first.bytes_sent == sum(len(v) for v in SITE.values())
    assert _remote(bucket, "site/") == SITE

    again = deploy(_request(tmp_path, bucket))
    assert (again.uploaded, again.copied, again.bytes_sent) == (0, 0, 0)
    assert len(again.plan.unchanged) == len(SITE)

    # A rebuild writes every file anew with the same bytes (new mtimes): nothing is sent.
    for rel in SITE:
        (tmp_path / rel).unlink()
    _write(tmp_path, SITE)
    rebuilt = deploy(_request(tmp_path, bucket))
    assert (rebuilt.uploaded, rebuilt.copied) == (0, 0)

    edited = dict(SITE, **{"index.html": SITE["index.html"].replace(b"home", b"HOME")})
    _write(tmp_path, edited)
    one = deploy(_request(tmp_path, bucket))
    assert one.uploaded == 1
    assert [u.key for u in one.plan.uploads] == ["site/index.html"]
    assert _remote(bucket, "site/") == edited


def test_content_types_and_rules_are_stored(tmp_path: Path, bucket: str) -> None:
    _write(tmp_path, SITE)
    policy = HeaderPolicy(
        cache_control="max-age=300",
        storage_class="STANDARD_IA",
        metadata={"build": "42"},
        rules=[
            Rule.parse("assets/*:cache-control=public, max-age=31536000, immutable"),
            Rule.parse("index.html:cache-control=no-cache"),
        ],
    )
    deploy(_request(tmp_path, bucket, headers=policy))
    s3 = boto3.client("s3")

    def head(rel: str) -> Any:
        return s3.head_object(Bucket=bucket, Key="site/" + rel)

    assert head("index.html")["ContentType"] == "text/html; charset=utf-8"
    assert head("index.html")["CacheControl"] == "no-cache"
    assert head("about/index.html")["CacheControl"] == "max-age=300"
    js = head("assets/app.3f2a.js")
    assert js["ContentType"] == "text/javascript; charset=utf-8"
    assert js["CacheControl"] == "public, max-age=31536000, immutable"
    assert js["Metadata"] == {"build": "42"}
    assert js["StorageClass"] == "STANDARD_IA"
    br = head("assets/app.3f2a.js.br")
    assert (br["ContentType"], br["ContentEncoding"]) == ("text/javascript; charset=utf-8", "br")
    assert head("assets/app.wasm")["ContentType"] == "application/wasm"
    assert head("img/logo.svg")["ContentType"] == "image/svg+xml; charset=utf-8"


def test_header_change_alone_updates_in_place(tmp_path: Path, bucket: str) -> None:
    _write(tmp_path, SITE)
    deploy(_request(tmp_path, bucket))
    policy = HeaderPolicy(rules=[Rule.parse("*.html:cache-control=no-cache")])
    changed = deploy(_request(tmp_path, bucket, headers=policy))
    assert (changed.uploaded, changed.copied, changed.bytes_sent) == (0, 2, 0)
    head = boto3.client("s3").head_object(Bucket=bucket, Key="site/about/index.html")
    assert head["CacheControl"] == "no-cache"
    assert head["ContentType"] == "text/html; charset=utf-8"
    settled = deploy(_request(tmp_path, bucket, headers=policy))
    assert (settled.uploaded, settled.copied) == (0, 0)


def test_objects_from_other_tools_are_adopted_once(tmp_path: Path, bucket: str) -> None:
    _write(tmp_path, {"a.css": b"body{}", "b.css": b"p{}"})
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="a.css", Body=b"body{}", ContentType="binary/octet-stream")
    s3.put_object(Bucket=bucket, Key="b.css", Body=b"p{ }")
    target = Target.parse(f"s3://{bucket}")
    first = deploy(_request(tmp_path, bucket, target=target))
    assert (first.uploaded, first.copied) == (1, 1)
    assert s3.head_object(Bucket=bucket, Key="a.css")["ContentType"] == "text/css; charset=utf-8"
    second = deploy(_request(tmp_path, bucket, target=target))
    assert (second.uploaded, second.copied) == (0, 0)


def test_multipart_object_round_trips_and_is_then_unchanged(tmp_path: Path, bucket: str) -> None:
    part = 5 << 20  # S3's smallest part size keeps the test small
    data = os.urandom(part + 4096)
    (tmp_path / "big.bin").write_bytes(data)
    first = deploy(_request(tmp_path, bucket, part_size=part))
    assert first.uploaded == 1
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="site/big.bin")["Contents"]
    assert listed[0]["ETag"].strip('"').endswith("-2")
    assert _remote(bucket, "site/")["big.bin"] == data
    second = deploy(_request(tmp_path, bucket, part_size=part))
    assert (second.uploaded, second.copied) == (0, 0)
    # Without the manifest the multipart ETag is recomputed from the file.
    boto3.client("s3").delete_object(Bucket=bucket, Key="site/" + MANIFEST_NAME)
    third = deploy(_request(tmp_path, bucket, part_size=part))
    assert third.uploaded == 0


def _manifest(bucket: str) -> dict[str, list[Any]]:
    stored = boto3.client("s3").get_object(Bucket=bucket, Key="site/" + MANIFEST_NAME)
    document = json.loads(gzip.decompress(stored["Body"].read()))
    assert document["version"] == 2
    return cast("dict[str, list[Any]]", document["objects"])


class _AskedDigests:
    """The planner's ``Digests``, recording what it asks for (the reads ahead are not asked)."""

    def __init__(self, inner: Digests) -> None:
        self._inner = inner
        self.asked: list[str] = []

    def digest(self, file: LocalFile) -> Digest:
        self.asked.append("md5")
        return self._inner.digest(file)

    def crc64nvme(self, file: LocalFile) -> str:
        self.asked.append("crc")
        return self._inner.crc64nvme(file)

    def multipart_etags(self, file: LocalFile, part_sizes: Sequence[int]) -> PartDigests:
        self.asked.append("multipart")
        return self._inner.multipart_etags(file, part_sizes)


def test_the_manifest_records_crcs_and_later_deploys_compare_by_them(
    tmp_path: Path, bucket: str
) -> None:
    part = 5 << 20
    big = os.urandom(part + 4096)
    site = dict(SITE, **{"big.bin": big})
    _write(tmp_path, site)
    asked: list[list[str]] = []

    def planner(*args: Any, digests: Digests, **kw: Any) -> Plan:
        seen = _AskedDigests(digests)
        asked.append(seen.asked)
        return build_plan(*args, digests=seen, **kw)

    def run() -> DeployResult:
        return deploy(_request(tmp_path, bucket, part_size=part), planner=planner)

    run()
    crcs = {key: entry[2] for key, entry in _manifest(bucket).items()}
    # Single-part uploads: the CRC of the read whose MD5 became the ETag. The multipart upload:
    # none yet (its ETag vouches for no read made before it).
    assert crcs == {**{k: crc64nvme_hex(v) for k, v in SITE.items()}, "big.bin": None}

    run()
    assert sorted(asked[-1]) == sorted(["multipart"] + ["crc"] * len(SITE))
    assert _manifest(bucket)["big.bin"][2] == crc64nvme_hex(big)

    # From now on no MD5 is computed at all, and a same-size edit is still found.
    edited = bytearray(big)
    edited[part + 7] ^= 0xFF
    (tmp_path / "big.bin").write_bytes(bytes(edited))
    changed = run()
    assert asked[-1] == ["crc"] * len(site)
    assert [u.key for u in changed.plan.uploads] == ["site/big.bin"]
    assert _remote(bucket, "site/")["big.bin"] == bytes(edited)

    # A recorded CRC that does not match (a hostile or damaged manifest) costs an upload,
    # never a skip.
    entries = _manifest(bucket)
    entries["index.html"][2] = "0" * 16
    document = {"version": 2, "objects": entries}
    boto3.client("s3").put_object(
        Bucket=bucket,
        Key="site/" + MANIFEST_NAME,
        Body=gzip.compress(json.dumps(document).encode(), mtime=0),
    )
    resent = run()
    assert [u.key for u in resent.plan.uploads] == ["site/index.html"]
    assert _manifest(bucket)["index.html"][2] == crc64nvme_hex(SITE["index.html"])


def test_delete_guard_and_delete(tmp_path: Path, bucket: str) -> None:
    files = {f"p{i}.html": b"x" * i for i in range(10)}
    _write(tmp_path, files)
    deploy(_request(tmp_path, bucket))
    for i in range(2, 10):
        (tmp_path / f"p{i}.html").unlink()
    kept = deploy(_request(tmp_path, bucket))
    assert kept.deleted == 0
    assert len(_remote(bucket, "site/")) == 10
    with pytest.raises(DeleteRefusedError, match="refusing to delete 8 of 10 objects"):
        deploy(_request(tmp_path, bucket, delete=True))
    assert len(_remote(bucket, "site/")) == 10
    forced = deploy(_request(tmp_path, bucket, delete=True, force=True))
    assert forced.deleted == 8
    assert set(_remote(bucket, "site/")) == {"p0.html", "p1.html"}


def test_excluded_remote_objects_are_never_deleted(tmp_path: Path, bucket: str) -> None:
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="site/uploads/user.png", Body=b"png")
    _write(tmp_path, {"index.html": b"i"})
    result = deploy(
        _request(tmp_path, bucket, delete=True, force=True, filters=Filters(exclude=("uploads/*",)))
    )
    assert result.deleted == 0
    assert "uploads/user.png" in _remote(bucket, "site/")


def test_empty_folder_is_refused(tmp_path: Path, bucket: str) -> None:
    boto3.client("s3").put_object(Bucket=bucket, Key="site/index.html", Body=b"live")
    with pytest.raises(UsageError, match="LOCAL_DIR is empty"):
        deploy(_request(tmp_path, bucket, delete=True, force=True))
    assert _remote(bucket, "site/") == {"index.html": b"live"}


class _Killed(BaseException):
    """Stands for SIGKILL: no handler in keyless may swallow it."""


def _crash_after(count: int) -> Callable[[DataPlaneConfig], DataPlane]:
    """A data plane that uploads ``count`` objects, then dies."""

    def factory(config: DataPlaneConfig) -> DataPlane:
        real = crt_data_plane(config)

        class Crashing:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def put_all(
                self, jobs: Iterable[PutJob], *, on_done: Callable[[PutOutcome, int], None]
            ) -> list[PutOutcome]:
                taken = [job for _, job in zip(range(count), jobs, strict=False)]
                real.put_all(taken, on_done=on_done)
                raise _Killed

        return cast(DataPlane, Crashing())

    return factory


def test_killed_part_way_then_run_again_converges(tmp_path: Path, bucket: str) -> None:
    old = {f"old{i}.txt": b"old" for i in range(3)}
    _write(tmp_path, old)
    deploy(_request(tmp_path, bucket))
    for rel in old:
        (tmp_path / rel).unlink()
    new = {f"new{i:02}.txt": hashlib.sha256(bytes([i])).digest() for i in range(12)}
    _write(tmp_path, new)
    request = _request(tmp_path, bucket, delete=True, force=True, concurrency=2)
    with pytest.raises(_Killed):
        deploy(request, data_plane=_crash_after(5))
    remote = _remote(bucket, "site/")
    assert set(old) <= set(remote), "nothing may be deleted before every upload succeeded"
    assert 0 < len(set(new) & set(remote)) < len(new)
    again = deploy(request)
    assert again.uploaded == len(new) - 5
    assert again.deleted == len(old)
    assert _remote(bucket, "site/") == new


def test_listing_pages_through_continuation_tokens(
    tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keyless.deploy.transfer

    monkeypatch.setattr(keyless.deploy.transfer, "S3_LIST_PAGE_KEYS", 2)
    files = {f"dir {i}/ü+{i}.txt": bytes([i]) * (i + 1) for i in range(7)}
    _write(tmp_path, files)
    assert deploy(_request(tmp_path, bucket)).uploaded == 7
    again = deploy(_request(tmp_path, bucket, delete=True))
    assert (again.uploaded, again.deleted, len(again.plan.unchanged)) == (0, 0, 7)
