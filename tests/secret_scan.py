"""The test suite's secret scanner: every secret a test mints is registered, and whatever keyless
says or leaves behind during a test is searched for them.

Registered automatically (``install()``, from the root conftest): tokens from
``tests.jwt_factory.make_token``, ``LocalIssuer.mint`` and the local stack's signing service;
every ``ObtainedToken`` keyless builds; the secret key and session token of every
``TemporaryCredentials`` and ``SigningKeys`` (botocore stubs, the local stack's STS); the body of
every private key PEM the local PKI and issuer serialise; the STS stub's constants. A test that
makes another kind of secret calls ``register(value)``.

Searched (``observe(channel, text)``): ``stdout``/``stderr`` (pytest's captured output,
``capsys.readouterr()``, ``tests.cli.helpers.run_cli`` results, a child's output read through
``communicate``), ``log`` (every log record), ``exception`` (every ``KeylessError`` built),
``argv`` (every child process started) and ``file`` (files under ``tmp_path`` that others can
read). A test that prints a secret by design says which channel with
``@pytest.mark.prints_secrets("stdout")``; anything else fails it.

Cheap by construction: only values of at least ``MIN_CHARS`` are kept, grouped by their first
``MIN_CHARS`` characters, and a text is searched for a group's members only when it contains the
group's prefix (all JWTs of one header share theirs); plain substring search throughout.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: Shorter values are not secrets worth the false positives (and every text contains "x").
MIN_CHARS = 8
#: Files under tmp_path larger than this, or past this many, are not read (test inputs such as
#: deploy trees; keyless writes its own files small).
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_FILES = 3000
CHANNELS = frozenset({"stdout", "stderr", "log", "exception", "argv", "file"})

_by_prefix: dict[str, set[str]] = {}


def register(value: str | bytes | None) -> None:
    """Remember ``value`` as a secret for the rest of the session."""
    if value is None:
        return
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    if len(text) >= MIN_CHARS:
        _by_prefix.setdefault(text[:MIN_CHARS], set()).add(text)


def register_pem(pem: bytes | str) -> None:
    """A private key's PEM: each full line of its base64 body (any one of them is a leak)."""
    text = pem.decode("ascii") if isinstance(pem, bytes) else pem
    lines = [line for line in text.splitlines() if line and not line.startswith("-----")]
    for line in lines[:-1] or lines:
        register(line)


def found_in(text: str) -> list[str]:
    """The registered secrets that occur in ``text``."""
    if len(text) < MIN_CHARS:
        return []
    return [
        secret
        for prefix, secrets in _by_prefix.items()
        if prefix in text
        for secret in secrets
        if secret in text
    ]


@dataclass
class _Test:
    allowed: frozenset[str] = frozenset()
    leaks: list[tuple[str, str]] = field(default_factory=list)
    #: Files the test's own code wrote (its inputs: a CI's token file, a fake helper program).
    inputs: set[str] = field(default_factory=set)


_current: _Test | None = None


def observe(channel: str, text: object) -> None:
    """Record a leak if ``text`` holds a registered secret and the running test does not allow
    ``channel``. Never raises: this runs inside keyless' own calls."""
    test = _current
    if test is None or channel in test.allowed or not _by_prefix:
        return
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    elif not isinstance(text, str):
        text = " ".join(map(str, text)) if isinstance(text, list | tuple) else str(text)
    for secret in found_in(text):
        test.leaks.append((channel, secret))


@functools.cache
def _abbrev(secret: str) -> str:
    return f"{secret[:6]}…({len(secret)} chars)"


def begin(allowed: Iterable[str]) -> None:
    global _current
    unknown = set(allowed) - CHANNELS
    if unknown:
        raise ValueError(f"prints_secrets: unknown channel(s) {sorted(unknown)}; use {CHANNELS}")
    _current = _Test(allowed=frozenset(allowed))


def end(tmp_path: Path | None) -> list[str]:
    """Stop observing; the leaks seen, one line each (the secret abbreviated)."""
    global _current
    test, _current = _current, None
    if test is None:
        return []
    if tmp_path is not None and "file" not in test.allowed and _by_prefix:
        for path in _loose_files(tmp_path):
            if str(path) in test.inputs:
                continue
            try:
                text = path.read_bytes().decode("utf-8", "replace")
            except OSError:
                continue
            for secret in found_in(text):
                test.leaks.append((f"file {path.relative_to(tmp_path)}", secret))
    seen = dict.fromkeys(f"{channel}: {_abbrev(secret)}" for channel, secret in test.leaks)
    return list(seen)


@contextlib.contextmanager
def scanning(allowed: Iterable[str] = (), tmp_path: Path | None = None) -> Iterator[list[str]]:
    """A scan inside a test (the scanner's own tests): the leaks land in the yielded list."""
    global _current
    outer = _current
    begin(allowed)
    found: list[str] = []
    try:
        yield found
    finally:
        found.extend(end(tmp_path))
        _current = outer


def _loose_files(root: Path) -> Iterator[Path]:
    """Regular files under ``root`` that group or others may read (mode & 0o077), bounded."""
    count = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        for name in files:
            count += 1
            if count > MAX_FILES:
                return
            path = Path(folder, name)
            try:
                info = path.lstat()
            except OSError:
                continue
            if (
                stat.S_ISREG(info.st_mode)
                and info.st_mode & 0o077
                and info.st_size <= MAX_FILE_BYTES
            ):
                yield path


# --- the hooks ------------------------------------------------------------------------------------


class _LogObserver(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if _current is None:
            return
        try:
            observe("log", record.getMessage())
            if record.exc_info and record.exc_info[1] is not None:
                observe("log", str(record.exc_info[1]))
        except Exception:  # noqa: S110 - a log record that cannot format is not a leak
            pass


def _wrap_result(owner: Any, name: str, on_result: Any) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        on_result(result)
        return result

    setattr(owner, name, wrapper)


def _wrap_init(cls: Any, on_init: Any) -> None:
    original = cls.__init__

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        on_init(self)

    cls.__init__ = init


_installed = False


def install() -> None:
    """Hook the factories and the channels, once per session."""
    global _installed
    if _installed:
        return
    _installed = True

    from keyless.aws import sts
    from keyless.ci import base
    from keyless.errors import KeylessError
    from keyless.local import issuer, issuer_keys, pki, served
    from tests import jwt_factory, sts_stub

    for value in (sts_stub.SECRET_ACCESS_KEY, sts_stub.SESSION_TOKEN):
        register(value)
    _wrap_result(jwt_factory, "make_token", register)
    _wrap_result(issuer.LocalIssuer, "mint", register)
    _wrap_result(served.RemoteTokens, "sign", register)
    _wrap_result(issuer_keys, "private_pem", register_pem)
    _wrap_result(pki, "_private_pem", register_pem)
    _wrap_init(base.ObtainedToken, lambda self: register(self.token))

    def register_keys(keys: Any) -> None:
        register(keys.secret_access_key)
        register(keys.session_token)

    _wrap_init(sts.TemporaryCredentials, register_keys)
    _wrap_init(sts.SigningKeys, register_keys)
    _wrap_init(
        KeylessError,
        lambda self: observe("exception", f"{self.message}\n{self.remedy or ''}"),
    )

    def popen_init(self: Any, *args: Any, **kwargs: Any) -> None:
        argv = args[0] if args else kwargs.get("args", ())
        observe("argv", [argv] if isinstance(argv, str | bytes | os.PathLike) else list(argv))
        original_popen_init(self, *args, **kwargs)

    original_popen_init = subprocess.Popen.__init__
    subprocess.Popen.__init__ = popen_init  # type: ignore[method-assign]

    def on_output(result: tuple[Any, Any]) -> None:
        out, err = result
        if out:
            observe("stdout", out)
        if err:
            observe("stderr", err)

    _wrap_result(subprocess.Popen, "communicate", on_output)
    _wrap_result(pytest.CaptureFixture, "readouterr", lambda r: on_output((r.out, r.err)))
    logging.getLogger().addHandler(_LogObserver())

    # A file a test writes itself is an input it hands keyless, not something keyless left
    # behind; only writes from keyless (or any other code) are judged.
    def note_input(method: Any) -> Any:
        @functools.wraps(method)
        def wrapper(self: Path, *args: Any, **kwargs: Any) -> Any:
            test = _current
            if test is not None and sys._getframe(1).f_globals.get("__name__", "").startswith(
                "tests."
            ):
                test.inputs.add(str(self))
            return method(self, *args, **kwargs)

        return wrapper

    Path.write_text = note_input(Path.write_text)  # type: ignore[method-assign]
    Path.write_bytes = note_input(Path.write_bytes)  # type: ignore[method-assign]
