"""The files that ship keyless into pipelines are what they claim: the pipe's Dockerfile passes
hadolint, its pipe.yml and README list exactly the variables keyless reads, every workflow passes
actionlint, and the release workflow publishes with trusted publishing and provenance.

Not run here (no docker daemon, no PyPI, no GitLab): the image build and the publishing
themselves; the release workflow builds the image and runs its entry point before pushing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from keyless.deploy.pipe import PIPE_IMAGE, S3_DEPLOY_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PIPE = ROOT / "pipe"
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
#: Seconds a linter may take on a busy machine.
LINT_TIMEOUT_SECONDS = 120


def _lint(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the venv's own linters
        list(argv), capture_output=True, text=True, timeout=LINT_TIMEOUT_SECONDS, check=False
    )


def test_the_pipe_dockerfile_passes_hadolint() -> None:
    done = _lint(str(BIN / "hadolint"), str(PIPE / "Dockerfile"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_pipe_image_is_the_wheel_on_slim_python_as_a_user() -> None:
    text = (PIPE / "Dockerfile").read_text(encoding="utf-8")
    (base,) = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert base == "python:3.12-slim"
    assert "COPY dist/*.whl" in text
    assert "pip install --no-cache-dir /tmp/wheels/*.whl" in text
    (user,) = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user not in ("root", "0")
    assert 'ENTRYPOINT ["keyless", "pipe", "aws-s3-deploy"]' in text


def test_pipe_yml_has_the_metadata_and_exactly_the_variables_keyless_reads() -> None:
    meta = yaml.safe_load((PIPE / "pipe.yml").read_text(encoding="utf-8"))
    assert {"name", "image", "description", "repository", "maintainer", "variables", "tags"} <= set(
        meta
    )
    assert meta["image"] == f"{PIPE_IMAGE}:1"
    declared = [
        (v["name"], v["required"], v.get("default"), v["description"]) for v in meta["variables"]
    ]
    assert declared == [(v.name, v.required, v.default, v.meaning) for v in S3_DEPLOY_VARIABLES]


def test_the_pipe_readme_table_is_the_variables() -> None:
    text = (PIPE / "README.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    expected = [
        f"| `{v.name}` | {v.origin} | {'yes' if v.required else 'no'} |"
        f" {f'`{v.default}`' if v.default else ''} | {v.meaning} |"
        for v in S3_DEPLOY_VARIABLES
    ]
    assert rows == expected


def test_every_workflow_passes_actionlint() -> None:
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    workflows += sorted((ROOT / "examples" / "github").glob("*.yml"))
    assert RELEASE in workflows
    done = _lint(str(BIN / "actionlint"), *map(str, workflows))
    assert done.returncode == 0, done.stdout + done.stderr


def _steps(job: dict[str, Any]) -> list[str]:
    return [str(step.get("uses", step.get("run", ""))) for step in job["steps"]]


def test_the_release_publishes_with_trusted_publishing_and_provenance() -> None:
    workflow = yaml.safe_load(RELEASE.read_text(encoding="utf-8"))
    # PyYAML reads the key `on` as True (YAML 1.1).
    assert workflow[True] == {"push": {"tags": ["v*"]}}
    assert workflow["permissions"] == {"contents": "read"}
    jobs = workflow["jobs"]
    assert "make dist" in _steps(jobs["build"])
    assert "make test" in _steps(jobs["test"])
    pypi = jobs["pypi"]
    assert set(pypi["needs"]) == {"build", "test"}
    assert pypi["environment"]["name"] == "pypi"
    assert pypi["permissions"] == {"id-token": "write"}
    (publish,) = [s for s in pypi["steps"] if "pypa/gh-action-pypi-publish" in s.get("uses", "")]
    assert "with" not in publish  # no password, no token: trusted publishing
    release = jobs["github-release"]
    assert any("actions/attest-build-provenance" in s for s in _steps(release))
    assert any(s.startswith("gh release create") and "dist/*" in s for s in _steps(release))
    image = "\n".join(_steps(jobs["pipe-image"]))
    assert "docker build -f pipe/Dockerfile" in image
    assert "docker push" in image
