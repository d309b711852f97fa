"""The distribution as a user gets it: ``python -m build`` makes the sdist and, from it, the wheel;
twine finds nothing to fix; the wheel with ``keyless[local]`` goes into a fresh virtual
environment (the locked versions, by hash; no checkout, no editable install on its path) and, run
from an empty folder, ``keyless --version``, ``keyless trust lint`` and ``keyless demo`` work."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import keyless

pytestmark = [pytest.mark.dist, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
#: Generous hang guards (a cold build, a cold pip cache on a busy machine).
BUILD_TIMEOUT_SECONDS = 600
INSTALL_TIMEOUT_SECONDS = 900
RUN_TIMEOUT_SECONDS = 300


def _run(
    argv: Sequence[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> str:
    done = subprocess.run(  # noqa: S603 - the test's own programs
        list(argv),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"{argv}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def runtime_closure(extras: tuple[str, ...] = ("local",)) -> set[str]:
    """The names of keyless' runtime dependencies with ``extras``, transitively, as installed in
    this (locked) environment: what a user's ``pip install keyless[local]`` would bring."""
    found: set[str] = set()
    pending: list[tuple[str, frozenset[str]]] = [("keyless", frozenset(extras))]
    while pending:
        name, wanted = pending.pop()
        for text in importlib.metadata.distribution(name).requires or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is not None and not any(
                marker.evaluate({"extra": extra}) for extra in (*wanted, "")
            ):
                continue
            key = canonicalize_name(requirement.name)
            if key not in found:
                found.add(key)
                pending.append((requirement.name, frozenset(requirement.extras)))
    return found


def lock_entries(names: set[str]) -> Iterator[str]:
    """The entries of requirements.lock (requirement, marker, hashes) for ``names``."""
    entry: list[str] = []
    for line in [*LOCK.read_text(encoding="utf-8").splitlines(), ""]:
        if line and line[0].isspace():
            if not line.lstrip().startswith("#"):
                entry.append(line)
            continue
        if entry:
            name = re.split(r"[=<>; \[]", entry[0], maxsplit=1)[0]
            if canonicalize_name(name) in names:
                yield "\n".join(entry).rstrip(" \\")
        entry = [line] if line and not line.startswith("#") else []


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        cwd=ROOT,
        timeout=BUILD_TIMEOUT_SECONDS,
    )
    return out


def test_build_makes_an_sdist_and_a_wheel_twine_accepts(built: Path) -> None:
    version = keyless.__version__
    names = sorted(path.name for path in built.iterdir())
    assert names == [f"keyless-{version}-py3-none-any.whl", f"keyless-{version}.tar.gz"]
    report = _run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, built.iterdir())],
        cwd=built,
        timeout=RUN_TIMEOUT_SECONDS,
    )
    assert report.count("PASSED") == 2, report


def test_the_wheel_metadata_is_release_quality(built: Path) -> None:
    import zipfile

    (wheel,) = built.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        files = archive.namelist()
        info = f"keyless-{keyless.__version__}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
    assert f"{info}/licenses/LICENSE" in files
    assert "keyless/local/demo_assets/bitbucket/bitbucket-pipelines.yml" in files
    assert "keyless/local/demo_assets/bitbucket/site/index.html" in files
    assert "keyless/local/demo_assets/github/deploy.yml" in files
    assert "keyless/py.typed" in files
    headers = metadata.split("\n\n", 1)[0]
    assert f"Version: {keyless.__version__}" in headers.splitlines()
    assert "Requires-Python: >=3.10" in headers
    assert "License-Expression: Apache-2.0" in headers
    assert "Description-Content-Type: text/markdown" in headers
    for minor in (10, 11, 12, 13):
        assert f"Classifier: Programming Language :: Python :: 3.{minor}" in headers
    assert "Project-URL: Source, https://github.com/keyless-dev/keyless" in headers
    assert "Requires-Dist: moto[server]<6,>=5.0; extra == 'local'" in headers
    # The long description is the README itself.
    assert metadata.split("\n\n", 1)[1].strip() == (ROOT / "README.md").read_text().strip()


def test_the_wheel_runs_from_a_fresh_venv_in_an_empty_folder(built: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # uv (locked in the dev tools) installs from its cache in seconds where pip takes minutes;
    # it installs the same hash-pinned files into a plain venv, which is what is under test.
    uv = str(Path(sys.executable).with_name("uv"))
    _run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        cwd=tmp_path,
        timeout=RUN_TIMEOUT_SECONDS,
    )
    python = venv / "bin" / "python"
    needed = runtime_closure()
    assert {"boto3", "cryptography", "pyjwt", "moto", "flask"} <= needed
    assert "pytest" not in needed
    pinned = tmp_path / "runtime.lock"
    pinned.write_text("\n".join(lock_entries(needed)) + "\n", encoding="utf-8")
    install = [uv, "pip", "install", "--quiet", "--python", str(python), "--no-deps"]
    _run(
        [*install, "--require-hashes", "-r", str(pinned)],
        cwd=tmp_path,
        timeout=INSTALL_TIMEOUT_SECONDS,
    )
    (wheel,) = built.glob("*.whl")
    _run([*install, f"{wheel}[local]"], cwd=tmp_path, timeout=INSTALL_TIMEOUT_SECONDS)
    check = _run(
        [uv, "pip", "check", "--python", str(python)], cwd=tmp_path, timeout=RUN_TIMEOUT_SECONDS
    )
    assert "All installed packages are compatible" in check, check

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["LANG"] = "C.UTF-8"
    keyless_bin = str(venv / "bin" / "keyless")

    where = _run(
        [str(python), "-c", "import keyless; print(keyless.__file__)"],
        cwd=empty,
        timeout=60,
        env=env,
    )
    assert where.strip().startswith(str(venv)), where
    assert _run([keyless_bin, "--version"], cwd=empty, timeout=60, env=env).strip() == (
        f"keyless {keyless.__version__}"
    )
    scope = ["--ci", "github", "--repository", "acme/site", "--environment", "prod"]
    scope += ["--owner-id", "1", "--repository-id", "2", "--account-id", "123456789012"]
    policy = _run([keyless_bin, "trust", "build", *scope], cwd=empty, timeout=60, env=env)
    (empty / "trust.json").write_text(policy[: policy.rindex("}") + 1], encoding="utf-8")
    lint = _run([keyless_bin, "trust", "lint", "trust.json"], cwd=empty, timeout=60, env=env)
    assert "0 at or above medium" in lint

    demo = subprocess.run(  # noqa: S603 - the installed keyless
        [keyless_bin, "demo", "--json"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert json.loads(demo.stdout)["ok"] is True
    assert sorted(p.name for p in empty.iterdir()) == ["trust.json"]
