"""The planner: content comparison, reasons, safety refusals, and properties over any remote."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyless.deploy.headers import HeaderPolicy, Rule
from keyless.deploy.local_tree import Filters, crc64nvme_hex
from keyless.deploy.manifest import MANIFEST_NAME
from keyless.deploy.plan import (
    MIB,
    DeleteRefusedError,
    PlanOptions,
    Reason,
    RemoteObject,
    build_plan,
    candidate_part_sizes,
    normalize_prefix,
)
from keyless.errors import UsageError
from tests.unit.deploy.fakes import local_files, md5, multipart_etag

POLICY = HeaderPolicy()


def _digest(key: str, policy: HeaderPolicy = POLICY) -> str:
    return policy.for_key(key).digest()


def _remote(key: str, data: bytes, *, known: bool = True, prefix: str = "") -> RemoteObject:
    return RemoteObject(
        key=prefix + key, size=len(data), etag=md5(data), headers=_digest(key) if known else None
    )


def test_new_changed_unchanged_and_extra() -> None:
    files, digests = local_files({"a.html": b"A", "b.css": b"B2", "c.js": b"C"})
    remote = [_remote("b.css", b"B1"), _remote("c.js", b"C"), _remote("old.txt", b"x")]
    plan = build_plan(files, remote, options=PlanOptions(), headers=POLICY, digests=digests)
    assert [(u.key, u.reason) for u in plan.uploads] == [
        ("a.html", Reason.NEW),
        ("b.css", Reason.CHANGED),
    ]
    assert [u.key for u in plan.unchanged] == ["c.js"]
    assert plan.deletes == ()
    assert [(s.key, s.why) for s in plan.skipped] == [("old.txt", "not in LOCAL_DIR (no --delete)")]


def test_same_size_edit_is_found_by_content() -> None:
    files, digests = local_files({"index.html": b"hello"})
    plan = build_plan(
        files,
        [_remote("index.html", b"jello")],
        options=PlanOptions(),
        headers=POLICY,
        digests=digests,
    )
    assert [(u.key, u.reason) for u in plan.uploads] == [("index.html", Reason.CHANGED)]


def test_size_difference_reads_nothing() -> None:
    files, digests = local_files({"a": b"12345"})
    build_plan(
        files, [_remote("a", b"1234")], options=PlanOptions(), headers=POLICY, digests=digests
    )
    assert digests.reads == 0


def test_new_files_are_not_hashed() -> None:
    files, digests = local_files({f"f{i}": b"x" for i in range(10)})
    build_plan(files, [], options=PlanOptions(), headers=POLICY, digests=digests)
    assert digests.reads == 0


@pytest.mark.parametrize("part_size", [8 * MIB, 5 * MIB, 16 * MIB, 7 * MIB])
def test_multipart_etag_from_other_tools_is_recognised(part_size: int) -> None:
    data = bytes(range(256)) * (20 * MIB // 256)
    files, digests = local_files({"big.bin": data})
    remote = RemoteObject(
        key="big.bin",
        size=len(data),
        etag=multipart_etag(data, part_size),
        headers=_digest("big.bin"),
    )
    plan = build_plan(files, [remote], options=PlanOptions(), headers=POLICY, digests=digests)
    assert plan.uploads == ()
    assert len(plan.unchanged) == 1


def test_multipart_etag_of_other_content_is_changed() -> None:
    data = b"a" * (9 * MIB)
    other = b"b" * (9 * MIB)
    files, digests = local_files({"big.bin": data})
    remote = RemoteObject(key="big.bin", size=len(data), etag=multipart_etag(other, 8 * MIB))
    plan = build_plan(files, [remote], options=PlanOptions(), headers=POLICY, digests=digests)
    assert [u.reason for u in plan.uploads] == [Reason.CHANGED]


def test_etag_that_is_no_md5_uses_the_manifest_md5() -> None:
    # SSE-KMS: the ETag is opaque; the manifest bound the MD5 to it.
    files, digests = local_files({"a.txt": b"same"})
    remote = RemoteObject(
        key="a.txt", size=4, etag="0" * 32, md5=md5(b"same"), headers=_digest("a.txt")
    )
    plan = build_plan(files, [remote], options=PlanOptions(), headers=POLICY, digests=digests)
    assert plan.uploads == ()
    opaque = RemoteObject(key="a.txt", size=4, etag="0" * 32, headers=_digest("a.txt"))
    plan = build_plan(files, [opaque], options=PlanOptions(), headers=POLICY, digests=digests)
    assert [u.reason for u in plan.uploads] == [Reason.CHANGED]


def test_a_recorded_crc_decides_without_any_md5() -> None:
    # The manifest bound the object's CRC64NVME to its ETag: the planner reads the file for its
    # CRC only, and keeps the CRC for the next manifest.
    files, digests = local_files({"a.txt": b"same", "b.txt": b"news"})
    remote = [
        RemoteObject(
            key=key,
            size=4,
            etag=md5(b"same"),
            crc64nvme=crc64nvme_hex(b"same"),
            headers=_digest(key),
        )
        for key in ("a.txt", "b.txt")
    ]
    plan = build_plan(files, remote, options=PlanOptions(), headers=POLICY, digests=digests)
    assert digests.reads == 2
    assert digests.md5_reads == 0
    (unchanged,) = plan.unchanged
    assert (unchanged.key, unchanged.crc64nvme) == ("a.txt", crc64nvme_hex(b"same"))
    # A different CRC is a change; nothing of that read is kept (it vouches for nothing).
    (upload,) = plan.uploads
    assert (upload.key, upload.reason, upload.md5, upload.crc64nvme) == (
        "b.txt",
        Reason.CHANGED,
        None,
        None,
    )


def test_an_md5_or_multipart_read_yields_the_crc_for_the_manifest() -> None:
    big = bytes(range(256)) * (9 * MIB // 256)
    files, digests = local_files({"a.txt": b"same", "big.bin": big, "c.txt": b"new!"})
    remote = [
        _remote("a.txt", b"same"),
        RemoteObject(
            key="big.bin",
            size=len(big),
            etag=multipart_etag(big, 8 * MIB),
            headers=_digest("big.bin"),
        ),
        _remote("c.txt", b"old!"),
    ]
    plan = build_plan(files, remote, options=PlanOptions(), headers=POLICY, digests=digests)
    assert {u.key: u.crc64nvme for u in plan.unchanged} == {
        "a.txt": crc64nvme_hex(b"same"),
        "big.bin": crc64nvme_hex(big),
    }
    # A changed file's MD5 and CRC come from one read: its early entry may record both.
    (upload,) = plan.uploads
    assert (upload.md5, upload.crc64nvme) == (md5(b"new!"), crc64nvme_hex(b"new!"))


def test_header_change_alone_is_a_headers_upload() -> None:
    files, digests = local_files({"index.html": b"<p>"})
    remote = [_remote("index.html", b"<p>")]
    policy = HeaderPolicy(rules=[Rule.parse("*.html:cache-control=no-cache")])
    plan = build_plan(files, remote, options=PlanOptions(), headers=policy, digests=digests)
    (upload,) = plan.uploads
    assert upload.reason is Reason.HEADERS
    assert upload.remote_etag == md5(b"<p>")
    assert upload.headers.cache_control == "no-cache"
    assert plan.upload_bytes == 0


def test_unknown_headers_are_adopted_once() -> None:
    files, digests = local_files({"a.js": b"x"})
    plan = build_plan(
        files,
        [_remote("a.js", b"x", known=False)],
        options=PlanOptions(),
        headers=POLICY,
        digests=digests,
    )
    assert [u.reason for u in plan.uploads] == [Reason.HEADERS]


def test_prefix_and_manifest_and_markers() -> None:
    files, digests = local_files({"a": b"1"})
    remote = [
        _remote("a", b"1", prefix="site/"),
        RemoteObject(key="site/" + MANIFEST_NAME, size=10, etag="e"),
        RemoteObject(key="site/dir/", size=0, etag=md5(b"")),
        RemoteObject(key="other/x", size=1, etag="e"),
    ]
    options = PlanOptions(prefix="site/", delete=True)
    plan = build_plan(files, remote, options=options, headers=POLICY, digests=digests)
    assert plan.uploads == ()
    assert plan.deletes == ()
    assert plan.remote_count == 1
    assert [(s.key, s.why) for s in plan.skipped] == [("site/dir/", "folder marker")]


def test_normalize_prefix() -> None:
    assert normalize_prefix("") == ""
    assert normalize_prefix("/") == ""
    assert normalize_prefix("site") == "site/"
    assert normalize_prefix("/a/b/") == "a/b/"


def test_empty_local_dir_is_refused() -> None:
    with pytest.raises(UsageError, match="LOCAL_DIR is empty"):
        build_plan([], [], options=PlanOptions(), headers=POLICY, digests=local_files({})[1])


def test_all_excluded_is_refused() -> None:
    files, digests = local_files({"a.log": b"1"}, excluded=frozenset({"a.log"}))
    with pytest.raises(UsageError, match="only excluded files"):
        build_plan(files, [], options=PlanOptions(), headers=POLICY, digests=digests)


def test_nfc_collision_is_refused() -> None:
    files, digests = local_files({"a": b"1"})
    with pytest.raises(UsageError, match="same name"):
        build_plan(files + files, [], options=PlanOptions(), headers=POLICY, digests=digests)


def test_delete_guard_names_the_count() -> None:
    files, digests = local_files({"keep": b"k"})
    remote = [_remote("keep", b"k")] + [_remote(f"gone{i}", b"g") for i in range(3)]
    with pytest.raises(DeleteRefusedError) as caught:
        build_plan(files, remote, options=PlanOptions(delete=True), headers=POLICY, digests=digests)
    assert "refusing to delete 3 of 4 objects (75%)" in str(caught.value)
    assert caught.value.exit_code == 2
    forced = build_plan(
        files, remote, options=PlanOptions(delete=True, force=True), headers=POLICY, digests=digests
    )
    assert len(forced.deletes) == 3
    raised = build_plan(
        files,
        remote,
        options=PlanOptions(delete=True, max_delete_percent=80),
        headers=POLICY,
        digests=digests,
    )
    assert len(raised.deletes) == 3


def test_candidate_part_sizes() -> None:
    assert candidate_part_sizes(20 * MIB, 3)[0] == 8 * MIB
    assert 5 * MIB in candidate_part_sizes(20 * MIB, 4)
    assert 7 * MIB in candidate_part_sizes(20 * MIB, 3)
    assert candidate_part_sizes(20 * MIB, 1)[0] == 64 * MIB
    assert all(-(-20 * MIB // size) == 2 for size in candidate_part_sizes(20 * MIB, 2))
    assert len(candidate_part_sizes(100 * MIB, 2)) <= 6
    assert candidate_part_sizes(10, 5) == []


# --- properties over any remote state ---------------------------------------------------------

KEYS = ["index.html", "a b.css", "ü/x.js", "tmp/t.log", "tmp/keep.txt", "x+y%#.txt", "d/e/f.svg"]
FILTERS = Filters(exclude=("*.log", "tmp/*"), include=("tmp/keep*",))
EXCLUDED = frozenset(k for k in KEYS if FILTERS.excluded(k))
PREFIX = "p/"


@dataclass
class Stored:
    data: bytes
    etag: str
    headers: str | None


content = st.binary(min_size=0, max_size=6)
how = st.sampled_from(["single", "multipart", "opaque"])


@st.composite
def remote_states(draw: st.DrawFn) -> dict[str, Stored]:
    state: dict[str, Stored] = {}
    for key in draw(st.lists(st.sampled_from(KEYS), unique=True)):
        data = draw(content)
        kind = draw(how)
        etag = {
            "single": md5(data),
            "multipart": multipart_etag(data, 8 * MIB),
            "opaque": "f" * 32,
        }[kind]
        known = draw(st.sampled_from([None, "stale", "right"]))
        headers = {None: None, "stale": "0" * 16, "right": _digest(key)}[known]
        state[key] = Stored(data=data, etag=etag, headers=headers)
    return state


def _listing(state: dict[str, Stored]) -> list[RemoteObject]:
    return [
        RemoteObject(key=PREFIX + k, size=len(s.data), etag=s.etag, headers=s.headers)
        for k, s in sorted(state.items())
    ]


def _apply(plan_uploads: object, state: dict[str, Stored], local: dict[str, bytes]) -> None:
    from keyless.deploy.plan import Plan

    assert isinstance(plan_uploads, Plan)
    for upload in plan_uploads.uploads:
        rel = upload.key.removeprefix(PREFIX)
        data = local[rel]
        state[rel] = Stored(data=data, etag=md5(data), headers=upload.headers.digest())
    for delete in plan_uploads.deletes:
        del state[delete.key.removeprefix(PREFIX)]


@settings(max_examples=200, deadline=None)
@given(
    local=st.dictionaries(st.sampled_from(KEYS), content, min_size=1),
    remote=remote_states(),
    delete=st.booleans(),
)
def test_applying_the_plan_makes_remote_equal_local(
    local: dict[str, bytes], remote: dict[str, Stored], delete: bool
) -> None:
    if all(k in EXCLUDED for k in local):
        return
    before = dict(remote)
    files, digests = local_files(local, excluded=EXCLUDED)
    options = PlanOptions(prefix=PREFIX, delete=delete, force=True, filters=FILTERS)
    plan = build_plan(files, _listing(remote), options=options, headers=POLICY, digests=digests)
    if not delete:
        assert plan.deletes == ()
    touched = {u.key.removeprefix(PREFIX) for u in plan.uploads} | {
        d.key.removeprefix(PREFIX) for d in plan.deletes
    }
    assert not touched & EXCLUDED
    _apply(plan, remote, local)
    wanted = {k: v for k, v in local.items() if k not in EXCLUDED}
    for key, data in wanted.items():
        assert remote[key].data == data
        assert remote[key].headers == _digest(key)
    extra = {k for k in remote if k not in EXCLUDED} - wanted.keys()
    if delete:
        assert not extra
    else:
        assert extra == {k for k in before if k not in EXCLUDED} - wanted.keys()
    for key in EXCLUDED:
        assert remote.get(key) == before.get(key)
    # Converged: planning again changes nothing.
    again = build_plan(files, _listing(remote), options=options, headers=POLICY, digests=digests)
    assert again.uploads == ()
    assert again.deletes == ()


@settings(max_examples=200, deadline=None)
@given(
    local=st.dictionaries(st.sampled_from(KEYS), content, min_size=1),
    remote=remote_states(),
    limit=st.sampled_from([0.0, 10.0, 50.0, 100.0]),
)
def test_delete_guard_holds(
    local: dict[str, bytes], remote: dict[str, Stored], limit: float
) -> None:
    if all(k in EXCLUDED for k in local):
        return
    files, digests = local_files(local, excluded=EXCLUDED)
    options = PlanOptions(prefix=PREFIX, delete=True, max_delete_percent=limit, filters=FILTERS)
    considered = {k for k in remote if k not in EXCLUDED}
    doomed = considered - set(local)
    if doomed and len(doomed) * 100.0 > limit * len(considered):
        with pytest.raises(DeleteRefusedError, match=f"refusing to delete {len(doomed)} of"):
            build_plan(files, _listing(remote), options=options, headers=POLICY, digests=digests)
        return
    plan = build_plan(files, _listing(remote), options=options, headers=POLICY, digests=digests)
    assert {d.key.removeprefix(PREFIX) for d in plan.deletes} == doomed
    assert len(plan.deletes) * 100.0 <= limit * max(plan.remote_count, 1)
