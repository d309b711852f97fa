"""File names to S3 keys (``keyless.deploy.local_tree.walk`` and ``plan.normalize_prefix``), on
names a build can really contain: unicode, NFD, backslashes, control characters, dots, bytes that
are not UTF-8. Every key is a valid S3 key, stays under the prefix, and the mapping is injective
(names equal once in NFC share a key, and ``build_plan`` refuses those).

Small by default; a longer run: ``KEYLESS_FUZZ_EXAMPLES=2000 .venv/bin/pytest tests/unit/fuzz``.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from keyless.deploy.local_tree import walk
from keyless.deploy.plan import normalize_prefix
from keyless.errors import KeylessError
from keyless.limits import S3_MAX_KEY_BYTES

EXAMPLES = int(os.environ.get("KEYLESS_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_TRICKY = ["..", ".", "\\", "\\..\\", "%2e%2e", "\x1b[31m", "\n", "\r", "\t", "\x7f", "e\u0301",
           "\u00e9", "\u0958", "\ufeff", "\u202e", "\udcff", "\udc80", " ", "~", "::"]  # fmt: skip
segment = (
    st.lists(
        st.sampled_from(_TRICKY)
        | st.text(st.characters(codec="utf-8", blacklist_characters="/\x00"), max_size=6),
        min_size=1,
        max_size=5,
    )
    .map("".join)
    .filter(lambda name: name not in {"", ".", ".."} and len(os.fsencode(name)) <= 200)
)
relative_paths = st.lists(st.lists(segment, min_size=1, max_size=3), min_size=1, max_size=6)
prefixes = st.sampled_from(["", "site", "/site/", "a/b", "deep/" * 20, "ü/ñ"])


def _valid_s3_key(key: str) -> bool:
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return 0 < len(encoded) <= S3_MAX_KEY_BYTES


@FUZZ
@given(relative_paths, prefixes)
def test_keys_are_valid_stay_under_the_prefix_and_are_injective(
    paths: list[list[str]], raw_prefix: str
) -> None:
    root = Path(tempfile.mkdtemp(prefix="keys-"))
    try:
        made: set[tuple[str, ...]] = set()
        for parts in paths:
            try:
                folder = root.joinpath(*parts[:-1])
                folder.mkdir(parents=True, exist_ok=True)
                root.joinpath(*parts).write_bytes(b"x")
                made.add(tuple(parts))
            except OSError:
                continue  # a name both a file and a folder here: not a tree a build makes
        assume(made)
        files = {tuple(p.relative_to(root).parts) for p in root.rglob("*") if p.is_file()}
        refused: str | None = None
        try:
            walked = list(walk(root))
        except KeylessError as exc:
            refused = str(exc)
        if refused is not None:
            # Only a name that is not UTF-8 (or too long) is refused, in one line.
            assert "\n" not in refused
            assert "not valid UTF-8" in refused or "longer than" in refused
            return
        prefix = normalize_prefix(raw_prefix)
        assert prefix == "" or (prefix.endswith("/") and not prefix.startswith("/"))
        keys: dict[str, set[tuple[str, ...]]] = {}
        for file in walked:
            full = prefix + file.key
            relative = tuple(Path(file.path).relative_to(root).parts)
            assert _valid_s3_key(file.key)
            assert file.key == unicodedata.normalize("NFC", "/".join(relative))
            assert full.startswith(prefix)
            # No segment a URL resolver would fold: the key cannot climb out of the prefix.
            assert all(part not in {"", ".", ".."} for part in file.key.split("/"))
            assert posixpath.normpath("/" + full) == "/" + full.rstrip("/")
            keys.setdefault(file.key, set()).add(relative)
        assert {rel for rels in keys.values() for rel in rels} == files
        for key, rels in keys.items():
            # Injective up to NFC; walk's callers (build_plan) refuse the NFC twins.
            assert len({unicodedata.normalize("NFC", "/".join(r)) for r in rels}) == 1, key
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_name_that_nfc_lengthens_is_measured_after_nfc(tmp_path: Path) -> None:
    # U+0958 is a composition exclusion: NFC writes it as two code points, 3 bytes become 6.
    # Three folders of 255 bytes and a file of 85 of them are 1,023 bytes on disk and 1,278 as a
    # key, past S3's 1,024.
    folder = "a" * 255
    deep = tmp_path.joinpath(folder, folder, folder)
    deep.mkdir(parents=True)
    (deep / ("\u0958" * 85)).write_bytes(b"x")
    try:
        keys = [file.key for file in walk(tmp_path)]
    except KeylessError as exc:
        assert "longer than S3's 1024-byte keys" in str(exc)  # noqa: PT017
    else:
        raise AssertionError(f"a {len(keys[0].encode())}-byte key was accepted")
