"""``keyless local run`` gives the command a private HOME (a write to ~/.aws leaves the real one
alone) and, as a GitHub job, the runner's environment files, so ``keyless assume --format
github`` works in it; what the command wrote to them is told by name, never by value."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyless.ci import github
from keyless.ci.github import GitHubScope
from keyless.local.served import StackInfo, served_stack
from tests.cli.helpers import Result, run_cli
from tests.integration.local.provisioning import KEYLESS, create_bucket, provision

pytestmark = pytest.mark.integration

REPOSITORY = "acme/site"
GITHUB_JOB = ["--ci", "github", "--repository", REPOSITORY, "--"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StackInfo, str]]:
    with served_stack(state_dir=tmp_path_factory.mktemp("state")) as (running, info):
        create_bucket(running)
        role = provision(
            running, github.PROVIDER, GitHubScope(repository=REPOSITORY), role="gh", prefix="gh"
        )
        yield info, role


def local_run(info: StackInfo, *argv: str, home: Path) -> Result:
    env = {**os.environ, "HOME": str(home)}
    return run_cli(["local", "run", "--state", str(info.state_dir), *argv], env=env)


@pytest.mark.prints_secrets("stdout")  # assume's ::add-mask:: lines name the values to mask
def test_assume_format_github_writes_to_the_jobs_github_env(
    stack: tuple[StackInfo, str], tmp_path: Path
) -> None:
    info, role = stack
    result = local_run(
        info,
        *GITHUB_JOB,
        str(KEYLESS),
        "assume",
        "--role-arn",
        role,
        "--format",
        "github",
        home=tmp_path,
    )
    assert result.code == 0, result.stderr
    masked = re.findall(r"^::add-mask::(.+)$", result.stdout, re.MULTILINE)
    assert len(masked) == 3
    assert (
        "keyless local: $GITHUB_ENV got AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN"
    ) in result.stderr
    assert "(values not shown)" in result.stderr
    for value in masked:
        assert value not in result.stderr


def test_every_environment_file_is_set_and_reported_with_values_masked(
    stack: tuple[StackInfo, str], tmp_path: Path
) -> None:
    info, _ = stack
    script = (
        "for name in GITHUB_ENV GITHUB_OUTPUT GITHUB_PATH GITHUB_STATE GITHUB_STEP_SUMMARY; do"
        ' eval "test -f \\"\\$$name\\" && test ! -s \\"\\$$name\\"" || exit 9; done;'
        " key=$(printf 's3cr3t-%s' value-42);"  # the value is not in the command line
        ' echo "deploy_key=$key" >> "$GITHUB_OUTPUT";'
        ' echo "phase=one" >> "$GITHUB_STATE";'
        ' echo /opt/tools/bin >> "$GITHUB_PATH";'
        ' echo "the key is $key" >> "$GITHUB_STEP_SUMMARY"'
    )
    result = local_run(info, *GITHUB_JOB, "bash", "-c", script, home=tmp_path)
    assert result.code == 0, result.stderr
    assert "$GITHUB_OUTPUT got deploy_key (values not shown)" in result.stderr
    assert "$GITHUB_STATE got phase (values not shown)" in result.stderr
    assert "$GITHUB_PATH got /opt/tools/bin" in result.stderr
    assert "$GITHUB_STEP_SUMMARY:\n  the key is ***" in result.stderr
    assert "s3cr3t-value-42" not in result.stderr
    assert "$GITHUB_ENV" not in result.stderr  # nothing written, nothing said


def test_an_unusable_github_env_is_named_and_the_exit_code_kept(
    stack: tuple[StackInfo, str], tmp_path: Path
) -> None:
    info, _ = stack
    script = 'echo "not a pair" >> "$GITHUB_ENV"; exit 3'
    result = local_run(info, *GITHUB_JOB, "sh", "-c", script, home=tmp_path)
    assert result.code == 3
    assert "$GITHUB_ENV is unusable (a GitHub runner would fail the step):" in result.stderr
    assert "line 1: invalid format" in result.stderr


def test_other_cis_get_no_github_files(stack: tuple[StackInfo, str], tmp_path: Path) -> None:
    info, _ = stack
    result = local_run(
        info,
        *["--ci", "gitlab", "--project", "g/p", "--"],
        "sh",
        "-c",
        'echo "${GITHUB_ENV-unset}"',
        home=tmp_path,
    )
    assert result.code == 0, result.stderr
    assert result.stdout == "unset\n"


@pytest.mark.prints_secrets("stdout")  # the job prints where it wrote its token, not the token
def test_a_write_to_aws_under_home_leaves_the_real_home_untouched(
    stack: tuple[StackInfo, str], tmp_path: Path
) -> None:
    info, _ = stack
    real_home = tmp_path / "real-home"
    real_home.mkdir()
    script = (
        f"{KEYLESS} token --write ~/.aws/web-identity-token"
        ' && test -s ~/.aws/web-identity-token && printf %s "$HOME"'
    )
    result = local_run(info, *GITHUB_JOB, "sh", "-c", script, home=real_home)
    assert result.code == 0, result.stderr
    job_home = Path(result.stdout)
    assert job_home != real_home
    assert f"HOME {job_home} (private, removed after)" in result.stderr
    assert list(real_home.iterdir()) == []
    assert not job_home.exists()
