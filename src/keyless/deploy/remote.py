"""The bucket as the data plane reads it: the listing under the prefix, and the manifest keyless
keeps beside the objects (what it knows of each one's MD5 and headers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from keyless.deploy import manifest
from keyless.deploy.plan import RemoteObject, Upload
from keyless.deploy.request import Target
from keyless.deploy.transfer import DataPlane
from keyless.errors import AccessDeniedError, AwsError, NetworkError


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
            crc64nvme=entry.crc64nvme if entry else None,
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


def entry_of(upload: Upload, etag: str, *, copied: bool = False) -> manifest.Entry:
    """The manifest's entry for ``upload`` stored with ``etag`` (its MD5 only when it differs).

    Its CRC64NVME is kept only where ``etag`` vouches for the read the CRC came from: a
    single-part upload whose ETag is that read's MD5, or a copy in place (``copied``: the source
    was the object proven equal, ``CopySourceIfMatch``). A multipart upload's ETag says nothing
    of a read made before it, so its entry has none until a later deploy proves its bytes.
    """
    md5 = upload.md5 if upload.md5 != etag else None
    vouched = copied or (upload.md5 is not None and upload.md5 == etag)
    return manifest.Entry(
        etag=etag,
        md5=md5,
        headers=upload.headers.digest(),
        crc64nvme=upload.crc64nvme if vouched else None,
    )
