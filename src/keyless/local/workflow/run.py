"""Running one job of a workflow as GitHub's runner would, on this machine against the local stack:
each step in order in its own process group, with the job's GitHub variables (the token request
endpoint only with ``id-token: write``), the environment files honoured between steps, every
secret and masked value shown as ``***``, and a log like GitHub's.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TextIO

from keyless.ci import github
from keyless.ci.base import JobClaims, JobRun, JobTokens, RawToken, TokenEndpoint
from keyless.ci.github import GitHubScope
from keyless.errors import KeylessError
from keyless.limits import WORKFLOW_STEP_SUMMARY_MAX_BYTES
from keyless.local.run import JobProcess, job_process_environment
from keyless.local.served import RemoteTokens, StackInfo
from keyless.local.workflow import actions
from keyless.local.workflow.commands import (
    FileCommandError,
    Masker,
    StdoutCommands,
    parse_env_file,
    parse_path_file,
    read_command_file,
)
from keyless.local.workflow.expressions import Contexts, condition, interpolate
from keyless.local.workflow.parse import Job, Step, Workflow, WorkflowError, id_token_granted
from keyless.process import run_group

__all__ = ["JobResult", "StepOutcome", "WorkflowRun", "run_job"]

_SECONDS_PER_MINUTE: Final = 60
#: GitHub's default shells (GitHub Docs, "Workflow syntax", jobs.<job_id>.steps[*].shell).
_SHELLS: Final = {
    "bash": ("bash", "--noprofile", "--norc", "-eo", "pipefail", "{0}"),
    "sh": ("sh", "-e", "{0}"),
    "python": ("python", "{0}"),
}
_Done = Callable[[str, "int | None", "str | None"], "StepOutcome"]
#: The runner sets these itself; a step cannot change them through $GITHUB_ENV.
_RUNNER_OWNED: Final = ("GITHUB_", "RUNNER_")


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowRun:
    """What to run: one job of a workflow, for a repository and ref, with these values."""

    workflow: Workflow
    job: Job
    #: The working tree that actions/checkout copies.
    repo_dir: Path
    repository: str
    branch: str | None = None
    commit: str | None = None
    event: str = "push"
    inputs: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepOutcome:
    number: int
    title: str
    #: success, failure or skipped, before continue-on-error...
    outcome: str
    #: ... and after it.
    conclusion: str
    exit_code: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobResult:
    job: str
    steps: tuple[StepOutcome, ...]
    #: What the steps wrote to $GITHUB_STEP_SUMMARY, masked.
    summary: str = ""

    @property
    def succeeded(self) -> bool:
        return all(step.conclusion != "failure" for step in self.steps)

    @property
    def exit_code(self) -> int:
        """0 when the job succeeded, else the exit code of its first failed step (1 if none)."""
        for step in self.steps:
            if step.conclusion == "failure":
                return step.exit_code or 1
        return 0


class _NoEndpoint:
    """``JobTokens`` for a job without ``id-token: write``: nothing is registered."""

    def sign(self, claims: JobClaims) -> RawToken:
        return RawToken("")

    def endpoint(self, claims: JobClaims) -> TokenEndpoint:
        return TokenEndpoint(url="", bearer="")


class _Job:
    """The state a job carries from step to step."""

    def __init__(self, run: WorkflowRun, workdir: Path, base: dict[str, str], log: TextIO) -> None:
        self.run = run
        self.workdir = workdir
        self.base = base
        self.log = log
        self.masker = Masker(value for value in run.secrets.values() if value)
        self.env: dict[str, str] = {}
        self.path: list[str] = []
        self.steps: dict[str, dict[str, object]] = {}
        self.failed = False
        self.summary: list[str] = []
        self.workspace = Path(base["GITHUB_WORKSPACE"])

    def say(self, text: str) -> None:
        self.log.write(self.masker(text) + "\n")
        self.log.flush()

    def contexts(self, env: Mapping[str, str] | None = None) -> Contexts:
        github_context: dict[str, object] = {
            name.removeprefix("GITHUB_").lower(): value
            for name, value in self.base.items()
            if name.startswith("GITHUB_")
        }
        github_context["event"] = {"inputs": dict(self.run.inputs)}
        github_context["token"] = ""
        return Contexts(
            values={
                "env": dict(self.env if env is None else env),
                "inputs": dict(self.run.inputs),
                "steps": self.steps,
                "github": github_context,
                "secrets": dict(self.run.secrets),
                "vars": dict(self.run.variables),
            },
            failed=self.failed,
        )

    def process_env(self, step_env: Mapping[str, str], files: Mapping[str, Path]) -> dict[str, str]:
        env = {**self.base, **self.env, **step_env}
        for name, value in self.base.items():
            if name.startswith(_RUNNER_OWNED):
                env[name] = value
        env.update({name: str(path) for name, path in files.items()})
        env["PATH"] = os.pathsep.join([*reversed(self.path), self.base.get("PATH", "")])
        return env


def run_job(
    run: WorkflowRun,
    *,
    stack: StackInfo,
    base_env: Mapping[str, str],
    log: TextIO,
    tokens: JobTokens | None = None,
) -> JobResult:
    """Run ``run.job``'s steps in turn against ``stack``, writing a GitHub-like log to ``log``."""
    workflow, job = run.workflow, run.job
    granted = id_token_granted(workflow, job)
    early = Contexts(
        values={
            "inputs": dict(run.inputs),
            "vars": dict(run.variables),
            "secrets": dict(run.secrets),
        }
    )
    environment = interpolate(job.environment, early) if job.environment else None
    scope = GitHubScope(repository=run.repository, environment=environment or None)
    job_run = JobRun(branch=run.branch, step=job.id, commit=run.commit, event=run.event)
    job_tokens = (
        (tokens or RemoteTokens.of(stack, github.PROVIDER, scope)) if granted else _NoEndpoint()
    )
    variables = github.PROVIDER.job_environment(scope, job_run, tokens=job_tokens)
    if not granted:
        variables.pop(github.REQUEST_URL_VARIABLE, None)
        variables.pop(github.REQUEST_BEARER_VARIABLE, None)
    with tempfile.TemporaryDirectory(prefix="keyless-workflow-") as scratch:
        workdir = Path(scratch)
        base = _job_environment(workdir, variables, run, stack=stack, base_env=base_env)
        state = _Job(run, workdir, base, log)
        bearer = variables.get(github.REQUEST_BEARER_VARIABLE)
        if bearer:
            state.masker.add(bearer)
        _header(state, scope, granted=granted)
        results = _run_steps(state)
    result = JobResult(job=job.id, steps=tuple(results), summary="".join(state.summary))
    if result.summary.strip():
        state.say("Job summary ($GITHUB_STEP_SUMMARY):")
        for line in result.summary.rstrip("\n").splitlines():
            state.say("  " + line)
    state.say(f"Job {'succeeded' if result.succeeded else 'failed'}")
    return result


def _job_environment(
    workdir: Path,
    variables: Mapping[str, str],
    run: WorkflowRun,
    *,
    stack: StackInfo,
    base_env: Mapping[str, str],
) -> dict[str, str]:
    """The variables every step starts from: GitHub's, a private HOME and runner folders, AWS
    on the local stack, this keyless first on PATH."""
    home, temp, tools = workdir / "home", workdir / "temp", workdir / "tool-cache"
    workspace = workdir / "work" / run.repository.split("/")[-1]
    for folder in (home, temp, tools, workspace):
        folder.mkdir(mode=0o700, parents=True)
    event = temp / "event.json"
    event.write_text(json.dumps({"inputs": dict(run.inputs)}), encoding="utf-8")
    env = job_process_environment(
        base_env,
        {
            **variables,
            "HOME": str(home),
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_WORKFLOW": run.workflow.name or str(run.workflow.path),
            "RUNNER_TEMP": str(temp),
            "RUNNER_TOOL_CACHE": str(tools),
            "RUNNER_NAME": "keyless-local",
            "RUNNER_ARCH": "X64" if os.uname().machine in ("x86_64", "AMD64") else "ARM64",
        },
        JobProcess(
            workdir=workdir,
            endpoint_url=stack.endpoint_url,
            region=stack.region,
            ca_bundle=stack.ca_bundle,
            state_dir=stack.state_dir,
            issuer_variables=stack.issuer_variables,
        ),
    )
    keyless_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in (keyless_bin, env.get("PATH")) if p)
    return env


def _header(state: _Job, scope: GitHubScope, *, granted: bool) -> None:
    run, base = state.run, state.base
    title = f"Job {run.job.id}" + (f" ({run.job.name})" if run.job.name else "")
    state.say(f"{title} of {run.workflow.path}")
    where = f"  repository {run.repository}, {base['GITHUB_REF']}, event {run.event}"
    state.say(where + (f", environment {scope.environment}" if scope.environment else ""))
    if granted:
        state.say(
            f"  OIDC: {github.REQUEST_URL_VARIABLE} and {github.REQUEST_BEARER_VARIABLE} set"
            f" (id-token: write); sub {scope.subject_prefix()}:{scope.context() or '...'}"
        )
    else:
        state.say("  OIDC: no token (the job has no `permissions: id-token: write`)")
    state.say(f"  AWS: the local stack at {base['AWS_ENDPOINT_URL']}; no AWS key in any step")


def _run_steps(state: _Job) -> list[StepOutcome]:
    run = state.run
    results: list[StepOutcome] = []
    try:
        state.env = _evaluated(run.workflow.env, state.contexts({}))
        state.env |= _evaluated(run.job.env, state.contexts())
        job_if = condition(run.job.if_, state.contexts()) if run.job.if_ else True
    except KeylessError as exc:
        state.say(f"Error: {exc.message}")
        return [
            StepOutcome(
                number=0,
                title="Set up job",
                outcome="failure",
                conclusion="failure",
                exit_code=2,
                reason=exc.message,
            )
        ]
    if not job_if:
        state.say("The job was skipped: its `if:` is false")
        return []
    deadline = time.monotonic() + run.job.timeout_minutes * _SECONDS_PER_MINUTE
    total = len(run.job.steps)
    for step in run.job.steps:
        state.say(f"=== Step {step.number}/{total}: {step.title} " + "=" * 20)
        outcome = _run_step(state, step, deadline=deadline)
        results.append(outcome)
        if step.id:
            entry = state.steps.setdefault(step.id, {"outputs": {}})
            entry["outcome"], entry["conclusion"] = outcome.outcome, outcome.conclusion
        if outcome.conclusion == "failure":
            state.failed = True
    return results


def _evaluated(values: Mapping[str, str], contexts: Contexts) -> dict[str, str]:
    return {name: interpolate(value, contexts) for name, value in values.items()}


def _run_step(state: _Job, step: Step, *, deadline: float) -> StepOutcome:
    def done(outcome: str, code: int | None, reason: str | None) -> StepOutcome:
        conclusion = outcome
        if outcome == "failure" and continue_on_error:
            conclusion = "success"
            state.say("The step failed; continue-on-error: true lets the job go on")
        if reason:
            state.say(f"Error: {reason}")
        return StepOutcome(
            number=step.number,
            title=step.title,
            outcome=outcome,
            conclusion=conclusion,
            exit_code=code,
            reason=reason,
        )

    continue_on_error = False
    try:
        contexts = state.contexts()
        value = interpolate(step.continue_on_error, contexts).strip().lower()
        continue_on_error = value == "true"
        if not condition(step.if_, contexts):
            state.say(f"Skipped: `if: {step.if_ or 'success()'}` is false")
            if step.id:
                state.steps[step.id] = {"outputs": {}}
            return StepOutcome(
                number=step.number, title=step.title, outcome="skipped", conclusion="skipped"
            )
        step_env = _evaluated(step.env, contexts)
        with_ = _evaluated(step.with_, contexts)
        if step.uses is not None:
            return _uses_step(state, step, step_env, with_, deadline, done)
        script = interpolate(step.run or "", state.contexts({**state.env, **step_env}))
        argv, suffix = _shell(step.shell or state.run.job.shell or state.run.workflow.shell)
        for line in script.rstrip("\n").splitlines():
            state.say("  " + line)
        script_file = state.workdir / "temp" / f"{uuid.uuid4()}{suffix}"
        script_file.write_text(script, encoding="utf-8")
        script_file.chmod(0o600)
        cwd = _working_directory(state, step, contexts)
        command = [part.replace("{0}", str(script_file)) for part in argv]
        return _process_step(state, step, command, step_env, cwd, deadline, done)
    except KeylessError as exc:
        return done("failure", 2, exc.message)


def _shell(shell: str | None) -> tuple[tuple[str, ...], str]:
    if shell is None or shell == "bash":
        if shutil.which("bash") is None:
            return _SHELLS["sh"], ".sh"
        return _SHELLS["bash"], ".sh"
    if shell in _SHELLS:
        return _SHELLS[shell], ".py" if shell == "python" else ".sh"
    if "{0}" in shell:
        return tuple(shlex.split(shell)), ""
    raise WorkflowError(
        f"shell: {shell} is not run here; use bash, sh, python or a command with {{0}}"
    )


def _working_directory(state: _Job, step: Step, contexts: Contexts) -> Path:
    folder = step.working_directory or state.run.job.working_directory
    if folder is None:
        return state.workspace
    path = state.workspace / interpolate(folder, contexts)
    if not path.is_dir():
        raise WorkflowError(f"working-directory {folder} does not exist in $GITHUB_WORKSPACE")
    return path


def _uses_step(
    state: _Job,
    step: Step,
    step_env: Mapping[str, str],
    with_: Mapping[str, str],
    deadline: float,
    done: _Done,
) -> StepOutcome:
    uses = step.uses or ""
    kind = actions.resolve_action(uses, state.run.repo_dir)
    for name, value in with_.items():
        state.say(f"  with {name}: {value}")
    if kind == "checkout":
        result = actions.checkout(state.run.repo_dir, state.workspace, with_)
    elif kind == "setup-python":
        env = state.process_env(step_env, {})
        result = actions.setup_python(with_, env)
    else:
        command = actions.configure_command(kind, with_)
        for note in command.notes:
            state.say(note)
        return _process_step(
            state,
            step,
            list(command.argv),
            {**step_env, **command.env},
            state.workspace,
            deadline,
            done,
        )
    for line in result.lines:
        state.say(line)
    state.path.extend(result.path)
    state.env.update(result.env)
    if step.id:
        state.steps[step.id] = {"outputs": dict(result.outputs)}
    return done("success", 0, None)


def _process_step(
    state: _Job,
    step: Step,
    command: Sequence[str],
    step_env: Mapping[str, str],
    cwd: Path,
    deadline: float,
    done: _Done,
) -> StepOutcome:
    files_dir = state.workdir / "temp" / "_runner_file_commands"
    files_dir.mkdir(mode=0o700, exist_ok=True)
    token = uuid.uuid4()
    files = {
        "GITHUB_ENV": files_dir / f"set_env_{token}",
        "GITHUB_OUTPUT": files_dir / f"set_output_{token}",
        "GITHUB_PATH": files_dir / f"add_path_{token}",
        "GITHUB_STEP_SUMMARY": files_dir / f"step_summary_{token}",
    }
    for path in files.values():
        path.touch(mode=0o600)
    env = state.process_env(step_env, files)
    limit = step.timeout_minutes * _SECONDS_PER_MINUTE if step.timeout_minutes else None
    left = deadline - time.monotonic()
    seconds = max(0.0, min(left, limit) if limit is not None else left)
    outputs: dict[str, str] = {}
    code, timed_out = _run_process(state, command, env, cwd, seconds, outputs)
    try:
        outputs.update(_apply_files(state, files))
    except FileCommandError as exc:
        return done("failure", code or 1, f"Unable to process file command: {exc.message}")
    if step.id:
        state.steps[step.id] = {"outputs": outputs}
    if timed_out:
        return done("failure", code, f"The step has timed out after {seconds / 60:.1f} minutes")
    if code != 0:
        return done("failure", code, f"Process completed with exit code {code}.")
    return done("success", 0, None)


def _apply_files(state: _Job, files: Mapping[str, Path]) -> dict[str, str]:
    for name, value in parse_env_file(
        read_command_file(files["GITHUB_ENV"], what="GITHUB_ENV"), what="GITHUB_ENV"
    ):
        if name.startswith(_RUNNER_OWNED) or name == "NODE_OPTIONS":
            state.say(f"Warning: $GITHUB_ENV cannot set {name}; the runner's value stays")
            continue
        state.env[name] = value
    outputs = dict(
        parse_env_file(
            read_command_file(files["GITHUB_OUTPUT"], what="GITHUB_OUTPUT"), what="GITHUB_OUTPUT"
        )
    )
    for folder in parse_path_file(read_command_file(files["GITHUB_PATH"], what="GITHUB_PATH")):
        if folder in state.path:
            state.path.remove(folder)
        state.path.append(folder)
    summary = files["GITHUB_STEP_SUMMARY"]
    size = summary.stat().st_size if summary.exists() else 0
    if size > WORKFLOW_STEP_SUMMARY_MAX_BYTES:
        state.say(
            f"Error: $GITHUB_STEP_SUMMARY upload aborted, supports content up to a size of"
            f" {WORKFLOW_STEP_SUMMARY_MAX_BYTES // 1024}k, got {size // 1024}k"
        )
    elif size:
        state.summary.append(state.masker(summary.read_text(encoding="utf-8", errors="replace")))
    return outputs


def _run_process(
    state: _Job,
    command: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    seconds: float,
    outputs: dict[str, str],
) -> tuple[int, bool]:
    program = shutil.which(command[0], path=env.get("PATH")) or command[0]
    state.log.flush()
    reader = StdoutCommands(state.masker)

    def on_line(line: str) -> None:
        shown = reader.line(line.rstrip("\n"))
        if shown.output is not None:
            outputs[shown.output[0]] = shown.output[1]
        if shown.text is not None:
            state.say(shown.text)

    try:
        # Its own process group: a timeout or Ctrl-C ends the whole step, children included.
        result = run_group(
            [program, *command[1:]], env=env, cwd=cwd, on_line=on_line, max_seconds=seconds
        )
    except OSError as exc:
        state.say(f"cannot start {command[0]}: {exc.strerror}")
        return 127, False
    return result.code, result.timed_out
