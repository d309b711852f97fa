"""``keyless demo``: the whole story on the local stack, each stage checked: provision a role pinned
to one repository's production environment, deploy through a Bitbucket pipeline, be refused from
another repository and told why, and re-deploy without sending anything.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from keyless.ci import bitbucket
from keyless.deploy.manifest import MANIFEST_NAME
from keyless.errors import KeylessError, UsageError
from keyless.limits import (
    DEMO_PROVISION_TIMEOUT_SECONDS,
)
from keyless.local import pipeline
from keyless.local.pipeline import (
    Pipeline,
    PipelinePlan,
    PipelineResult,
    Step,
    StepStatus,
    git_checkout,
    keyless_argv,
    local_issuer,
    plan_pipeline,
    resolve_identity,
    run_pipeline,
    scope_flags,
)
from keyless.local.run import JobProcess, job_process_environment
from keyless.local.served import StackInfo, served_stack
from keyless.local.stack import RunningStack

__all__ = ["PACKAGED_EXAMPLES", "STAGES", "DemoResult", "Stage", "find_examples", "run_demo"]

BUCKET: Final = "keyless-demo-site"
PREFIX: Final = "site"
ROLE_NAME: Final = "keyless-demo-deploy"
REPOSITORY: Final = "site"
#: Another repository of the same workspace, with a copy of the same pipeline.
OTHER_REPOSITORY: Final = "other-site"
ENVIRONMENT: Final = "production"
BRANCH: Final = "main"
#: The pipeline the demo runs, below the examples folder.
PIPELINE_FILE: Final = Path("bitbucket") / "bitbucket-pipelines.yml"
#: The step of that pipeline that deploys.
DEPLOY_STEP: Final = "Deploy to S3"

#: Every stage, in order: (key, what it shows).
STAGES: Final = (
    ("stack", "Start the local stack: a Bitbucket workspace's issuer and AWS"),
    ("provision", "Provision the identity provider and a role pinned to site's production"),
    ("deploy", "Run the pipeline as repository site: the site is deployed"),
    ("whoami", "Run `keyless whoami` in the production step: the assumed role"),
    ("refused", "Run the same step from another repository of the workspace: refused"),
    ("doctor", "Run `keyless doctor` in that step: the condition that refused it"),
    ("unchanged", "Run the deploy again: 0 objects sent"),
    ("audit", "Run `keyless audit` on the account: who can assume each role, as an HTML report"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    key: str
    title: str
    passed: bool
    #: What was checked, and what was found.
    detail: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.key,
            "title": self.title,
            "passed": self.passed,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoResult:
    stages: tuple[Stage, ...]
    seconds: float
    #: Why the demo stopped before its last stage (an error, not a failed expectation).
    error: str | None = None
    #: How many stages the story has.
    total: int = len(STAGES)

    @property
    def ok(self) -> bool:
        return len(self.stages) == self.total and all(stage.passed for stage in self.stages)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "stages": [stage.to_json() for stage in self.stages],
        }


class StageFailed(Exception):
    """A stage whose expectation did not hold; the message says what was found instead."""


#: The demo's pipeline and site as shipped in the package (an installed wheel has no checkout);
#: examples/bitbucket in the repository holds the same files for people to read and copy.
PACKAGED_EXAMPLES: Final = Path(__file__).resolve().parent / "demo_assets"


def find_examples(given: Path | None = None, *, needs: Path = PIPELINE_FILE) -> Path:
    """The examples folder: ``given``, else the copy shipped in the package."""
    where = PACKAGED_EXAMPLES if given is None else given
    if (where / needs).is_file():
        return where
    raise UsageError(
        f"no examples folder with {needs} at {where}",
        remedy="Pass --examples DIR with that file (and bitbucket/site/), or leave --examples"
        " out to run the example shipped with keyless.",
    )


def run_demo(*, examples: Path, log: TextIO, env: Mapping[str, str]) -> DemoResult:
    """Run every stage against a fresh local stack (in a temporary folder, stopped at the end),
    telling the story on ``log``; a stage that cannot run ends the demo there."""
    began = time.monotonic()
    demo = _Demo(examples=examples, log=log, env=env)
    with tempfile.TemporaryDirectory(prefix="keyless-demo-") as scratch:
        demo.scratch = Path(scratch)
        say(log, "keyless demo: a Bitbucket pipeline deploys to S3 with no stored secret,")
        say(log, "against a local AWS that checks every token and trust policy as AWS does.")
        with contextlib.ExitStack() as running:
            steps: list[Callable[[], str]] = [
                lambda: demo.start(running),
                demo.provision,
                demo.deploy,
                demo.whoami,
                demo.refused,
                demo.doctor,
                demo.unchanged,
                demo.audit,
            ]
            stages, error = run_stages(STAGES, steps, log)
    return DemoResult(stages=tuple(stages), seconds=time.monotonic() - began, error=error)


def run_stages(
    titles: Sequence[tuple[str, str]], steps: Sequence[Callable[[], str]], log: TextIO
) -> tuple[list[Stage], str | None]:
    """Run each stage in turn, telling it on ``log``; a stage that cannot run (a KeylessError)
    ends the story there, and its message is the second value."""
    stages: list[Stage] = []
    for number, ((key, title), stage) in enumerate(zip(titles, steps, strict=True), 1):
        say(log, "")
        say(log, f"[{number}/{len(titles)}] {title}")
        stage_began = time.monotonic()
        try:
            detail = stage()
        except StageFailed as exc:
            stages.append(_stage(key, title, False, str(exc), stage_began, log))
        except KeylessError as exc:
            stages.append(_stage(key, title, False, exc.message, stage_began, log))
            return stages, f"{key}: {exc.message}"
        else:
            stages.append(_stage(key, title, True, detail, stage_began, log))
    return stages, None


def _stage(key: str, title: str, passed: bool, detail: str, began: float, log: TextIO) -> Stage:
    seconds = time.monotonic() - began
    say(log, f"  {'ok' if passed else 'FAILED'}: {detail}")
    return Stage(key=key, title=title, passed=passed, detail=detail, seconds=seconds)


@dataclass(kw_only=True)
class _Demo:
    """The state the stages hand on to each other."""

    examples: Path
    log: TextIO
    env: Mapping[str, str]
    scratch: Path = field(default_factory=Path)
    stack: RunningStack | None = None
    info: StackInfo | None = None
    role_arn: str = ""
    trust_file: Path = field(default_factory=Path)
    site_files: tuple[str, ...] = ()

    # --- the stages --------------------------------------------------------------------------

    def start(self, running: contextlib.ExitStack) -> str:
        self.stack, self.info = running.enter_context(
            served_stack(state_dir=self.scratch / "state")
        )
        s3 = self.stack.admin_session().client("s3", endpoint_url=self.stack.endpoint_url)
        s3.create_bucket(Bucket=BUCKET)
        servers = self.info.servers[bitbucket.PROVIDER.name]
        return (
            f"AWS on {self.stack.endpoint_url}, Bitbucket's issuers on {servers},"
            f" bucket {BUCKET}; started in {self.stack.started_in:.1f} s"
        )

    def provision(self) -> str:
        info = self._info()
        identity = resolve_identity(
            self._identities, repository=REPOSITORY, deployments=(ENVIRONMENT,)
        )
        flags = scope_flags(identity, deployment=ENVIRONMENT, issuer=local_issuer(info, identity))
        argv = [*keyless_argv(), "provision", *flags, "--role-name", ROLE_NAME]
        argv += ["--s3-deploy", f"{BUCKET}/{PREFIX}", "--ca-bundle", str(info.ca_bundle), "--json"]
        say(self.log, "  $ " + shlex.join(["keyless", *argv[len(keyless_argv()) :]]))
        done = self._admin_run(argv)
        if done.returncode != 0:
            raise StageFailed(
                f"keyless provision exited with {done.returncode}: {last_line(done.stderr)}"
            )
        status = json.loads(done.stdout).get("status")
        role = self._stack().iam().get_role(RoleName=ROLE_NAME)["Role"]
        self.role_arn = role["Arn"]
        trust = policy_document(role["AssumeRolePolicyDocument"])
        self.trust_file = self.scratch / "trust.json"
        self.trust_file.write_text(json.dumps(trust, indent=2) + "\n", encoding="utf-8")
        say(self.log, f"  role {self.role_arn}, trust policy:")
        for line in json.dumps(trust, indent=2).splitlines():
            say(self.log, "    " + line)
        pinned = trust_conditions(trust).get("StringLike", {})
        wanted = f"{{{identity.repository_uuid}}}:{{{identity.environments[ENVIRONMENT]}}}:*"
        if status != "applied" or wanted not in pinned.values():
            raise StageFailed(f"provision {status}; sub pinned to {sorted(pinned.values())}")
        return f"{status}; {ROLE_NAME} admits only sub {wanted}"

    def deploy(self) -> str:
        result = self._pipeline(REPOSITORY)
        if not result.passed:
            raise StageFailed(f"the pipeline failed: {_failure(result)}")
        self.site_files = tuple(
            sorted(
                path.relative_to(self._site).as_posix()
                for path in self._site.rglob("*")
                if path.is_file()
            )
        )
        s3 = self._stack().admin_session().client("s3", endpoint_url=self._stack().endpoint_url)
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")
        keys = sorted(
            item["Key"].removeprefix(f"{PREFIX}/")
            for item in listed.get("Contents", [])
            if item["Key"] != f"{PREFIX}/{MANIFEST_NAME}"
        )
        if keys != list(self.site_files):
            raise StageFailed(f"s3://{BUCKET}/{PREFIX}/ holds {keys}, not {list(self.site_files)}")
        return (
            f"{len(keys)} files of site/ in s3://{BUCKET}/{PREFIX}/ (build #{result.build_number})"
        )

    def whoami(self) -> str:
        step = Step(
            name="Who am I",
            script=("keyless exec -- keyless whoami --json",),
            oidc=True,
            deployment=ENVIRONMENT,
        )
        result = self._adhoc(REPOSITORY, step)
        output = result.steps[0].output
        if not result.passed:
            raise StageFailed(f"keyless whoami failed: {_failure(result)}")
        arn = str(_json_in(output).get("arn"))
        expected = f"arn:aws:sts::{self._info().account_id}:assumed-role/{ROLE_NAME}/"
        if not arn.startswith(expected):
            raise StageFailed(f"whoami shows {arn}, not {expected}...")
        return f"whoami: {arn}"

    def refused(self) -> str:
        result = self._pipeline(OTHER_REPOSITORY)
        deploy = next((s for s in result.steps if s.name == DEPLOY_STEP), None)
        if deploy is None or deploy.status is not StepStatus.FAILED:
            raise StageFailed(f"the deploy step of {OTHER_REPOSITORY} was not refused")
        if "AccessDenied" not in deploy.output:
            raise StageFailed(
                f"the deploy step of {OTHER_REPOSITORY} failed, not with AccessDenied"
            )
        return f"{OTHER_REPOSITORY}'s deploy step: AccessDenied from STS (sub {deploy.subject})"

    def doctor(self) -> str:
        # What a person reads, then the same report as data for the check.
        report_file = self.scratch / "doctor.json"
        doctor = f"keyless doctor --policy {shlex.quote(str(self.trust_file))}"
        step = Step(
            name="Why refused?",
            script=(
                f"{doctor} --json > {shlex.quote(str(report_file))} || :",
                doctor,
            ),
            oidc=True,
            deployment=ENVIRONMENT,
        )
        result = self._adhoc(OTHER_REPOSITORY, step)
        try:
            report = json.loads(report_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise StageFailed("keyless doctor --json wrote no report") from None
        steps = report.get("steps", []) if isinstance(report, dict) else []
        trust: dict[str, Any] = next((s for s in steps if s.get("step") == "trust"), {})
        failed = [line for line in trust.get("details", []) if str(line).startswith("fail")]
        if result.steps[0].exit_code != 1 or trust.get("status") != "problem" or not failed:
            raise StageFailed("keyless doctor did not find the refusing condition")
        condition = " ".join(str(failed[0]).split()[1:3])
        return f"cause {report.get('cause')}: {condition} does not match the token's sub"

    def unchanged(self) -> str:
        result = self._pipeline(REPOSITORY, deployment=ENVIRONMENT)
        if not result.passed:
            raise StageFailed(f"the re-run failed: {_failure(result)}")
        found = re.search(r"uploaded (\d+) \(", result.step(DEPLOY_STEP).output)
        if found is None or found.group(1) != "0":
            sent = found.group(1) if found else "an unknown number of"
            raise StageFailed(f"the re-run sent {sent} objects")
        return f"0 objects sent, {len(self.site_files)} unchanged (build #{result.build_number})"

    def audit(self) -> str:
        # Outside the scratch folder, which is deleted when the demo ends: the report stays.
        report = Path(tempfile.mkdtemp(prefix="keyless-demo-audit-")) / "audit.html"
        argv = [*keyless_argv(), "audit", "--format", "html", "--output", str(report)]
        say(self.log, "  $ " + shlex.join(["keyless", *argv[len(keyless_argv()) :]]))
        done = self._admin_run(argv)
        if done.returncode != 0 or not report.is_file():
            raise StageFailed(f"keyless audit exited {done.returncode}: {last_line(done.stderr)}")
        if ROLE_NAME not in report.read_text(encoding="utf-8"):
            raise StageFailed(f"the audit report does not list {ROLE_NAME}")
        return f"{ROLE_NAME} and its trust audited; open {report}"

    # --- helpers -------------------------------------------------------------------------------

    @property
    def _identities(self) -> Path:
        return self.scratch / pipeline.IDENTITIES_FILE

    @property
    def _site(self) -> Path:
        return self.examples / PIPELINE_FILE.parent / "site"

    def _stack(self) -> RunningStack:
        if self.stack is None:
            raise StageFailed("the local stack is not running")
        return self.stack

    def _info(self) -> StackInfo:
        if self.info is None:
            raise StageFailed("the local stack is not running")
        return self.info

    def _variables(self) -> Path:
        path = self.scratch / "variables.yml"
        path.write_text(
            json.dumps(
                {
                    "repository": {"AWS_OIDC_ROLE_ARN": self.role_arn},
                    "deployments": {ENVIRONMENT: {"S3_BUCKET": f"{BUCKET}/{PREFIX}"}},
                }
            ),
            encoding="utf-8",
        )
        return path

    def _plan(self, repository: str, *, deployment: str | None = None) -> PipelinePlan:
        return plan_pipeline(
            self.examples / PIPELINE_FILE,
            identities=self._identities,
            checkout=git_checkout,
            deployment=deployment,
            branch=BRANCH,
            repository=repository,
            variables=self._variables(),
        )

    def _pipeline(self, repository: str, *, deployment: str | None = None) -> PipelineResult:
        plan = self._plan(repository, deployment=deployment)
        return run_pipeline(plan, stack=self._info(), base_env=self.env, log=self.log)

    def _adhoc(self, repository: str, step: Step) -> PipelineResult:
        """``step`` run as a step of ``repository``'s pipeline (same identities and variables)."""
        plan = self._plan(repository)
        adhoc = Pipeline(key=f"demo: {step.name}", groups=((step,),))
        plan = PipelinePlan(
            file=plan.file,
            pipeline=adhoc,
            groups=adhoc.groups,
            repository=plan.repository,
            trigger=plan.trigger,
            commit=plan.commit,
            variables=plan.variables,
            identities=plan.identities,
        )
        return run_pipeline(plan, stack=self._info(), base_env=self.env, log=self.log)

    def _admin_run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return admin_run(
            argv, stack=self._stack(), info=self._info(), env=self.env, scratch=self.scratch
        )


def admin_run(
    argv: list[str],
    *,
    stack: RunningStack,
    info: StackInfo,
    env: Mapping[str, str],
    scratch: Path,
) -> subprocess.CompletedProcess[str]:
    """``argv`` as the account's administrator runs it: the stack's admin key, nothing else."""
    workdir = scratch / "admin"
    workdir.mkdir(mode=0o700, exist_ok=True)
    admin = {
        "AWS_ACCESS_KEY_ID": stack.admin.access_key_id,
        "AWS_SECRET_ACCESS_KEY": stack.admin.secret_access_key,
    }
    process_env = job_process_environment(
        env,
        admin,
        JobProcess(
            workdir=workdir,
            endpoint_url=info.endpoint_url,
            region=info.region,
            ca_bundle=info.ca_bundle,
            state_dir=info.state_dir,
            issuer_variables=info.issuer_variables,
        ),
    )
    return subprocess.run(  # noqa: S603 - keyless itself; the admin key is in env only
        argv,
        env=process_env,
        capture_output=True,
        text=True,
        timeout=DEMO_PROVISION_TIMEOUT_SECONDS,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def policy_document(value: object) -> dict[str, Any]:
    """A policy document as IAM returns it: a mapping, or URL-encoded JSON text."""
    parsed = json.loads(urllib.parse.unquote(value)) if isinstance(value, str) else value
    if not isinstance(parsed, dict):
        raise StageFailed("IAM returned a trust policy that is not a JSON object")
    return parsed


def trust_conditions(trust: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The trust's conditions as ``{operator: {claim: value}}`` (claim without the issuer)."""
    found: dict[str, dict[str, str]] = {}
    for statement in trust.get("Statement", []):
        for operator, pairs in statement.get("Condition", {}).items():
            for key, value in pairs.items():
                found.setdefault(operator, {})[key.rpartition(":")[2]] = value
    return found


def _json_in(output: str) -> dict[str, Any]:
    """The JSON document a step printed among its other lines (from a line ``{`` to ``}``)."""
    lines = output.splitlines()
    with contextlib.suppress(ValueError):
        start = lines.index("{")
        end = len(lines) - 1 - lines[::-1].index("}")
        document = json.loads("\n".join(lines[start : end + 1]))
        if isinstance(document, dict):
            return document
    return {}


def _failure(result: PipelineResult) -> str:
    failed = next((s for s in result.steps if s.status is StepStatus.FAILED), None)
    return f"step {failed.name!r}: {failed.reason}" if failed else "no step ran"


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def say(log: TextIO, text: str) -> None:
    log.write(text + "\n")
    log.flush()
