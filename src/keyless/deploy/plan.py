"""The deploy planner, pure: a local walk and a remote listing in, a ``Plan`` out (uploads with
their reason, deletes, unchanged, skipped). It reads file contents only through ``Digests``.

How content is compared (cheapest sufficient evidence first, never time stamps):

1. Different size: changed, nothing is read.
2. Same size, and the manifest (``deploy.manifest``) holds the object's CRC64NVME for exactly the
   listed ETag: compare the local CRC64NVME with it (no MD5 is computed: the CRC costs about 1%
   of an MD5's CPU). The manifest records a CRC only from a read that the ETag vouches for (see
   ``Comparison``), so this step trusts no more than steps 3-4 did when it was recorded.
3. Same size, and the manifest holds the object's MD5 for exactly the listed ETag: compare the
   local MD5 with it.
4. Same size, single-part ETag (32 hex digits): S3 sets it to the body's MD5, so compare the
   local MD5 with it. This covers objects uploaded by any tool in one PUT.
5. Same size, multipart ETag ``<md5 of part md5s>-N``: recompute it locally for the part sizes
   that can yield N parts: keyless' own, the common tool defaults (8 MiB for the AWS CLI, boto3
   and s3transfer, 5 MiB for rclone, 16 MiB, 64 MiB) and every whole MiB that gives N parts, at
   most ``DEPLOY_MAX_PART_SIZE_GUESSES`` of them, all in one read of the file.
6. Nothing matched (e.g. SSE-KMS, whose ETag is not an MD5, or an exotic part size): treat as
   changed. One re-upload later the manifest binds the MD5 to the new ETag, so it happens once.

Why not a content hash in object metadata alone: ListObjectsV2 does not return metadata, so it
costs one HEAD per object on every run (20,000 requests for a 20,000-file site). The ETag comes
free with the listing; the manifest covers what the ETag cannot say, headers included: a header
change is detected without any request, and an object whose headers keyless does not know (written
by another tool) is copied in place once with keyless' headers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from keyless.compat import StrEnum
from keyless.deploy.headers import HeaderPolicy, ObjectHeaders
from keyless.deploy.local_tree import Digest, Filters, LocalFile, PartDigests
from keyless.deploy.manifest import MANIFEST_NAME
from keyless.errors import UsageError
from keyless.limits import (
    DEFAULT_MAX_DELETE_PERCENT,
    DEPLOY_MAX_PART_SIZE_GUESSES,
)

MIB = 1 << 20
#: keyless' multipart part size (and threshold); S3 allows 5 MiB..5 GiB per part.
DEFAULT_PART_SIZE = 8 * MIB
#: Part sizes other tools use by default: AWS CLI/boto3/s3transfer 8 MiB, rclone 5 MiB, others.
COMMON_PART_SIZES = (8 * MIB, 5 * MIB, 16 * MIB, 64 * MIB, 15 * MIB, 100 * MIB)


class Digests(Protocol):
    def digest(self, file: LocalFile) -> Digest: ...

    def crc64nvme(self, file: LocalFile) -> str: ...

    def multipart_etags(self, file: LocalFile, part_sizes: Sequence[int]) -> PartDigests: ...


class Reason(StrEnum):
    NEW = "new"
    CHANGED = "changed"
    HEADERS = "headers"


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteObject:
    """One listed object; ``md5``, ``crc64nvme`` and ``headers`` are known only from a manifest
    entry."""

    key: str
    size: int
    etag: str
    md5: str | None = None
    crc64nvme: str | None = None
    headers: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Upload:
    key: str
    file: LocalFile
    reason: Reason
    headers: ObjectHeaders
    #: The local MD5 when the planner computed it (same-size objects); None otherwise.
    md5: str | None = None
    #: The local CRC64NVME from the read that gave ``md5`` (``CHANGED``), or the one proven equal
    #: to the object's (``HEADERS``); None otherwise. ``remote.entry_of`` says when it is kept.
    crc64nvme: str | None = None
    #: For ``HEADERS``: the content is already there, so a server-side copy in place will do.
    remote_etag: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Delete:
    key: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Unchanged:
    key: str
    etag: str
    md5: str | None
    headers: str
    #: Proven by this plan's comparison (or recorded by an earlier one); None if not known.
    crc64nvme: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Skipped:
    key: str
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanOptions:
    prefix: str = ""
    delete: bool = False
    max_delete_percent: float = DEFAULT_MAX_DELETE_PERCENT
    force: bool = False
    filters: Filters = field(default_factory=Filters)
    part_size: int = DEFAULT_PART_SIZE


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    uploads: tuple[Upload, ...]
    deletes: tuple[Delete, ...]
    unchanged: tuple[Unchanged, ...]
    skipped: tuple[Skipped, ...]
    local_count: int
    remote_count: int

    @property
    def upload_bytes(self) -> int:
        return sum(u.file.size for u in self.uploads if u.reason is not Reason.HEADERS)

    def to_json(self) -> dict[str, Any]:
        return {
            "uploads": [
                {
                    "key": u.key,
                    "reason": str(u.reason),
                    "size": u.file.size,
                    "headers": dict(u.headers.http()),
                }
                for u in self.uploads
            ],
            "deletes": [{"key": d.key, "size": d.size} for d in self.deletes],
            "unchanged": len(self.unchanged),
            "skipped": [{"key": s.key, "why": s.why} for s in self.skipped],
            "local": self.local_count,
            "remote": self.remote_count,
        }


class DeleteRefusedError(UsageError):
    """The delete guard: more than ``--max-delete`` percent of the remote objects would go."""

    kind = "delete-refused"

    def __init__(self, *, would_delete: int, remote: int, limit: float) -> None:
        percent = 100.0 * would_delete / remote
        super().__init__(
            f"refusing to delete {would_delete} of {remote} objects ({percent:.0f}%), "
            f"more than --max-delete {limit:g}%",
            remedy=(
                "Check LOCAL_DIR and the S3 prefix: a wrong folder deletes the live site.\n"
                "If the deletion is intended, pass --force or a higher --max-delete."
            ),
        )
        self.would_delete = would_delete
        self.remote = remote
        self.limit = limit


def refuse_empty(*, has_excluded: bool) -> None:
    """The refusal of a LOCAL_DIR with nothing to deploy (a failed build must not empty a site)."""
    why = "has only excluded files" if has_excluded else "is empty"
    raise UsageError(
        f"LOCAL_DIR {why}: refusing to deploy nothing",
        remedy="Check that the build ran and that LOCAL_DIR points at its output.",
    )


def normalize_prefix(prefix: str) -> str:
    """``site`` and ``/site/`` both mean the keys under ``site/``; empty means the whole bucket."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def build_plan(
    local: Iterable[LocalFile],
    remote: Iterable[RemoteObject],
    *,
    options: PlanOptions,
    headers: HeaderPolicy,
    digests: Digests,
) -> Plan:
    """Compare ``local`` (relative keys) with ``remote`` (full keys under ``options.prefix``).

    Raises ``UsageError`` for an empty LOCAL_DIR or two files with the same NFC name, and
    ``DeleteRefusedError`` when the delete guard holds.
    """
    prefix = options.prefix
    filters = options.filters
    files: dict[str, LocalFile] = {}
    skipped: list[Skipped] = []
    for file in local:
        if file.excluded:
            skipped.append(Skipped(key=prefix + file.key, why="excluded"))
        elif file.key == MANIFEST_NAME:
            skipped.append(Skipped(key=prefix + file.key, why="reserved for keyless' manifest"))
        elif file.key in files:
            raise UsageError(
                f"two files in LOCAL_DIR have the same name {file.key!r} once in Unicode NFC",
                remedy="Rename one of them; S3 keys and URLs use the NFC form.",
            )
        else:
            files[file.key] = file
    if not files:
        refuse_empty(has_excluded=bool(skipped))

    uploads: list[Upload] = []
    deletes: list[Delete] = []
    unchanged: list[Unchanged] = []
    seen: set[str] = set()
    remote_count = 0
    for obj in remote:
        rel = obj.key[len(prefix) :] if obj.key.startswith(prefix) else None
        if rel is None or rel == MANIFEST_NAME:
            continue
        if rel == "" or rel.endswith("/"):
            skipped.append(Skipped(key=obj.key, why="folder marker"))
            continue
        if filters.excluded(rel):
            skipped.append(Skipped(key=obj.key, why="excluded"))
            continue
        remote_count += 1
        match = files.get(rel)
        if match is None:
            if options.delete:
                deletes.append(Delete(key=obj.key, size=obj.size))
            else:
                skipped.append(Skipped(key=obj.key, why="not in LOCAL_DIR (no --delete)"))
            continue
        seen.add(rel)
        file = match
        wanted = headers.for_key(rel)
        compared = _same_content(file, obj, digests, options.part_size)
        if not compared.same:
            uploads.append(
                Upload(
                    key=obj.key,
                    file=file,
                    reason=Reason.CHANGED,
                    headers=wanted,
                    md5=compared.md5,
                    crc64nvme=compared.crc64nvme,
                )
            )
        elif obj.headers != wanted.digest():
            uploads.append(
                Upload(
                    key=obj.key,
                    file=file,
                    reason=Reason.HEADERS,
                    headers=wanted,
                    md5=compared.md5,
                    crc64nvme=compared.crc64nvme,
                    remote_etag=obj.etag,
                )
            )
        else:
            unchanged.append(
                Unchanged(
                    key=obj.key,
                    etag=obj.etag,
                    md5=obj.md5,
                    headers=obj.headers,
                    crc64nvme=compared.crc64nvme,
                )
            )
    for rel, file in files.items():
        if rel not in seen:
            uploads.append(
                Upload(key=prefix + rel, file=file, reason=Reason.NEW, headers=headers.for_key(rel))
            )

    if deletes and not options.force:
        percent = 100.0 * len(deletes) / remote_count
        if percent > options.max_delete_percent:
            raise DeleteRefusedError(
                would_delete=len(deletes), remote=remote_count, limit=options.max_delete_percent
            )
    return Plan(
        uploads=tuple(sorted(uploads, key=lambda u: u.key)),
        deletes=tuple(deletes),
        unchanged=tuple(unchanged),
        skipped=tuple(skipped),
        local_count=len(files),
        remote_count=remote_count,
    )


@dataclass(frozen=True, slots=True)
class Comparison:
    """Whether a file's bytes equal an object's, and what the read found.

    ``crc64nvme`` is the local CRC when it is either proven equal to the object's (``same``), or
    comes from the same read as ``md5``: a manifest entry may then record it beside an ETag that
    is that MD5. A CRC from any other read is never kept, so a recorded CRC always describes the
    bytes its ETag names.
    """

    same: bool
    md5: str | None = None
    crc64nvme: str | None = None


_DIFFERENT = Comparison(same=False)


def _same_content(
    file: LocalFile, obj: RemoteObject, digests: Digests, part_size: int
) -> Comparison:
    if file.size != obj.size:
        return _DIFFERENT
    if obj.crc64nvme is not None:
        crc = digests.crc64nvme(file)
        return Comparison(same=True, crc64nvme=crc) if crc == obj.crc64nvme else _DIFFERENT
    etag = obj.etag
    if obj.md5 is None and "-" in etag:
        _, _, count = etag.partition("-")
        sizes = candidate_part_sizes(file.size, int(count), part_size) if count.isdigit() else []
        # keyless' own part size first: one read settles every object keyless uploaded.
        for batch in (sizes[:1], sizes[1:]):
            if not batch:
                continue
            found = digests.multipart_etags(file, batch)
            if etag in found.etags.values():
                return Comparison(same=True, crc64nvme=found.crc64nvme)
        return _DIFFERENT
    read = digests.digest(file)
    return Comparison(same=(obj.md5 or etag) == read.md5, md5=read.md5, crc64nvme=read.crc64nvme)


def candidate_part_sizes(size: int, parts: int, own: int = DEFAULT_PART_SIZE) -> list[int]:
    """Part sizes that split ``size`` bytes into exactly ``parts`` parts, likeliest first."""

    def fits(part_size: int) -> bool:
        return part_size > 0 and -(-size // part_size) == parts

    found: list[int] = []
    for candidate in (own, *COMMON_PART_SIZES):
        if fits(candidate) and candidate not in found:
            found.append(candidate)
    if parts > 0:
        low = max(1, -(-size // parts) // MIB)
        for mib in range(low, low + DEPLOY_MAX_PART_SIZE_GUESSES + 1):
            if fits(mib * MIB) and mib * MIB not in found:
                found.append(mib * MIB)
    return found[:DEPLOY_MAX_PART_SIZE_GUESSES]
