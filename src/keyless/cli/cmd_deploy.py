"""``keyless deploy``: sync a build folder to S3 by content, safely, then invalidate CloudFront."""

from __future__ import annotations

import argparse
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from keyless.cli.cmd_assume import add_exchange_options, exchange
from keyless.cli.console import Console
from keyless.cli.main import EXIT_OK, Subparsers
from keyless.deploy.plan import Plan, Reason
from keyless.errors import KeylessError, UsageError
from keyless.exchange import assumed_line
from keyless.limits import DEFAULT_CONCURRENCY, DEFAULT_MAX_DELETE_PERCENT
from keyless.textsafe import escape, safe_lines

if TYPE_CHECKING:
    import boto3

    from keyless.aws.sts import TemporaryCredentials
    from keyless.deploy.apply import (
        DeployRequest,
        DeployResult,
    )
    from keyless.deploy.environment import EnvironmentSession


#: Makes the session without --role-arn (credentials, region, endpoint). From
#: the environment alone when it decides everything (no boto3 to load: keyless.deploy.environment).
def _session(**kwargs: Any) -> boto3.Session | EnvironmentSession:
    from keyless.deploy.environment import environment_session

    found = environment_session(region_name=kwargs.get("region_name"))
    if found is not None:
        return found
    from keyless.aws import clients

    return clients.session(region=kwargs.get("region_name"))


session_factory: Callable[..., boto3.Session | EnvironmentSession] = _session
#: Exchange options that mean nothing without --role-arn, and their defaults.
_EXCHANGE_ONLY = {
    "--session-name": ("session_name", None),
    "--duration": ("duration", None),
    "--expect-account": ("expect_account", None),
    "--ci": ("ci", "auto"),
    "--audience": ("audience", None),
    "--token-file": ("token_file", None),
    "--token-env": ("token_env", None),
}
#: Invalidation paths a dry run lists (all are in --json).
_PATHS_SHOWN = 10
#: Seconds between two redraws of the terminal progress line.
PROGRESS_INTERVAL_SECONDS = 0.1

_EPILOG = """\
Compares by content, not by time: a rebuild that writes the same bytes sends nothing, an edit
that keeps the size is still found. Files are compared with the S3 ETag (MD5, or the multipart
ETag recomputed) and with a small manifest keyless keeps under the prefix
(.keyless-manifest.json.gz) that also records each object's CRC64NVME (later runs compare it and
compute no MD5) and headers, so a header change alone updates the object in place.

Safety: an empty or missing LOCAL_DIR is refused; nothing is deleted without --delete, never before
every upload succeeded, and never more than --max-delete percent of the objects unless --force.
Excluded paths are never uploaded nor deleted. Uploads carry a CRC32 checksum that S3 verifies.

Headers: Content-Type from the extension (web types, charset=utf-8 for text); app.js.br and
app.css.gz are served as JavaScript/CSS with Content-Encoding br/gzip. Rules apply in order, the
last match wins, an empty value removes the header:
  --rule 'assets/*:cache-control=public, max-age=31536000, immutable'
  --rule 'index.html:cache-control=no-cache'

Credentials: with --role-arn, this job's OIDC token is first traded for the role's credentials
exactly as `keyless assume` does it (the token options, session name, retries, --expect-account;
never a fall-back to stored keys), and the deploy signs with them. A deploy that outlasts the
session renews it by exchanging a fresh token from the same source; when it cannot (a fixed
token that has expired), it stops before the credentials expire, deletes nothing, and says so
(--duration asks for a longer session). Without --role-arn, the
standard AWS configuration (variables, profiles, web identity). AWS_ENDPOINT_URL /
AWS_ENDPOINT_URL_S3 point it at another S3 (e.g. the local stack).

Permissions: exactly what `keyless provision --s3-deploy BUCKET/PREFIX [--allow-delete]` grants:
s3:ListBucket for the prefix (every listing sends prefix=PREFIX/), s3:GetObject, s3:PutObject and
s3:AbortMultipartUpload under it (s3:DeleteObject with --delete). The bucket's region comes from
S3's own answer, not from HeadBucket. --acl also needs s3:PutObjectAcl, which the preset leaves out.

--dry-run lists each upload with the headers it would set, each delete, and the invalidation it
would create (distribution and paths); --json has them too (plan.uploads[].headers, invalidation).
The summary counts skipped objects by reason (excluded, not in LOCAL_DIR without --delete, ...).

--invalidate ID runs after the uploads and deletes: if CloudFront refuses it (no such
distribution, or the role may not invalidate it), the upload summary comes first, then the error
naming the distribution, and the exit code is 2 although the objects are deployed.

Exit codes: 0 deployed (or planned, with --dry-run); 2 refused or failed, or deployed but not
invalidated.
"""


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "deploy",
        help="sync a folder to S3 by content (safe delete, headers, CloudFront invalidation)",
        description="Deploy LOCAL_DIR to s3://BUCKET[/PREFIX]: upload what changed, by content.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("local_dir", metavar="LOCAL_DIR", type=Path, help="the build output")
    parser.add_argument("destination", metavar="s3://BUCKET[/PREFIX]", help="where to deploy")
    parser.add_argument(
        "--delete", action="store_true", help="delete objects that are not in LOCAL_DIR"
    )
    parser.add_argument(
        "--max-delete",
        metavar="PCT",
        type=float,
        default=DEFAULT_MAX_DELETE_PERCENT,
        help="refuse to delete more than PCT%% of the objects (default: %(default)g)",
    )
    parser.add_argument("--force", action="store_true", help="delete even above --max-delete")
    parser.add_argument("--acl", metavar="ACL", help="canned ACL, e.g. public-read")
    parser.add_argument("--cache-control", metavar="V", help="Cache-Control for every object")
    parser.add_argument("--content-encoding", metavar="V", help="Content-Encoding for every object")
    parser.add_argument("--expires", metavar="DATE", help="Expires (ISO 8601 or HTTP date)")
    parser.add_argument("--storage-class", metavar="C", help="e.g. STANDARD, INTELLIGENT_TIERING")
    parser.add_argument(
        "--metadata",
        metavar="K=V",
        action="append",
        default=[],
        help="user metadata (x-amz-meta-K) for every object; repeatable",
    )
    parser.add_argument(
        "--rule",
        metavar="GLOB:header=value",
        action="append",
        default=[],
        help="set a header on matching paths; repeatable, last match wins",
    )
    parser.add_argument(
        "--exclude", metavar="GLOB", action="append", default=[], help="skip matching paths"
    )
    parser.add_argument(
        "--include",
        metavar="GLOB",
        action="append",
        default=[],
        help="take matching paths back from the excludes",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    parser.add_argument(
        "--concurrency",
        metavar="N",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="requests in flight (default: %(default)s)",
    )
    parser.add_argument(
        "--invalidate",
        metavar="DISTRIBUTION_ID",
        help="invalidate the changed paths in this CloudFront distribution",
    )
    parser.add_argument(
        "--paths",
        metavar="P",
        nargs="+",
        default=[],
        help="with --invalidate: these paths instead of the changed ones",
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON document")
    add_exchange_options(
        parser,
        role_help="assume this role first, as keyless assume does (default: the standard AWS"
        " configuration)",
        region_help="region of STS and of the first S3 request (default: from environment)",
        session_options=False,
    )
    parser.set_defaults(handler=run)


def request_from_args(args: argparse.Namespace) -> DeployRequest:
    from keyless.deploy.apply import DeployRequest, Invalidation, Target
    from keyless.deploy.headers import HeaderPolicy, Rule, http_date
    from keyless.deploy.local_tree import Filters

    if args.paths and not args.invalidate:
        raise UsageError("--paths needs --invalidate DISTRIBUTION_ID")
    metadata: dict[str, str] = {}
    for item in args.metadata:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise UsageError(
                f"--metadata {item!r} is not K=V", remedy="Example: --metadata build=42"
            )
        metadata[name.strip().lower()] = value
    return DeployRequest(
        local_dir=args.local_dir,
        target=Target.parse(args.destination),
        headers=HeaderPolicy(
            cache_control=args.cache_control,
            content_encoding=args.content_encoding,
            expires=http_date(args.expires) if args.expires else None,
            acl=args.acl,
            storage_class=args.storage_class,
            metadata=metadata,
            rules=[Rule.parse(text) for text in args.rule],
        ),
        filters=Filters(exclude=tuple(args.exclude), include=tuple(args.include)),
        delete=args.delete,
        max_delete_percent=args.max_delete,
        force=args.force,
        dry_run=args.dry_run,
        concurrency=args.concurrency,
        invalidation=(
            Invalidation(distribution_id=args.invalidate, paths=tuple(args.paths))
            if args.invalidate
            else None
        ),
    )


def session_for(args: argparse.Namespace, console: Console) -> boto3.Session | EnvironmentSession:
    """With --role-arn: the role's credentials from this job's token (``keyless assume``'s
    exchange); without: the standard AWS configuration."""
    if not args.role_arn:
        for flag, (dest, default) in _EXCHANGE_ONLY.items():
            if getattr(args, dest) != default:
                raise UsageError(
                    f"{flag} needs --role-arn: without it the deploy uses the standard AWS"
                    " configuration and exchanges no token"
                )
        return session_factory(region_name=args.region) if args.region else session_factory()
    exchanged = exchange(args, console)
    # On stderr as `keyless assume` says it, --json or not: a CI log shows who deployed.
    console.info(assumed_line(exchanged))

    def renew() -> TemporaryCredentials:
        # The whole exchange again, a fresh token from the same source included.
        again = exchange(args, console)
        console.info("keyless: renewed: " + assumed_line(again).removeprefix("keyless: "))
        return again.assumed.credentials

    from keyless.aws.renew import RenewingSession

    renewing = RenewingSession(
        exchanged.assumed.credentials, renew, role=exchanged.assumed.role_arn
    )
    return renewing.session(region=exchanged.region)


def run(args: argparse.Namespace, console: Console) -> int:
    from keyless.deploy.apply import InvalidationFailedError

    request = request_from_args(args)
    session = session_for(args, console)
    progress = progress_for(console, json=args.json)
    try:
        result = console.seams.deploy(request, session=session, progress=progress)
    except InvalidationFailedError as failed:
        # The upload summary first: the deploy itself succeeded, and the error says so.
        progress.close()
        report(failed.result, console, json=args.json, error=failed)
        raise
    progress.close()
    report(result, console, json=args.json)
    return EXIT_OK


def report(
    result: DeployResult, console: Console, *, json: bool, error: KeylessError | None = None
) -> None:
    """The plan of a dry run and the summary, or with --json the document (``error`` in it)."""
    if json:
        document = result.to_json()
        if error is not None and document["invalidation"] is not None:
            document["invalidation"]["error"] = error.to_json()
        console.emit_json(document)
        return
    if result.dry_run:
        print_plan(result.plan, console, result)
    console.info(summary(result))


def progress_for(console: Console, *, json: bool) -> _Progress:
    """Nothing with --json, a redrawn line on a terminal, plain lines in CI logs."""
    if json:
        return _Quiet(console.stderr)
    if _is_terminal(console.stderr):
        return TerminalProgress(console.stderr)
    return _Lines(console.stderr)


def summary(result: DeployResult) -> str:
    """One line of counts; then, when objects were skipped, a line of their reasons, counted."""
    plan = result.plan
    if result.dry_run:
        data = [u for u in plan.uploads if u.reason is not Reason.HEADERS]
        text = (
            f"dry run: would upload {len(data)} ({_size(plan.upload_bytes)}), "
            f"update headers of {len(plan.uploads) - len(data)}, delete {len(plan.deletes)}; "
            f"{len(plan.unchanged)} unchanged, {len(plan.skipped)} skipped; nothing changed"
        )
        if result.distribution_id and result.invalidated_paths:
            text += f"; would invalidate {len(result.invalidated_paths)} paths"
        return text + _skipped_line(plan)
    text = (
        f"uploaded {result.uploaded} ({_size(result.bytes_sent)}), "
        f"headers updated {result.copied}, deleted {result.deleted}, "
        f"unchanged {len(plan.unchanged)}, skipped {len(plan.skipped)} "
        f"in {result.seconds:.1f} s"
    )
    if result.invalidation_id:
        text += (
            f"; CloudFront invalidation {result.invalidation_id} "
            f"({len(result.invalidated_paths)} paths)"
        )
    elif result.distribution_id and not result.invalidated_paths:
        text += f"; nothing changed, so no invalidation of {result.distribution_id}"
    return text + _skipped_line(plan)


def _skipped_line(plan: Plan) -> str:
    reasons = Counter(skipped.why for skipped in plan.skipped)
    if not reasons:
        return ""
    return "\nskipped: " + ", ".join(f"{count} {why}" for why, count in reasons.most_common())


def print_plan(plan: Plan, console: Console, result: DeployResult | None = None) -> None:
    """Each upload with the headers it would get, each delete, and the invalidation."""
    for upload in plan.uploads:
        headers = " | ".join(f"{name}: {value}" for name, value in upload.headers.http())
        console.info(f"would upload ({upload.reason}) {escape(upload.key)}")
        console.info(f"  with {escape(headers)}")
    for delete in plan.deletes:
        console.info(f"would delete {escape(delete.key)}")
    if result is not None and result.distribution_id:
        paths = result.invalidated_paths
        if paths:
            shown = " ".join(escape(path) for path in paths[:_PATHS_SHOWN])
            more = f" and {len(paths) - _PATHS_SHOWN} more" if len(paths) > _PATHS_SHOWN else ""
            console.info(
                f"would invalidate in CloudFront distribution {escape(result.distribution_id)}:"
                f" {shown}{more}"
            )
        else:
            console.info(
                f"would not invalidate CloudFront distribution {escape(result.distribution_id)}:"
                " nothing changed"
            )


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _Progress:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def planned(self, plan: Plan) -> None:
        pass

    def notice(self, text: str) -> None:
        # On stderr in every mode (--json too): stdout stays the document.
        self._stream.write(safe_lines(escape(text)) + "\n")

    def done(self, action: str, key: str, size: int, ok: bool) -> None:
        pass

    def close(self) -> None:
        pass


class _Quiet(_Progress):
    """--json: no progress lines, only notices."""


class _Lines(_Progress):
    """CI logs: one plain line per object, written as each one finishes."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._lock = threading.Lock()

    def planned(self, plan: Plan) -> None:
        self._stream.write(_plan_line(plan) + "\n")

    def done(self, action: str, key: str, size: int, ok: bool) -> None:
        verb = {"upload": "uploaded", "copy": "headers", "delete": "deleted"}.get(action, action)
        with self._lock:
            self._stream.write(safe_lines(f"{verb if ok else 'FAILED ' + action} {escape(key)}\n"))


class TerminalProgress(_Progress):
    """A terminal: one line redrawn in place with files and bytes done."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stream)
        self._clock = clock
        self._lock = threading.Lock()
        self._files = self._bytes = self._total_files = self._total_bytes = 0
        self._last = 0.0

    def planned(self, plan: Plan) -> None:
        self._total_files = len(plan.uploads) + len(plan.deletes)
        self._total_bytes = plan.upload_bytes
        self._stream.write(_plan_line(plan) + "\n")

    def done(self, action: str, key: str, size: int, ok: bool) -> None:
        with self._lock:
            self._files += 1
            self._bytes += size
            now = self._clock()
            if now - self._last >= PROGRESS_INTERVAL_SECONDS or self._files == self._total_files:
                self._last = now
                self._draw()

    def _draw(self) -> None:
        width = 30
        share = self._files / self._total_files if self._total_files else 1.0
        bar = "#" * int(share * width)
        self._stream.write(
            f"\r[{bar:<{width}}] {self._files}/{self._total_files} files, "
            f"{_size(self._bytes)}/{_size(self._total_bytes)}"
        )
        self._stream.flush()

    def close(self) -> None:
        if self._files:
            self._stream.write("\n")


def _plan_line(plan: Plan) -> str:
    data = sum(1 for u in plan.uploads if u.reason is not Reason.HEADERS)
    return (
        f"plan: {data} to upload ({_size(plan.upload_bytes)}), "
        f"{len(plan.uploads) - data} headers to update, {len(plan.deletes)} to delete, "
        f"{len(plan.unchanged)} unchanged"
    )
