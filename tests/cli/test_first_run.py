"""The first run in a fresh clone: ``make`` says what it installs and roughly for how long, and
the README says how long it takes and how ``keyless`` and ``aws`` get on ``PATH``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PATH_LINE = 'export PATH="$PWD/.venv/bin:$PATH"'


def test_a_fresh_venv_is_announced_with_what_and_how_long(tmp_path: Path) -> None:
    # -n prints the recipe without running it; a VENV that does not exist is a first run.
    result = subprocess.run(  # noqa: S603 - make, the README's own entry point
        ["make", "-n", "--no-print-directory", f"VENV={tmp_path / 'venv'}", "dev"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    first = result.stdout.splitlines()[:2]
    locked = len(re.findall(r"^[A-Za-z0-9_.-]+==", (ROOT / "requirements.lock").read_text(), re.M))
    assert first[0] == (
        f'echo "make: installing keyless and the {locked} packages of requirements.lock into'
        f' {tmp_path / "venv"}"'
    )
    assert "about a minute" in first[1]


def test_the_readme_times_the_first_run_apart() -> None:
    assert "~10 s" not in README
    demo = README.split("## Try it without a cloud: `make demo`", 1)[1].split("##", 1)[0]
    assert "one-time install of `.venv`" in demo
    install = README.split("## Install and test", 1)[1].split("## ", 1)[0]
    assert re.search(r"measured: \d+ min( \d+ s)? for a fresh clone's `make demo`", install)


def test_the_readme_puts_keyless_and_aws_on_path_after_make_dev() -> None:
    install = README.split("## Install and test", 1)[1].split("## ", 1)[0]
    block = install.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    dev = next(i for i, line in enumerate(block) if line.startswith("make dev"))
    path = next(i for i, line in enumerate(block) if line.startswith(PATH_LINE))
    assert dev < path
    assert block[path + 1].startswith("keyless --help")
    # What the line puts on PATH holds both programs (this test runs from that .venv).
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "keyless").is_file()
    assert (bin_dir / "aws").is_file()
