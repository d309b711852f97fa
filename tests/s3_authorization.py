"""What IAM authorizes for an S3 request, and whether an identity policy grants it.

keyless' evaluator decides trust policies only (it requires a Principal and refuses Resource), so
permission policies are checked here: an explicit table from S3 request to IAM action, resource and
condition context (S3 API Reference, the "Permissions" notes of each operation, and the Service
Authorization Reference for Amazon S3), with conditions decided by keyless' own operator table.
The local stack cannot do this: moto ignores conditions, so ``s3:prefix`` is never checked there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from keyless.trust.glob import compile_glob
from keyless.trust.model import Effect, Policy, Statement
from keyless.trust.operators import literal_pattern, test_condition

#: Headers that make S3 authorize more than the operation's own action.
_ACL_HEADERS = (
    "x-amz-acl",
    "x-amz-grant-full-control",
    "x-amz-grant-read",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Call:
    """One S3 request as the service sees it."""

    operation: str
    bucket: str
    key: str | None = None
    query: Mapping[str, str] = field(default_factory=dict)
    #: Lower-case header names; only the ones that matter for authorization are needed.
    headers: Mapping[str, str] = field(default_factory=dict)
    #: DeleteObjects: the keys in its body.
    keys: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f"{self.bucket}/{self.key}" if self.key is not None else self.bucket
        prefix = self.query.get("prefix")
        return f"{self.operation} {where}" + (f" prefix={prefix!r}" if prefix is not None else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class Permission:
    """One authorization S3 asks IAM for: an action on a resource, with its context keys."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


# --- HTTP request -> operation ------------------------------------------------------------------


def classify(method: str, target: str, headers: Mapping[str, str]) -> S3Call:
    """The operation of a path-style request (``/BUCKET[/KEY][?QUERY]``), as S3's REST API maps
    method, path and sub-resources; ``ValueError`` for one the table does not know."""
    path, _, raw_query = target.partition("?")
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    bucket, slash, raw_key = path.lstrip("/").partition("/")
    key = unquote(raw_key) if slash and raw_key else None
    lowered = {name.lower(): value for name, value in headers.items()}
    copy = "x-amz-copy-source" in lowered
    operation: str | None = None
    if key is None:
        operation = {
            "GET": "GetBucketLocation"
            if "location" in query
            else "ListMultipartUploads"
            if "uploads" in query
            else "ListObjectsV2"
            if query.get("list-type") == "2"
            else "ListObjects",
            "HEAD": "HeadBucket",
            "POST": "DeleteObjects" if "delete" in query else None,
        }.get(method)
    elif method == "GET":
        operation = "ListParts" if "uploadId" in query else "GetObject"
    elif method == "HEAD":
        operation = "HeadObject"
    elif method == "PUT":
        if "uploadId" in query:
            operation = "UploadPartCopy" if copy else "UploadPart"
        elif not ({"acl", "tagging", "retention", "legal-hold"} & query.keys()):
            operation = "CopyObject" if copy else "PutObject"
    elif method == "POST":
        if "uploads" in query:
            operation = "CreateMultipartUpload"
        elif "uploadId" in query:
            operation = "CompleteMultipartUpload"
    elif method == "DELETE":
        operation = "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if operation is None:
        raise ValueError(f"no S3 operation in the table for {method} {target}")
    return S3Call(operation=operation, bucket=bucket, key=key, query=query, headers=lowered)


# --- operation -> what IAM is asked -------------------------------------------------------------


def _object(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def _copy_source(call: S3Call) -> Permission:
    source = unquote(call.headers["x-amz-copy-source"].split("?", 1)[0]).lstrip("/")
    bucket, _, key = source.partition("/")
    return Permission(action="s3:GetObject", resource=_object(bucket, key))


def permissions(call: S3Call) -> tuple[Permission, ...]:
    """Every permission S3 checks for ``call`` (all must be allowed)."""
    bucket_arn = f"arn:aws:s3:::{call.bucket}"
    if call.operation in ("ListObjectsV2", "ListObjects"):
        # s3:prefix is in the context only when the request names a prefix.
        context = {"s3:prefix": call.query["prefix"]} if "prefix" in call.query else {}
        return (Permission(action="s3:ListBucket", resource=bucket_arn, context=context),)
    if call.operation == "HeadBucket":
        return (Permission(action="s3:ListBucket", resource=bucket_arn),)
    if call.operation == "GetBucketLocation":
        return (Permission(action="s3:GetBucketLocation", resource=bucket_arn),)
    if call.operation == "ListMultipartUploads":
        return (Permission(action="s3:ListBucketMultipartUploads", resource=bucket_arn),)
    if call.operation == "DeleteObjects":
        # Authorized per key in the body, as s3:DeleteObject.
        return tuple(
            Permission(action="s3:DeleteObject", resource=_object(call.bucket, key))
            for key in call.keys
        )
    assert call.key is not None, call  # every other operation names an object
    target = _object(call.bucket, call.key)
    writes = ("PutObject", "CopyObject", "CreateMultipartUpload", "UploadPartCopy")
    found: list[Permission] = []
    if call.operation in ("GetObject", "HeadObject"):
        found.append(Permission(action="s3:GetObject", resource=target))
    elif call.operation in (*writes, "UploadPart", "CompleteMultipartUpload"):
        found.append(Permission(action="s3:PutObject", resource=target))
    elif call.operation == "AbortMultipartUpload":
        found.append(Permission(action="s3:AbortMultipartUpload", resource=target))
    elif call.operation == "ListParts":
        found.append(Permission(action="s3:ListMultipartUploadParts", resource=target))
    elif call.operation == "DeleteObject":
        found.append(Permission(action="s3:DeleteObject", resource=target))
    if call.operation in ("CopyObject", "UploadPartCopy"):
        found.append(_copy_source(call))
    if call.operation in writes and any(h in call.headers for h in _ACL_HEADERS):
        # "If your request includes an ACL header, you also need s3:PutObjectAcl" (PutObject).
        found.append(Permission(action="s3:PutObjectAcl", resource=target))
    if call.operation in writes and "x-amz-tagging" in call.headers:
        found.append(Permission(action="s3:PutObjectTagging", resource=target))
    return tuple(found)


# --- the identity policy --------------------------------------------------------------------------


def _matches(patterns: Sequence[str], value: str, *, case_sensitive: bool) -> bool:
    if not case_sensitive:
        value = value.lower()
        patterns = [pattern.lower() for pattern in patterns]
    return any(compile_glob(p).match(value) for p in patterns)


def _applies(statement: Statement, permission: Permission) -> bool | None:
    """True/False, or None when a condition is undecidable (never read as a match)."""
    if statement.action is not None:
        # Action names are case-insensitive, resource ARNs are not (IAM JSON policy elements).
        acts = _matches(statement.action, permission.action, case_sensitive=False)
    else:
        acts = not _matches(statement.not_action or (), permission.action, case_sensitive=False)
    if statement.resource is not None:
        on = _matches(statement.resource, permission.resource, case_sensitive=True)
    else:
        on = not _matches(statement.not_resource or (), permission.resource, case_sensitive=True)
    if not (acts and on):
        return False
    context = {key.lower(): value for key, value in permission.context.items()}
    verdict: bool | None = True
    for condition in statement.conditions or ():
        truth = test_condition(
            condition.operator,
            [literal_pattern(value) for value in condition.string_values],
            context.get(condition.key.lower()),
        )
        if truth is False:
            return False
        if truth is None:
            verdict = None
    return verdict


def allows(policy: Policy, permission: Permission) -> bool:
    """IAM's logic for one identity policy: an explicit (or undecidable) Deny wins, else an Allow
    whose action, resource and conditions all hold; nothing else allows."""
    allowed = False
    for statement in policy.statements:
        applies = _applies(statement, permission)
        if statement.effect is Effect.DENY and applies is not False:
            return False
        if statement.effect is Effect.ALLOW and applies is True:
            allowed = True
    return allowed


def refusals(policy: Policy, calls: Iterable[S3Call]) -> list[str]:
    """One line per permission of ``calls`` that ``policy`` does not grant (and per call that
    needs no permission at all, which would pass vacuously)."""
    found: list[str] = []
    for call in calls:
        needed = permissions(call)
        if not needed:
            found.append(f"{call}: no permission known")
        found.extend(
            f"{call}: {permission.action} on {permission.resource}"
            + (f" with {dict(permission.context)}" if permission.context else "")
            for permission in needed
            if not allows(policy, permission)
        )
    return found
