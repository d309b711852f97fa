"""End to end with the real programs, as a person copies them: the recipe's shell snippet run by
the AWS CLI in a Bitbucket step (`keyless local run`) works for the pinned repository, is refused
for another, and breaks on a second run in the same home while keyless' replacement does not;
a GitHub workflow's deploy step assumes its role with `keyless assume` and deploys."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from keyless.ci import bitbucket, github
from keyless.ci.bitbucket import BitbucketScope
from keyless.ci.github import GitHubScope
from keyless.local.served import StackInfo, served_stack
from keyless.local.stack import RunningStack
from tests.integration.local.provisioning import (
    BUCKET,
    EXAMPLES,
    KEYLESS,
    TIMEOUT_SECONDS,
    create_bucket,
    keys,
    program_env,
    provision,
)

pytestmark = pytest.mark.integration

WORKSPACE_UUID = "5c0ffee0-0000-4000-8000-000000000001"
REPO_UUID = "7a1e0000-0000-4000-8000-00000000000a"
OTHER_REPO_UUID = "7a1e0000-0000-4000-8000-00000000000b"
PROD_UUID = "e0000000-0000-4000-8000-0000000000e1"
SCOPE = BitbucketScope(
    workspace="acme",
    workspace_uuid=WORKSPACE_UUID,
    repository_uuid=REPO_UUID,
    environment_uuid=PROD_UUID,
)
GITHUB_SCOPE = GitHubScope(repository="acme/site", environment="production")


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    stack: RunningStack
    info: StackInfo
    bitbucket_role: str
    github_role: str


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Account]:
    with served_stack(state_dir=tmp_path_factory.mktemp("state")) as (stack, info):
        bitbucket_role = provision(
            stack, bitbucket.PROVIDER, SCOPE, role="bb-site-deploy", prefix="bb"
        )
        github_role = provision(
            stack, github.PROVIDER, GITHUB_SCOPE, role="gh-site-deploy", prefix="gh"
        )
        create_bucket(stack)
        yield Account(
            stack=stack, info=info, bitbucket_role=bitbucket_role, github_role=github_role
        )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository's checkout: the site to deploy."""
    folder = tmp_path / "checkout"
    shutil.copytree(EXAMPLES / "bitbucket" / "site", folder / "site")
    return folder


def local_run(
    account: Account, scope: Sequence[str], command: Sequence[str], *, home: Path, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """``keyless local run --ci ... -- COMMAND`` as a person runs it, HOME being ``home``."""
    home.mkdir(exist_ok=True)
    argv = [str(KEYLESS), "local", "run", "--state", str(account.info.state_dir), "--home"]
    argv += [str(home), *scope]
    return subprocess.run(  # noqa: S603 - fixed programs; the token travels in env only
        [*argv, "--", *command],
        env=program_env(HOME=str(home)),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def bitbucket_step(repository: str) -> list[str]:
    return [
        "--ci",
        "bitbucket",
        "--workspace",
        "acme",
        "--workspace-uuid",
        WORKSPACE_UUID,
        "--repository-uuid",
        repository,
        "--environment-uuid",
        PROD_UUID,
        "--deployment",
        "production",
    ]


def snippet(account: Account, name: str) -> list[str]:
    """A snippet of examples/bitbucket run as a step's script: each line fails the step."""
    variables = [f"AWS_OIDC_ROLE_ARN={account.bitbucket_role}", f"S3_BUCKET={BUCKET}/bb"]
    return ["env", *variables, "bash", "-e", str(EXAMPLES / "bitbucket" / name)]


def assumed(account: Account, role: str) -> str:
    return f"arn:aws:sts::{account.stack.account_id}:assumed-role/{role}/"


def test_the_recipe_snippet_works_for_the_pinned_repository_only(
    account: Account, repo: Path, tmp_path: Path
) -> None:
    command = snippet(account, "recipe-snippet.sh")
    done = local_run(account, bitbucket_step(REPO_UUID), command, home=tmp_path / "a", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert assumed(account, "bb-site-deploy") in done.stdout  # aws sts get-caller-identity
    assert f"upload: site/index.html to s3://{BUCKET}/bb/index.html" in done.stdout
    assert keys(account.stack, "bb") == ["index.html"]

    other = bitbucket_step(OTHER_REPO_UUID)
    refused = local_run(account, other, command, home=tmp_path / "b", cwd=repo)
    assert refused.returncode != 0
    assert (
        "An error occurred (AccessDenied) when calling the AssumeRoleWithWebIdentity operation"
    ) in refused.stderr
    assert "eyJ" not in done.stdout + done.stderr + refused.stdout + refused.stderr


def test_the_recipe_snippet_breaks_on_a_second_run_in_the_same_home_keyless_does_not(
    account: Account, repo: Path, tmp_path: Path
) -> None:
    step = bitbucket_step(REPO_UUID)
    home = tmp_path / "home"
    recipe = snippet(account, "recipe-snippet.sh")
    first = local_run(account, step, recipe, home=home, cwd=repo)
    assert first.returncode == 0, first.stderr
    second = local_run(account, step, recipe, home=home, cwd=repo)
    assert second.returncode != 0
    token_file = home / ".aws" / "web-identity-token"
    if os.geteuid() == 0:
        # root ignores the 0400: the second token is appended, botocore sends both as one.
        assert len(token_file.read_text().splitlines()) == 2
        assert "InvalidIdentityToken" in second.stderr
    else:
        # anyone else cannot even append to the file the first run made read-only.
        assert "Permission denied" in second.stderr
    assert "eyJ" not in second.stdout + second.stderr

    keyless = snippet(account, "keyless-snippet.sh")
    for _ in range(2):
        done = local_run(account, step, keyless, home=home, cwd=repo)
        assert done.returncode == 0, done.stderr
        assert assumed(account, "bb-site-deploy") in done.stdout
        assert f"upload: site/index.html to s3://{BUCKET}/bb/index.html" in done.stdout
        assert "eyJ" not in done.stdout + done.stderr


def test_a_github_workflow_deploy_step_with_keyless_assume(
    account: Account, repo: Path, tmp_path: Path
) -> None:
    workflow = yaml.safe_load((EXAMPLES / "github" / "deploy.yml").read_text(encoding="utf-8"))
    (deploy,) = [s for s in workflow["jobs"]["deploy"]["steps"] if s.get("name") == "Deploy"]
    # The step's `env:` from the repository's variables, then its `run:` as GitHub runs it.
    variables = [f"DEPLOY_ROLE_ARN={account.github_role}", f"SITE_BUCKET={BUCKET}/gh"]
    assert {v.split("=")[0] for v in variables} == set(deploy["env"])
    command = ["env", *variables, "bash", "-e", "-c", deploy["run"]]
    job = ["--ci", "github", "--repository", "acme/site", "--environment", "production"]
    done = local_run(account, job, command, home=tmp_path / "home", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert f"arn:     {assumed(account, 'gh-site-deploy')}github-acme-site-" in done.stdout
    assert keys(account.stack, "gh") == ["404.html", "css/site.css", "index.html"]

    # The workflow's environment is what the role pins: the same step for `staging` is refused.
    staging = ["--ci", "github", "--repository", "acme/site", "--environment", "staging"]
    refused = local_run(account, staging, command, home=tmp_path / "home", cwd=repo)
    assert refused.returncode != 0
    assert "AccessDenied" in refused.stderr
