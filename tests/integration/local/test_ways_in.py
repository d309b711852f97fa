"""Every way into keyless that the README and the repository offer, run on one served local stack:
the README's four quick starts (Bitbucket, GitHub, GitLab, CircleCI), each extracted from README.md
(the fenced blocks under its "Quick start" heading, never a copy) with the user's substitutions
(the local stack's issuer and UUIDs, a role name and S3 prefix per CI, since they share one
account); the Bitbucket pipe's entry point with only the pipe's variables and a step's own
environment, as the image runs it; the GitLab CI/CD component (templates/keyless.yml) with its
inputs interpolated; and the CircleCI example.

``pip install keyless`` lines cannot reach the package index here: they become a no-op, since
the test environment already has this checkout's keyless on PATH (``program_env``).
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import shutil
import subprocess
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from keyless.ci import bitbucket, circleci, github, gitlab
from keyless.ci.base import CiProvider, Scope
from keyless.ci.circleci import CircleCIScope
from keyless.ci.github import GitHubScope
from keyless.ci.gitlab import GitLabScope
from keyless.cli.seams import Seams
from keyless.local.pipeline import resolve_identity
from keyless.local.served import StackInfo, served_stack
from keyless.local.stack import RunningStack
from tests.cli.helpers import run_cli
from tests.integration.local.provisioning import (
    EXAMPLES,
    KEYLESS,
    TIMEOUT_SECONDS,
    program_env,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
COMPONENT = ROOT / "templates" / "keyless.yml"
BUCKET = "acme-site"
#: The README's placeholder install line, and what stands in for it here.
PIP_INSTALL = re.compile(r"^pip install keyless\S*$")
_FENCE = re.compile(r"^( *)```(\w+)\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
_INPUT = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]")
#: CircleCI's IDs in the README's quick start; any UUIDs work for the local issuer.
CIRCLE_ORG = "2b9e4c1a-6d3f-4e8a-9c2b-7f1e0d5a4c3b"
CIRCLE_PROJECT = "8c7d6e5f-4a3b-4c2d-9e1f-0a9b8c7d6e5f"


def quick_start(title: str) -> list[tuple[str, str]]:
    """The fenced blocks (language, text) under README's ``## Quick start: TITLE``."""
    text = README.read_text(encoding="utf-8")
    head = f"\n## Quick start: {title}\n"
    assert head in text, f"README has no quick start for {title}"
    section = text.split(head, 1)[1].split("\n## ", 1)[0]
    return [(lang, textwrap.dedent(body)) for _, lang, body in _FENCE.findall(section)]


def shell_lines(lines: Sequence[str]) -> str:
    """Script lines as one ``bash -e`` script; the README's install line becomes a no-op."""
    return "\n".join("true" if PIP_INSTALL.match(line.strip()) else line for line in lines)


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    stack: RunningStack
    info: StackInfo
    identities: Path


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Account]:
    folder = tmp_path_factory.mktemp("ways-in")
    with served_stack(state_dir=folder / "state") as (stack, info):
        s3 = stack.admin_session().client("s3", endpoint_url=stack.endpoint_url)
        s3.create_bucket(Bucket=BUCKET)
        yield Account(stack=stack, info=info, identities=folder / "identities.json")


def provision(
    account: Account,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    *,
    provider: CiProvider,
    scope: Scope,
    substitutions: Mapping[str, str],
) -> str:
    """The README's ``keyless provision`` block with the user's values, run with the account's
    administrator against the stack; the role ARN it prints."""
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:2] == ["keyless", "provision"], command
    argv = [substitutions.get(word, word) for word in words[1:]]
    issuer = account.stack.ci.issuer_for(provider, scope) if account.stack.ci else ""
    for name, value in account.stack.environment(admin=True).items():
        monkeypatch.setenv(name, value)
    seams = Seams(admin_session=lambda region: account.stack.admin_session())
    ca = str(account.stack.ca_bundle)
    result = run_cli([*argv, "--issuer", issuer, "--ca-bundle", ca], seams=seams)
    assert result.code == 0, result.stderr
    role_arn = result.stdout.strip()
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w-]+", role_arn), result.stdout
    return role_arn


def local_run(
    account: Account, job: Sequence[str], script: str, *, cwd: Path, **variables: str
) -> subprocess.CompletedProcess[str]:
    """``script`` in ``keyless local run`` with the CI's job environment (and ``variables``, as
    the CI's own variables)."""
    argv = [str(KEYLESS), "local", "run", "--state", str(account.info.state_dir), *job]
    return subprocess.run(  # noqa: S603 - fixed programs; the token travels in env only
        [*argv, "--", "bash", "-e", "-c", script],
        env=program_env(HOME=str(cwd / "home"), **variables),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def keys(account: Account, prefix: str) -> list[str]:
    s3 = account.stack.admin_session().client("s3", endpoint_url=account.stack.endpoint_url)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
    return sorted(
        item["Key"].removeprefix(f"{prefix}/")
        for item in listed.get("Contents", [])
        if ".keyless-" not in item["Key"]
    )


def site(folder: Path, name: str = "public") -> Path:
    """A repository's checkout with the site in ``name``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(EXAMPLES / "bitbucket" / "site", folder / name)
    return folder


def common_substitutions(ci: str) -> dict[str, str]:
    # One account holds every CI's role: a role name and a prefix each.
    return {"site-deploy": f"{ci}-site-deploy", f"{BUCKET}/www": f"{BUCKET}/{ci}"}


def per_ci(text: str, ci: str) -> str:
    return text.replace(f"{BUCKET}/www", f"{BUCKET}/{ci}")


# --- Bitbucket: the pipeline and the pipe ------------------------------------------------------


# The test reads the step's environment (its token included) from a child's stdout, by design.
@pytest.mark.prints_secrets("stdout")
def test_the_bitbucket_quick_start_and_its_pipe(
    account: Account, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (setup, command), (yml, pipeline), (pipe_yml, pipe_step) = quick_start("Bitbucket Pipelines")
    assert (setup, yml, pipe_yml) == ("sh", "yaml", "yaml")
    identity = resolve_identity(account.identities, repository="site", deployments=("production",))
    words = shlex.split(command.replace("\\\n", " "))
    readme_uuids = dict(itertools.pairwise(words))
    substitutions = {
        **common_substitutions("bitbucket"),
        "acme": identity.workspace,
        readme_uuids["--workspace-uuid"]: identity.workspace_uuid,
        readme_uuids["--repository-uuid"]: identity.repository_uuid,
        readme_uuids["--environment-uuid"]: identity.environments["production"],
    }
    scope = identity.scope("production")
    role_arn = provision(
        account,
        monkeypatch,
        command,
        provider=bitbucket.PROVIDER,
        scope=scope,
        substitutions=substitutions,
    )

    # The pipeline, as Bitbucket runs it (the step's image has a supported Python).
    document = yaml.safe_load(pipeline)
    (step,) = [item["step"] for item in document["pipelines"]["branches"]["main"]]
    assert step["oidc"] is True
    image = step["image"]
    match = re.fullmatch(r"python:3\.(\d+)(-slim)?", image)
    assert match, image
    assert int(match.group(1)) >= 10, image
    step["script"] = [shell_lines([line]) for line in step["script"]]
    repo = site(tmp_path / "repo")
    file = repo / "bitbucket-pipelines.yml"
    file.write_text(per_ci(yaml.safe_dump(document), "bitbucket"))
    variables = tmp_path / "variables.yml"
    variables.write_text(
        json.dumps({"deployments": {"production": {"AWS_OIDC_ROLE_ARN": role_arn}}})
    )
    result = run_cli(
        [
            "local",
            "pipeline",
            str(file),
            "--state",
            str(account.info.state_dir),
            "--identities",
            str(account.identities),
            "--repository",
            "site",
            "--branch",
            "main",
            "--variables",
            str(variables),
        ],
        env=program_env(),
    )
    assert result.code == 0, result.stdout + result.stderr
    assert "Pipeline PASSED: 1 of 1 steps" in result.stdout
    assert keys(account, "bitbucket") == ["404.html", "css/site.css", "index.html"]

    # The pipe: its entry point with the pipe's variables only, plus what Bitbucket gives a
    # pipe of an `oidc: true` step (BITBUCKET_*, the token) and the local AWS's endpoint.
    (call,) = yaml.safe_load(pipe_step)
    assert call["pipe"].startswith("docker://")
    assert call["pipe"].endswith("keyless-pipe:1")
    pipe_variables = {
        name: per_ci(value, "bitbucket").replace("$AWS_OIDC_ROLE_ARN", role_arn)
        for name, value in call["variables"].items()
    }
    step_env = _bitbucket_step_environment(account, identity, tmp_path)
    image_env = {"PATH": program_env()["PATH"], "HOME": str(tmp_path / "pipe-home")}
    env = {**image_env, **step_env, **pipe_variables}
    (repo / "public" / "new.html").write_text("<p>new</p>")
    done = _pipe(env, cwd=repo)
    assert done.returncode == 0, done.stderr
    assert "assumed-role/bitbucket-site-deploy/bitbucket-" in done.stderr
    assert "uploaded 1 (" in done.stderr
    assert keys(account, "bitbucket") == ["404.html", "css/site.css", "index.html", "new.html"]
    again = _pipe(env, cwd=repo)
    assert again.returncode == 0, again.stderr
    assert "uploaded 0 (0 B)" in again.stderr
    assert step_env["BITBUCKET_STEP_OIDC_TOKEN"] not in done.stderr + again.stderr

    # A step without `oidc: true`: no token; the advice is in the pipe's terms.
    del env["BITBUCKET_STEP_OIDC_TOKEN"]
    refused = _pipe(env, cwd=repo)
    assert refused.returncode == 2
    assert "BITBUCKET_STEP_OIDC_TOKEN is not set" in refused.stderr
    assert "oidc: true" in refused.stderr
    assert "--ci" not in refused.stderr
    assert "--token-file" not in refused.stderr


def _bitbucket_step_environment(account: Account, identity: Any, tmp_path: Path) -> dict[str, str]:
    job = [
        "--ci",
        "bitbucket",
        "--workspace",
        identity.workspace,
        "--workspace-uuid",
        identity.workspace_uuid,
        "--repository-uuid",
        identity.repository_uuid,
        "--environment-uuid",
        identity.environments["production"],
        "--deployment",
        "production",
    ]
    dump = 'python3 -c "import json, os; print(json.dumps(dict(os.environ)))"'
    done = local_run(account, job, dump, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    env: dict[str, str] = json.loads(done.stdout)
    kept = {k: v for k, v in env.items() if k.startswith("BITBUCKET_") or k == "CI"}
    kept["AWS_ENDPOINT_URL"] = env["AWS_ENDPOINT_URL"]  # the local AWS stands in for AWS
    return kept


def _pipe(env: Mapping[str, str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the image's entry point, nothing else
        [str(KEYLESS), "pipe", "aws-s3-deploy"],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


# --- GitHub ------------------------------------------------------------------------------------


def test_the_github_quick_start(
    account: Account, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (setup, command), (yml, workflow) = quick_start("GitHub Actions")
    assert (setup, yml) == ("sh", "yaml")
    scope = GitHubScope(repository="octo-org/site", environment="production")
    role_arn = provision(
        account,
        monkeypatch,
        command,
        provider=github.PROVIDER,
        scope=scope,
        substitutions=common_substitutions("github"),
    )
    document = yaml.safe_load(workflow)
    assert document["permissions"]["id-token"] == "write"
    job = document["jobs"]["deploy"]
    assert job["environment"] == "production"
    uses = [step["uses"] for step in job["steps"] if "uses" in step]
    assert all(use.startswith("actions/checkout@") for use in uses)  # the folder is the checkout
    runs = [
        step["run"].replace("${{ vars.DEPLOY_ROLE_ARN }}", role_arn)
        for step in job["steps"]
        if "run" in step
    ]
    repo = site(tmp_path / "repo")
    ci = ["--ci", "github", "--repository", "octo-org/site", "--environment", "production"]
    done = local_run(account, ci, per_ci(shell_lines(runs), "github"), cwd=repo)
    assert done.returncode == 0, done.stderr
    assert keys(account, "github") == ["404.html", "css/site.css", "index.html"]


# --- GitLab: the quick start includes the component --------------------------------------------


def component_jobs(inputs: Mapping[str, str]) -> dict[str, Any]:
    """templates/keyless.yml as GitLab reads it: the spec header, then the jobs with every
    ``$[[ inputs.NAME ]]`` replaced by the given input or its default."""
    header, jobs = COMPONENT.read_text(encoding="utf-8").split("\n---\n", 1)
    spec = yaml.safe_load(header)["spec"]["inputs"]
    unknown = set(inputs) - set(spec)
    assert not unknown, f"inputs the component does not declare: {unknown}"
    missing = {name for name, item in spec.items() if "default" not in item} - set(inputs)
    assert not missing, f"required inputs not given: {missing}"
    used = set(_INPUT.findall(jobs))
    assert used == set(spec), f"declared but unused: {set(spec) - used}"
    values = {name: str(item.get("default", "")) for name, item in spec.items()} | dict(inputs)
    document: dict[str, Any] = yaml.safe_load(_INPUT.sub(lambda m: values[m.group(1)], jobs))
    return document


def test_the_component_is_a_spec_document_then_jobs() -> None:
    documents = list(yaml.safe_load_all(COMPONENT.read_text(encoding="utf-8")))
    assert len(documents) == 2
    assert set(documents[0]) == {"spec"}
    jobs = component_jobs({"role-arn": "arn:aws:iam::123456789012:role/r", "target": "s3://b/p"})
    (job,) = jobs.values()
    assert list(job["id_tokens"]) == [gitlab.ID_TOKEN_VARIABLE]
    assert job["id_tokens"][gitlab.ID_TOKEN_VARIABLE]["aud"] == "https://gitlab.com"
    script = "\n".join(job["script"])
    assert 'keyless assume --role-arn "arn:aws:iam::123456789012:role/r"' in script
    assert 'keyless deploy "public" "s3://b/p"' in script


def test_the_gitlab_quick_start_with_the_component(
    account: Account, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (setup, command), (yml, ci_file) = quick_start("GitLab CI/CD")
    assert (setup, yml) == ("sh", "yaml")
    scope = GitLabScope(project="acme/site", ref="main")
    role_arn = provision(
        account,
        monkeypatch,
        command,
        provider=gitlab.PROVIDER,
        scope=scope,
        substitutions=common_substitutions("gitlab"),
    )
    (include,) = yaml.safe_load(ci_file)["include"]
    # component: HOST/GROUP/PROJECT/NAME@VERSION, NAME being the template's file name.
    assert re.fullmatch(r"\$CI_SERVER_FQDN/[\w.-]+/[\w.-]+/keyless@[\w.]+", include["component"])
    inputs = {k: per_ci(str(v), "gitlab") for k, v in include["inputs"].items()}
    (job,) = component_jobs(inputs).values()
    audience = job["id_tokens"][gitlab.ID_TOKEN_VARIABLE]["aud"]
    ci = ["--ci", "gitlab", "--project", "acme/site", "--ref", "main", "--audience", audience]
    ci += ["--deployment", job["environment"]]
    repo = site(tmp_path / "repo")
    # $DEPLOY_ROLE_ARN is the project's CI/CD variable; GitLab expands it in the job's shell.
    done = local_run(account, ci, shell_lines(job["script"]), cwd=repo, DEPLOY_ROLE_ARN=role_arn)
    assert done.returncode == 0, done.stderr
    assert "assumed-role/gitlab-site-deploy/" in done.stdout + done.stderr
    assert keys(account, "gitlab") == ["404.html", "css/site.css", "index.html"]


# --- CircleCI: the quick start and the example -------------------------------------------------


def circleci_script(config: Mapping[str, Any]) -> str:
    (job,) = config["jobs"].values()
    lines = []
    for step in job["steps"]:
        if step == "checkout":  # the folder is the checkout
            continue
        run = step["run"]
        lines.append(run if isinstance(run, str) else run["command"])
    (workflow,) = config["workflows"].values()
    (entry,) = workflow["jobs"]
    # CircleCI issues OIDC tokens only to jobs that use a context.
    assert next(iter(entry.values()))["context"]
    return shell_lines(lines)


def test_the_circleci_quick_start_and_the_example(
    account: Account, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (setup, command), (yml, config) = quick_start("CircleCI")
    assert (setup, yml) == ("sh", "yaml")
    scope = CircleCIScope(org_id=CIRCLE_ORG, project_id=CIRCLE_PROJECT)
    role_arn = provision(
        account,
        monkeypatch,
        command,
        provider=circleci.PROVIDER,
        scope=scope,
        substitutions=common_substitutions("circleci"),
    )
    ci = ["--ci", "circleci", "--org-id", CIRCLE_ORG, "--project-id", CIRCLE_PROJECT]
    repo = site(tmp_path / "repo")
    script = per_ci(circleci_script(yaml.safe_load(config)), "circleci")
    done = local_run(account, ci, script, cwd=repo, DEPLOY_ROLE_ARN=role_arn)
    assert done.returncode == 0, done.stderr
    assert keys(account, "circleci") == ["404.html", "css/site.css", "index.html"]

    example = yaml.safe_load((EXAMPLES / "circleci" / "config.yml").read_text(encoding="utf-8"))
    checkout = site(tmp_path / "example", name="site")
    variables = {"DEPLOY_ROLE_ARN": role_arn, "SITE_BUCKET": f"{BUCKET}/circleci/example"}
    done = local_run(account, ci, circleci_script(example), cwd=checkout, **variables)
    assert done.returncode == 0, done.stderr
    assert keys(account, "circleci/example") == ["404.html", "css/site.css", "index.html"]
