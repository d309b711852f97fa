"""The demo's pipeline and site ship inside the package (a wheel has no checkout) and are the very
files of examples/bitbucket that people read and copy: neither can change without the other."""

from __future__ import annotations

from pathlib import Path

from keyless.local.demo import PACKAGED_EXAMPLES, PIPELINE_FILE, find_examples

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SHIPPED = ("bitbucket/bitbucket-pipelines.yml", "bitbucket/site", "github/deploy.yml")


def _files(root: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for entry in SHIPPED:
        path = root / entry
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for item in paths:
            found[item.relative_to(root).as_posix()] = item.read_bytes()
    return found


def test_the_packaged_demo_assets_are_the_examples() -> None:
    packaged, examples = _files(PACKAGED_EXAMPLES), _files(EXAMPLES)
    assert "bitbucket/site/index.html" in packaged
    drifted = sorted(set(packaged) ^ set(examples)) + sorted(
        name for name in set(packaged) & set(examples) if packaged[name] != examples[name]
    )
    # To fix: copy examples/bitbucket/bitbucket-pipelines.yml and examples/bitbucket/site/ to
    # src/keyless/local/demo_assets/bitbucket/ (or the other way round).
    assert drifted == []


def test_the_packaged_assets_hold_only_what_the_demo_ships() -> None:
    files = [p for p in PACKAGED_EXAMPLES.rglob("*") if p.is_file()]
    every = sorted(p.relative_to(PACKAGED_EXAMPLES).as_posix() for p in files)
    assert every == sorted(_files(PACKAGED_EXAMPLES))


def test_without_examples_the_demo_runs_the_packaged_pipeline() -> None:
    assert find_examples() == PACKAGED_EXAMPLES
    assert (find_examples() / PIPELINE_FILE).is_file()
