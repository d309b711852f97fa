"""``keyless local workflow`` on a served, provisioned stack: examples/github/deploy.yml deploys end
to end (its ``pip install keyless`` line becomes a no-op, as in test_ways_in: this checkout's
keyless is on PATH), and a job without ``id-token: write`` gets no token, its secret shown as
``***``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keyless.ci import github
from keyless.ci.github import GitHubScope
from keyless.local.served import StackInfo, served_stack
from keyless.local.stack import RunningStack
from tests import secret_scan
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

REPOSITORY = "octo-org/site"
ROOT = EXAMPLES.parent
SECRET = "wf-s3cr3t-0123456789"


@dataclass(frozen=True, slots=True, kw_only=True)
class Served:
    stack: RunningStack
    info: StackInfo
    role_arn: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("workflow")
    with served_stack(state_dir=folder / "state") as (stack, info):
        create_bucket(stack)
        scope = GitHubScope(repository=REPOSITORY, environment="production")
        role_arn = provision(stack, github.PROVIDER, scope, role="gha-deploy", prefix="gha")
        yield Served(stack=stack, info=info, role_arn=role_arn)


def workflow(served: Served, repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(KEYLESS), "local", "workflow", "--state", str(served.info.state_dir), *args]
    return subprocess.run(  # noqa: S603 - fixed programs
        argv,
        env=program_env(HOME=str(repo.parent / "home")),
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def test_the_github_example_deploys_through_the_workflow_runner(
    served: Served, tmp_path: Path
) -> None:
    repo = tmp_path / "site"
    shutil.copytree(EXAMPLES / "bitbucket" / "site", repo / "site")
    text = (EXAMPLES / "github" / "deploy.yml").read_text(encoding="utf-8")
    assert "      - run: pip install keyless\n" in text
    assert 'python-version: "3.12"' in text
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    text = text.replace("pip install keyless", "true").replace('"3.12"', f'"{here}"')
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "deploy.yml").write_text(text, encoding="utf-8")
    done = workflow(
        served,
        repo,
        ".github/workflows/deploy.yml",
        "--job",
        "deploy",
        "--repository",
        REPOSITORY,
        "--var",
        f"DEPLOY_ROLE_ARN={served.role_arn}",
        "--var",
        f"SITE_BUCKET={BUCKET}/gha/example",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Successfully set up Python {here}" in done.stdout
    assert "sub repo:octo-org/site:environment:production" in done.stdout
    assert "Skipped: `if: failure()` is false" in done.stdout
    assert done.stdout.rstrip().endswith("Job succeeded")
    assert keys(served.stack, "gha/example") == ["404.html", "css/site.css", "index.html"]


def test_without_id_token_permission_no_token_and_secrets_are_masked(
    served: Served, tmp_path: Path
) -> None:
    secret_scan.register(SECRET)
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "ci.yml").write_text(
        """\
on: push
permissions:
  id-token: write
jobs:
  deploy:
    environment: production
    permissions:
      contents: read
    steps:
      - name: Ask for a token
        id: ask
        continue-on-error: true
        env:
          PASSWORD: ${{ secrets.PASSWORD }}
        run: |
          echo "the password is $PASSWORD and ${{ secrets.PASSWORD }}"
          echo "url=${ACTIONS_ID_TOKEN_REQUEST_URL:-none}" >> "$GITHUB_OUTPUT"
          keyless token --ci github --audience sts.amazonaws.com --show-claims
      - run: echo "url ${{ steps.ask.outputs.url }} outcome ${{ steps.ask.outcome }}"
""",
        encoding="utf-8",
    )
    secrets = tmp_path / "secrets.yml"
    secrets.write_text(f"PASSWORD: {SECRET}\n", encoding="utf-8")
    secrets.chmod(0o600)
    done = workflow(
        served,
        repo,
        ".github/workflows/ci.yml",
        "--repository",
        REPOSITORY,
        "--secrets",
        str(secrets),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert "the password is *** and ***" in done.stdout
    assert "OIDC: no token" in done.stdout
    assert "url none outcome failure" in done.stdout
    assert "continue-on-error: true lets the job go on" in done.stdout


def test_keyless_own_action_runs_as_uses_dot_slash(served: Served, tmp_path: Path) -> None:
    """The repository's own action.yml, as a workflow of keyless' repository uses it: inputs from
    `with:` (the required aws-region, the keyless-only deploy inputs), outputs in `steps.*`."""
    repo = tmp_path / "keyless-repo"
    shutil.copytree(EXAMPLES / "bitbucket" / "site", repo / "site")
    shutil.copy(ROOT / "action.yml", repo / "action.yml")
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "try.yml").write_text(
        """\
on: push
permissions:
  id-token: write
  contents: read
jobs:
  deploy:
    environment: production
    steps:
      - uses: actions/checkout@v5
      - id: aws
        uses: ./
        with:
          aws-region: us-east-1
          role-to-assume: ${{ vars.DEPLOY_ROLE_ARN }}
          deploy-source: site
          deploy-target: s3://${{ vars.SITE_BUCKET }}
      - run: echo "arn=${{ steps.aws.outputs.authenticated-arn }}"
""",
        encoding="utf-8",
    )
    done = workflow(
        served,
        repo,
        ".github/workflows/try.yml",
        "--repository",
        REPOSITORY,
        "--var",
        f"DEPLOY_ROLE_ARN={served.role_arn}",
        "--var",
        f"SITE_BUCKET={BUCKET}/gha/own-action",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "arn=arn:aws:sts::" in done.stdout
    assert ":assumed-role/gha-deploy/" in done.stdout
    assert keys(served.stack, "gha/own-action") == ["404.html", "css/site.css", "index.html"]
