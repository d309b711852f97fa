"""``keyless demo --ci github``: the story with GitHub Actions, each stage checked: provision a role
pinned to one repository's production environment, run the example workflow's deploy job through
``keyless local workflow``, be refused as another repository (the job's ``if: failure()`` doctor
step says why), and re-deploy without sending anything.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TextIO

from keyless.ci import github
from keyless.ci.github import GitHubScope
from keyless.local.demo import (
    BUCKET,
    PREFIX,
    ROLE_NAME,
    DemoResult,
    StageFailed,
    admin_run,
    last_line,
    policy_document,
    run_stages,
    say,
    trust_conditions,
)
from keyless.local.pipeline import keyless_argv
from keyless.local.served import StackInfo, served_stack
from keyless.local.stack import RunningStack
from keyless.local.workflow import JobResult, WorkflowRun, load_workflow, run_job

__all__ = ["GITHUB_STAGES", "WORKFLOW_FILE", "run_github_demo"]

REPOSITORY: Final = "octo-org/site"
#: Another repository of the same organization, with a copy of the same workflow.
OTHER_REPOSITORY: Final = "octo-org/other-site"
ENVIRONMENT: Final = "production"
#: The workflow the demo runs and the job of it, below the examples folder.
WORKFLOW_FILE: Final = Path("github") / "deploy.yml"
JOB: Final = "deploy"
#: The site it deploys: the Bitbucket example's.
SITE: Final = Path("bitbucket") / "site"

GITHUB_STAGES: Final = (
    ("stack", "Start the local stack: GitHub's OIDC issuer and AWS"),
    (
        "provision",
        f"Provision the identity provider and a role pinned to {REPOSITORY}'s production",
    ),
    ("deploy", f"Run the workflow's deploy job as {REPOSITORY}: the site is deployed"),
    ("refused", f"Run the same job as {OTHER_REPOSITORY}: refused, and doctor says why"),
    ("unchanged", "Run the deploy job again: 0 objects sent"),
)


def run_github_demo(*, examples: Path, log: TextIO, env: Mapping[str, str]) -> DemoResult:
    """Every stage against a fresh local stack (in a temporary folder, stopped at the end)."""
    began = time.monotonic()
    demo = _GitHubDemo(examples=examples, log=log, env=env)
    with tempfile.TemporaryDirectory(prefix="keyless-demo-github-") as scratch:
        demo.scratch = Path(scratch)
        say(log, "keyless demo --ci github: a GitHub Actions job deploys to S3 with no stored")
        say(
            log, "secret, against a local AWS that checks every token and trust policy as AWS does."
        )
        with contextlib.ExitStack() as running:
            steps: list[Callable[[], str]] = [
                lambda: demo.start(running),
                demo.provision,
                demo.deploy,
                demo.refused,
                demo.unchanged,
            ]
            stages, error = run_stages(GITHUB_STAGES, steps, log)
    return DemoResult(
        stages=tuple(stages),
        seconds=time.monotonic() - began,
        error=error,
        total=len(GITHUB_STAGES),
    )


@dataclass(kw_only=True)
class _GitHubDemo:
    examples: Path
    log: TextIO
    env: Mapping[str, str]
    scratch: Path = field(default_factory=Path)
    stack: RunningStack | None = None
    info: StackInfo | None = None
    role_arn: str = ""
    site_files: tuple[str, ...] = ()

    def start(self, running: contextlib.ExitStack) -> str:
        self.stack, self.info = running.enter_context(
            served_stack(state_dir=self.scratch / "state")
        )
        s3 = self.stack.admin_session().client("s3", endpoint_url=self.stack.endpoint_url)
        s3.create_bucket(Bucket=BUCKET)
        return (
            f"AWS on {self.stack.endpoint_url}, GitHub's issuer on"
            f" {self.info.servers[github.PROVIDER.name]}, bucket {BUCKET}"
        )

    def provision(self) -> str:
        stack, info = self._running()
        assert stack.ci is not None  # noqa: S101 - served_stack always serves the CI issuers
        scope = GitHubScope(repository=REPOSITORY, environment=ENVIRONMENT)
        issuer = stack.ci.issuer_for(github.PROVIDER, scope)
        argv = [*keyless_argv(), "provision", "--ci", "github", "--repository", REPOSITORY]
        argv += ["--environment", ENVIRONMENT, "--role-name", ROLE_NAME]
        argv += ["--s3-deploy", f"{BUCKET}/{PREFIX}", "--issuer", issuer]
        argv += ["--ca-bundle", str(info.ca_bundle), "--json"]
        say(self.log, "  $ " + shlex.join(["keyless", *argv[len(keyless_argv()) :]]))
        done = admin_run(argv, stack=stack, info=info, env=self.env, scratch=self.scratch)
        if done.returncode != 0:
            raise StageFailed(
                f"keyless provision exited with {done.returncode}: {last_line(done.stderr)}"
            )
        role = stack.iam().get_role(RoleName=ROLE_NAME)["Role"]
        self.role_arn = role["Arn"]
        trust = policy_document(role["AssumeRolePolicyDocument"])
        say(self.log, f"  role {self.role_arn}, trust policy:")
        for line in json.dumps(trust, indent=2).splitlines():
            say(self.log, "    " + line)
        pinned = trust_conditions(trust).get("StringEquals", {}).get("sub")
        wanted = f"repo:{REPOSITORY}:environment:{ENVIRONMENT}"
        if pinned != wanted:
            raise StageFailed(f"sub pinned to {pinned!r}, not {wanted!r}")
        return f"{ROLE_NAME} admits only sub {wanted}"

    def deploy(self) -> str:
        result, _ = self._job(REPOSITORY)
        if not result.succeeded:
            raise StageFailed(f"the job failed: {_failure(result)}")
        site = self.examples / SITE
        self.site_files = tuple(
            sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
        )
        keys = self._keys()
        if keys != list(self.site_files):
            raise StageFailed(f"s3://{BUCKET}/{PREFIX}/ holds {keys}, not {list(self.site_files)}")
        return f"{len(keys)} files of site/ in s3://{BUCKET}/{PREFIX}/"

    def refused(self) -> str:
        result, output = self._job(OTHER_REPOSITORY)
        if result.succeeded:
            raise StageFailed(f"the job of {OTHER_REPOSITORY} was not refused")
        if "AccessDenied" not in output:
            raise StageFailed(f"the job of {OTHER_REPOSITORY} failed, not with AccessDenied")
        doctor = next((s for s in result.steps if s.title.startswith("Why")), None)
        if doctor is None or doctor.outcome == "skipped":
            raise StageFailed("the job's `if: failure()` doctor step did not run")
        return f"{OTHER_REPOSITORY}'s deploy step: AccessDenied from STS; doctor ran after it"

    def unchanged(self) -> str:
        result, output = self._job(REPOSITORY)
        if not result.succeeded:
            raise StageFailed(f"the re-run failed: {_failure(result)}")
        found = re.search(r"uploaded (\d+) \(", output)
        if found is None or found.group(1) != "0":
            sent = found.group(1) if found else "an unknown number of"
            raise StageFailed(f"the re-run sent {sent} objects")
        return f"0 objects sent, {len(self.site_files)} unchanged"

    # --- helpers -------------------------------------------------------------------------------

    def _running(self) -> tuple[RunningStack, StackInfo]:
        if self.stack is None or self.info is None:
            raise StageFailed("the local stack is not running")
        return self.stack, self.info

    def _repository(self) -> Path:
        """A working tree with the example workflow and the site, made once. `pip install keyless`
        is dropped and setup-python asks for this Python: the keyless running the demo is the one
        the job finds on PATH."""
        repo = self.scratch / "repo"
        if repo.is_dir():
            return repo
        text = (self.examples / WORKFLOW_FILE).read_text(encoding="utf-8")
        here = f"{sys.version_info[0]}.{sys.version_info[1]}"
        text = text.replace(
            "      - run: pip install keyless\n", "      - run: keyless --version\n"
        )
        text = re.sub(r'python-version: "[0-9.]+"', f'python-version: "{here}"', text)
        workflows = repo / ".github" / "workflows"
        workflows.mkdir(parents=True)
        (workflows / "deploy.yml").write_text(text, encoding="utf-8")
        shutil.copytree(self.examples / SITE, repo / "site")
        say(
            self.log, f"  workflow {WORKFLOW_FILE} (`pip install keyless` skipped: keyless is here)"
        )
        return repo

    def _job(self, repository: str) -> tuple[JobResult, str]:
        """The deploy job as ``repository``'s, logged to the story; its result and its log."""
        _, info = self._running()
        repo = self._repository()
        workflow = load_workflow(repo / ".github" / "workflows" / "deploy.yml")
        run = WorkflowRun(
            workflow=workflow,
            job=workflow.job(JOB),
            repo_dir=repo,
            repository=repository,
            branch="main",
            variables={"DEPLOY_ROLE_ARN": self.role_arn, "SITE_BUCKET": f"{BUCKET}/{PREFIX}"},
        )
        buffer = io.StringIO()
        result = run_job(run, stack=info, base_env=self.env, log=buffer)
        self.log.write(buffer.getvalue())
        self.log.flush()
        return result, buffer.getvalue()

    def _keys(self) -> list[str]:
        stack, _ = self._running()
        s3 = stack.admin_session().client("s3", endpoint_url=stack.endpoint_url)
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")
        return sorted(
            item["Key"].removeprefix(f"{PREFIX}/")
            for item in listed.get("Contents", [])
            if not item["Key"].removeprefix(f"{PREFIX}/").startswith(".keyless-")
        )


def _failure(result: JobResult) -> str:
    failed = next((s for s in result.steps if s.conclusion == "failure"), None)
    return f"step {failed.title!r}: {failed.reason}" if failed else "no step failed"
