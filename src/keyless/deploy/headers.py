"""The HTTP headers and S3 attributes of each deployed object: web content types, per-glob rules,
ACL, Expires, storage class and metadata, with a stable digest so a header change is detected.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Final

from keyless import limits
from keyless.compat import UTC
from keyless.errors import UsageError

DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"

# What browsers need to execute or render a file (WHATWG MIME Sniffing, the HTML spec for module
# scripts, the WebAssembly streaming API that requires application/wasm). Python's mimetypes
# depends on the host's /etc/mime.types, so the table is ours.
CONTENT_TYPES: Final[Mapping[str, str]] = {
    ".html": "text/html",
    ".htm": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".json": "application/json",
    ".map": "application/json",
    ".jsonld": "application/ld+json",
    ".webmanifest": "application/manifest+json",
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".ics": "text/calendar",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".apng": "image/apng",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".bmp": "image/bmp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".eot": "application/vnd.ms-fontobject",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".ogg": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".vtt": "text/vtt",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".br": "application/x-brotli",
    ".tgz": "application/gzip",
    ".pem": "application/x-pem-file",
}
#: Types that are text although not ``text/*``: they get ``; charset=utf-8`` too.
_TEXT_TYPES: Final = frozenset(
    {
        "application/json",
        "application/ld+json",
        "application/manifest+json",
        "application/xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/yaml",
        "image/svg+xml",
    }
)
#: Pre-compressed assets (``app.js.br``) are served as their inner type with this encoding.
_ENCODINGS: Final[Mapping[str, str]] = {".br": "br", ".gz": "gzip"}

#: Headers a ``--rule GLOB:header=value`` may set (lower case), besides ``x-amz-meta-*``.
RULE_HEADERS: Final = frozenset(
    {
        "cache-control",
        "content-type",
        "content-encoding",
        "content-disposition",
        "content-language",
        "expires",
    }
)
#: S3's canned ACLs (PutObject ``x-amz-acl``).
CANNED_ACLS: Final = frozenset(
    {
        "private",
        "public-read",
        "public-read-write",
        "authenticated-read",
        "aws-exec-read",
        "bucket-owner-read",
        "bucket-owner-full-control",
    }
)
#: S3 storage classes a deploy may choose (PutObject ``x-amz-storage-class``).
STORAGE_CLASSES: Final = frozenset(
    {
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "GLACIER_IR",
        "DEEP_ARCHIVE",
    }
)
_META_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# A control character an HTTP field value may not hold: RFC 9110 section 5.5 (field-value is
# VCHAR, SP, HTAB and obs-text; CR, LF and NUL must be rejected), as RFC 7230 section 3.2 before.
_FIELD_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def content_type(key: str) -> tuple[str, str | None]:
    """``(Content-Type, Content-Encoding)`` for a key, from its extension(s)."""
    name = key.rsplit("/", 1)[-1].lower()
    stem, dot, ext = name.rpartition(".")
    if not dot:
        return DEFAULT_CONTENT_TYPE, None
    ext = "." + ext
    encoding = _ENCODINGS.get(ext)
    if encoding and "." in stem:
        inner = "." + stem.rpartition(".")[2]
        # Only a web type wrapped in .br/.gz is a pre-compressed asset; data.tar.gz is an archive.
        if inner in CONTENT_TYPES and inner not in (".tar", ".gz", ".br", ".zip"):
            return _with_charset(CONTENT_TYPES[inner]), encoding
    return _with_charset(CONTENT_TYPES.get(ext, DEFAULT_CONTENT_TYPE)), None


def _with_charset(mime: str) -> str:
    if mime.startswith("text/") or mime in _TEXT_TYPES:
        return f"{mime}; charset=utf-8"
    return mime


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectHeaders:
    """Everything keyless sets on an object besides its body."""

    content_type: str
    cache_control: str | None = None
    content_encoding: str | None = None
    content_disposition: str | None = None
    content_language: str | None = None
    expires: str | None = None
    acl: str | None = None
    storage_class: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()

    def http(self) -> list[tuple[str, str]]:
        """The PutObject request headers."""
        pairs = [("Content-Type", self.content_type)]
        for name, value in (
            ("Cache-Control", self.cache_control),
            ("Content-Encoding", self.content_encoding),
            ("Content-Disposition", self.content_disposition),
            ("Content-Language", self.content_language),
            ("Expires", self.expires),
            ("x-amz-acl", self.acl),
            ("x-amz-storage-class", self.storage_class),
        ):
            if value:
                pairs.append((name, value))
        pairs.extend((f"x-amz-meta-{name}", value) for name, value in self.metadata)
        return pairs

    def digest(self) -> str:
        """A short stable fingerprint; equal digests mean equal headers."""
        return _digest(self)


@functools.lru_cache(maxsize=1024)
def _digest(headers: ObjectHeaders) -> str:
    # A site has a handful of distinct header sets, and a deploy asks once per object.
    canonical = json.dumps(headers.http(), separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """``GLOB:header=value``: for keys matching GLOB, set ``header`` (an empty value removes it)."""

    glob: str
    header: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Rule:
        glob, colon, assignment = text.partition(":")
        header, equals, value = assignment.partition("=")
        header = header.strip().lower()
        if not colon or not equals or not glob or not header:
            raise UsageError(
                f"rule {text!r} is not GLOB:header=value",
                remedy="Example: --rule 'assets/*:cache-control=public, max-age=31536000'",
            )
        if header not in RULE_HEADERS and not header.startswith("x-amz-meta-"):
            raise UsageError(
                f"rule {text!r} sets {header!r}, which a rule cannot set",
                remedy="Rules may set: " + ", ".join(sorted(RULE_HEADERS)) + ", x-amz-meta-NAME.",
            )
        if header.startswith("x-amz-meta-"):
            _check_meta_name(header.removeprefix("x-amz-meta-"))
        if header == "expires" and value:
            value = http_date(value)
        check_field_value(f"rule {text!r}", value)
        return cls(glob=glob, header=header, value=value.strip())


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderPolicy:
    """Global options first, then ``rules`` in order (a later matching rule wins)."""

    cache_control: str | None = None
    content_encoding: str | None = None
    expires: str | None = None
    acl: str | None = None
    storage_class: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    rules: Sequence[Rule] = ()
    #: One ``ObjectHeaders`` per distinct outcome, shared by every key that has it: 20,000 files
    #: of a few types then hold a few objects, not 20,000 (``limits.DEPLOY_SHARED_HEADERS_MAX``).
    _shared: dict[tuple[str, str | None, tuple[int, ...]], ObjectHeaders] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.acl is not None and self.acl not in CANNED_ACLS:
            raise UsageError(
                f"--acl {self.acl!r} is not a canned ACL",
                remedy="Use one of: " + ", ".join(sorted(CANNED_ACLS)) + ".",
            )
        if self.storage_class is not None and self.storage_class not in STORAGE_CLASSES:
            raise UsageError(
                f"--storage-class {self.storage_class!r} is not an S3 storage class",
                remedy="Use one of: " + ", ".join(sorted(STORAGE_CLASSES)) + ".",
            )
        for name, meta in self.metadata.items():
            _check_meta_name(name)
            check_field_value(f"--metadata {name}={meta!r}", meta)
        for flag, value in (
            ("--cache-control", self.cache_control),
            ("--content-encoding", self.content_encoding),
            ("--expires", self.expires),
        ):
            if value is not None:
                check_field_value(f"{flag} {value!r}", value)

    def for_key(self, key: str) -> ObjectHeaders:
        """The headers of the object whose path relative to the prefix is ``key``."""
        mime, encoding = content_type(key)
        matching = tuple(i for i, rule in enumerate(self.rules) if fnmatchcase(key, rule.glob))
        outcome = (mime, encoding, matching)
        shared = self._shared.get(outcome)
        if shared is not None:
            return shared
        headers = ObjectHeaders(
            content_type=mime,
            cache_control=self.cache_control,
            content_encoding=self.content_encoding or encoding,
            expires=self.expires,
            acl=self.acl,
            storage_class=self.storage_class,
            metadata=tuple(sorted(self.metadata.items())),
        )
        for index in matching:
            headers = _apply(headers, self.rules[index])
        if len(self._shared) < limits.DEPLOY_SHARED_HEADERS_MAX:
            self._shared[outcome] = headers
        return headers


def _apply(headers: ObjectHeaders, rule: Rule) -> ObjectHeaders:
    value = rule.value or None
    if rule.header.startswith("x-amz-meta-"):
        name = rule.header.removeprefix("x-amz-meta-")
        metadata = dict(headers.metadata)
        if value is None:
            metadata.pop(name, None)
        else:
            metadata[name] = value
        return replace(headers, metadata=tuple(sorted(metadata.items())))
    if rule.header == "content-type":
        return replace(headers, content_type=value or DEFAULT_CONTENT_TYPE)
    if rule.header == "cache-control":
        return replace(headers, cache_control=value)
    if rule.header == "content-encoding":
        return replace(headers, content_encoding=value)
    if rule.header == "content-disposition":
        return replace(headers, content_disposition=value)
    if rule.header == "content-language":
        return replace(headers, content_language=value)
    return replace(headers, expires=value)


def check_field_value(what: str, value: str) -> None:
    """Refuse a header value with a control character up front, naming where it came from
    (``what``): S3 would refuse the request at upload time, unnamed, or worse, a proxy could
    split it into two headers."""
    found = _FIELD_CONTROL.search(value)
    if found:
        raise UsageError(
            f"{what} holds the control character {found.group()!r}, which an HTTP header value"
            " cannot carry",
            remedy="Remove the line break or control character from the value.",
        )


def _check_meta_name(name: str) -> None:
    if not _META_NAME.match(name):
        raise UsageError(
            f"metadata name {name!r} must be lower-case letters, digits and '-'",
            remedy="S3 stores user metadata names in lower case; use e.g. --metadata build-id=42.",
        )


def http_date(text: str) -> str:
    """``--expires`` as an HTTP-date, from ISO 8601 (``2030-01-01T00:00:00Z``) or an HTTP-date."""
    import email.utils  # loads socket: here, so that planning a deploy stays free of it

    value = text.strip()
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            parsed = None
    if parsed is None:
        raise UsageError(
            f"expires date {text!r} is not a date",
            remedy="Use ISO 8601, e.g. --expires 2030-01-01T00:00:00Z.",
        )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return email.utils.format_datetime(parsed.astimezone(UTC), usegmt=True)
