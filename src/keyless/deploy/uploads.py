"""The uploads of a deploy: large files first, each confirmed to the journal as it lands, the first
failure reported with its cause (expired credentials, a vanished file, a denied PutObject).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from keyless.deploy import manifest
from keyless.deploy.journal import Journal, ahead_jobs
from keyless.deploy.local_tree import FileDigests, FileVanishedError
from keyless.deploy.plan import Upload
from keyless.deploy.remote import entry_of
from keyless.deploy.request import Progress, Target
from keyless.deploy.session import usable
from keyless.deploy.transfer import DataPlane, PutJob, PutOutcome
from keyless.errors import AccessDeniedError, AwsError, KeylessError


def send(
    plane: DataPlane,
    data: list[Upload],
    *,
    target: Target,
    journal: Journal,
    entries: dict[str, manifest.Entry],
    credentials: object,
    part_size: int,
    progress: Progress,
) -> int:
    """Upload ``data``, recording each object that lands in ``entries`` and the journal; returns
    the bytes sent, raises for the first failure."""
    by_key = {u.key: u for u in data}

    def uploaded(outcome: PutOutcome, size: int) -> None:
        upload = by_key.get(outcome.key)
        if upload is not None and outcome.error is None and outcome.etag:
            journal.confirm(outcome.key.removeprefix(target.prefix), entry_of(upload, outcome.etag))
        progress.done("upload", outcome.key, size, outcome.error is None)

    # Credentials that end mid-deploy are renewed before a request needs them, or the deploy
    # stops before they expire (before the deletes, then): checked before each upload.
    ended: list[KeylessError] = []

    def jobs(feed: Iterable[Upload]) -> Iterator[PutJob]:
        for upload in feed:
            reason = usable(credentials)
            if reason is not None:
                ended.append(reason)
                return
            yield job(upload)

    # Large files first (stable otherwise): they take longest, so they overlap the rest.
    order = sorted(data, key=lambda u: u.file.size <= part_size)
    feed = ahead_jobs(
        order,
        journal,
        prefix=target.prefix,
        single_part_max=part_size,
        digests=FileDigests(),
        workers=os.cpu_count() or 1,
    )
    outcomes = plane.put_all(jobs(feed), on_done=uploaded)
    try:
        sent = record_uploads(data, outcomes, entries, target)
    except KeylessError as failed:
        # An upload refused for expired credentials: the credentials are the cause.
        reason = ended[0] if ended else usable(credentials)
        if reason is not None:
            raise reason from failed
        raise
    if ended:
        raise ended[0]
    return sent


def job(upload: Upload) -> PutJob:
    return PutJob(
        key=upload.key,
        path=upload.file.path,
        size=upload.file.size,
        headers=upload.headers.http(),
    )


def record_uploads(
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
            entries[rel] = manifest.keeping_crc(entry_of(upload, outcome.etag), entries.get(rel))
    if failures:
        first = failures[0]
        gone = next((o for o in failures if not os.path.isfile(by_key[o.key].file.path)), None)
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
