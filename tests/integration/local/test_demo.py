"""`keyless demo --json`: every stage of the story runs and passes, and nothing secret is shown."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from keyless.local.demo import STAGES
from keyless.local.demo_github import GITHUB_STAGES
from tests.cli.helpers import run_cli
from tests.integration.local.provisioning import EXAMPLES, program_env

pytestmark = pytest.mark.integration


def test_every_stage_passes() -> None:
    result = run_cli(["demo", "--json"], env=program_env())
    assert result.code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [(s["stage"], s["passed"]) for s in report["stages"]] == [
        (key, True) for key, _ in STAGES
    ]
    details = {s["stage"]: s["detail"] for s in report["stages"]}
    assert "assumed-role/keyless-demo-deploy/bitbucket-site-" in details["whoami"]
    assert "AccessDenied" in details["refused"]
    # The refused token is of another repository: doctor names that component of `sub`.
    assert details["doctor"].startswith("cause repository: StringLike ")
    assert details["doctor"].endswith(":sub does not match the token's sub")
    assert details["unchanged"].startswith("0 objects sent")
    report = Path(details["audit"].rsplit("open ", 1)[1])
    assert "keyless-demo-deploy" in report.read_text()
    shutil.rmtree(report.parent)
    # The story went to stderr: the trust policy, each step's log; never a token.
    assert '"sts:AssumeRoleWithWebIdentity"' in result.stderr
    assert "+ pipe: atlassian/aws-s3-deploy" in result.stderr
    assert "eyJ" not in result.stdout + result.stderr


def test_an_expectation_that_does_not_hold_fails_the_demo(tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    shutil.copytree(EXAMPLES, examples)
    pipeline = examples / "bitbucket" / "bitbucket-pipelines.yml"
    # The pipe now deploys elsewhere than the role's prefix: STS admits the step, S3 refuses it.
    text = pipeline.read_text().replace(
        "S3_BUCKET: $S3_BUCKET", "S3_BUCKET: ${S3_BUCKET}-elsewhere"
    )
    pipeline.write_text(text)
    result = run_cli(["demo", "--examples", str(examples)], env=program_env())
    assert result.code == 1, result.stdout + result.stderr
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:-1]}
    assert rows == {
        "stack": "ok",
        "provision": "ok",
        "deploy": "FAILED",
        "whoami": "ok",
        "refused": "ok",
        "doctor": "ok",
        "unchanged": "FAILED",
        "audit": "ok",
    }
    assert "keyless demo: a stage FAILED in " in result.stdout
    report = re.search(r"; open (\S+audit\.html)", result.stderr)
    assert report is not None
    shutil.rmtree(Path(report.group(1)).parent)


def test_without_examples_the_demo_says_where_to_run_it(tmp_path: Path) -> None:
    result = run_cli(["demo", "--examples", str(tmp_path)], env=program_env())
    assert result.code == 2
    assert f"no examples folder with bitbucket/bitbucket-pipelines.yml at {tmp_path}" in (
        result.stderr
    )
    assert "leave --examples out" in result.stderr


def test_the_github_story_passes_every_stage() -> None:
    result = run_cli(["demo", "--ci", "github", "--json"], env=program_env())
    assert result.code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [(s["stage"], s["passed"]) for s in report["stages"]] == [
        (key, True) for key, _ in GITHUB_STAGES
    ]
    details = {s["stage"]: s["detail"] for s in report["stages"]}
    assert details["provision"].endswith("sub repo:octo-org/site:environment:production")
    assert "AccessDenied" in details["refused"]
    assert details["unchanged"].startswith("0 objects sent")
    # The job's log went to stderr: the workflow's steps, the doctor step of the refused run.
    assert "=== Step 4/5: Deploy" in result.stderr
    assert "=== Step 5/5: Why was the role refused?" in result.stderr
    assert "eyJ" not in result.stdout + result.stderr
