"""Running a planned pipeline: each step's bash in its own process group (max-time, Ctrl-C), its
output logged with the token masked, the results; and git, asked what is checked out.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TextIO, TypeAlias

from keyless.ci import bitbucket
from keyless.ci.base import JobTokens
from keyless.ci.bitbucket import BitbucketScope
from keyless.compat import StrEnum
from keyless.local.pipeline.identities import resolve_identity
from keyless.local.pipeline.parse import Command, PipeCall, Step, command_text
from keyless.local.pipeline.plan import PipelinePlan
from keyless.local.pipeline.script import (
    StepJob,
    process_environment,
    setup_lines,
    step_script,
    step_variables,
)
from keyless.local.served import RemoteTokens, StackInfo

#: Seconds git may take to name the checkout's branch and commit.
_GIT_TIMEOUT_SECONDS: Final = 10.0
#: Seconds a step's processes get to end after SIGTERM (max-time, Ctrl-C) before SIGKILL.
_STOP_GRACE_SECONDS: Final = 5.0
_SECONDS_PER_MINUTE: Final = 60


def git_checkout(folder: Path) -> tuple[str | None, str | None]:
    """The branch and commit checked out in ``folder`` when it is a git work tree."""

    def git(*argv: str) -> str | None:
        try:
            done = subprocess.run(  # noqa: S603 - fixed git arguments
                ["git", "-C", str(folder), *argv],  # noqa: S607 - git from PATH, as a person runs it
                capture_output=True,
                text=True,
                timeout=_GIT_TIMEOUT_SECONDS,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    branch = git("symbolic-ref", "--quiet", "--short", "HEAD")
    commit = git("rev-parse", "--verify", "--quiet", "HEAD")
    if commit is not None and not re.fullmatch(r"[0-9a-f]{40}", commit):
        commit = None
    return branch, commit


# --- running it ----------------------------------------------------------------------------------


class StepStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_RUN = "not run"


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    name: str
    deployment: str | None
    status: StepStatus
    exit_code: int | None = None
    #: The command that failed, as written in the file.
    failed_command: str | None = None
    #: Why it failed, in words ("pipe X is not emulated", "max-time of 5 minutes reached").
    reason: str | None = None
    seconds: float = 0.0
    #: The token's `sub`, when the step had `oidc: true`.
    subject: str | None = None
    #: What the step printed (stdout and stderr merged), the token masked.
    output: str = field(default="", repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "deployment": self.deployment,
            "status": self.status.value,
            "exit_code": self.exit_code,
            "failed_command": self.failed_command,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
            "subject": self.subject,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineResult:
    pipeline: str
    repository: str
    build_number: int
    steps: tuple[StepResult, ...]
    seconds: float

    @property
    def passed(self) -> bool:
        return all(step.status is StepStatus.PASSED for step in self.steps)

    @property
    def exit_code(self) -> int:
        """0 when every step passed, else the exit code of the first failed command (1 if none)."""
        for step in self.steps:
            if step.status is StepStatus.FAILED:
                return step.exit_code or 1
        return 0

    def step(self, name: str) -> StepResult:
        return next(step for step in self.steps if step.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "repository": self.repository,
            "build_number": self.build_number,
            "passed": self.passed,
            "steps": [step.to_json() for step in self.steps],
            "seconds": round(self.seconds, 3),
        }


TokensFor: TypeAlias = Callable[[BitbucketScope], JobTokens]


def run_pipeline(
    plan: PipelinePlan,
    *,
    stack: StackInfo,
    base_env: Mapping[str, str],
    log: TextIO,
    tokens_for: TokensFor | None = None,
) -> PipelineResult:
    """Run ``plan``'s steps in turn against ``stack``, writing a Bitbucket-like log to ``log``;
    the first failed step stops the pipeline (the rest of its parallel group still runs)."""
    began = time.monotonic()
    identity = resolve_identity(
        plan.identities, repository=plan.repository, deployments=plan.deployments, new_build=True
    )
    make_tokens = tokens_for or (lambda scope: RemoteTokens.of(stack, bitbucket.PROVIDER, scope))
    steps = [step for group in plan.groups for step in group]
    pipeline_uuid = str(uuid.uuid4())
    _say(log, f"Pipeline {plan.pipeline.key} of {plan.file.path}")
    _say(
        log,
        f"  repository {identity.repository} {{{identity.repository_uuid}}} in workspace"
        f" {identity.workspace} {{{identity.workspace_uuid}}}",
    )
    commit = plan.commit[:7] if plan.commit else "made up"
    trigger = plan.trigger
    started = f"{trigger.kind.value} {trigger.name}"
    if trigger.destination is not None:
        started += f" into {trigger.destination} (#{plan.pr_id})"
    _say(log, f"  {started}, commit {commit}, build #{identity.build_number}")
    _say(log, f"  AWS: the local stack at {stack.endpoint_url}; no AWS key in any step")
    results: list[StepResult] = []
    failed = False
    paused = False
    number = 0
    for group in plan.groups:
        for step in group:
            number += 1
            if failed or paused:
                results.append(_not_run(step))
                continue
            if step.manual and not plan.manual:
                # Bitbucket pauses the pipeline here until someone runs the step.
                _say(
                    log,
                    f"Step {step.name!r} is `trigger: manual`: the pipeline stops here"
                    " (run it with --manual, or --step NAME)",
                )
                paused = True
                results.append(_not_run(step))
                continue
            result = _run_step(
                StepJob(
                    plan=plan,
                    step=step,
                    number=number,
                    total=len(steps),
                    identity=identity,
                    pipeline_uuid=pipeline_uuid,
                    parallel=(group.index(step) + 1, len(group)) if len(group) > 1 else None,
                ),
                stack=stack,
                base_env=base_env,
                log=log,
                tokens=make_tokens(identity.scope(step.deployment)),
            )
            results.append(result)
        failed = failed or any(r.status is StepStatus.FAILED for r in results)
    outcome = PipelineResult(
        pipeline=plan.pipeline.key,
        repository=identity.repository,
        build_number=identity.build_number,
        steps=tuple(results),
        seconds=time.monotonic() - began,
    )
    passed = sum(1 for r in results if r.status is StepStatus.PASSED)
    if outcome.passed:
        _say(log, f"Pipeline PASSED: {passed} of {len(results)} steps in {outcome.seconds:.1f} s")
    elif paused and not failed:
        waiting = next(r for r in results if r.status is StepStatus.NOT_RUN)
        _say(
            log,
            f"Pipeline PAUSED before manual step {waiting.name!r}: {passed} of {len(results)}"
            " steps passed",
        )
    else:
        first = next(r for r in results if r.status is StepStatus.FAILED)
        _say(
            log,
            f"Pipeline FAILED at step {first.name!r}: {first.reason};"
            f" {passed} of {len(results)} steps passed",
        )
    return outcome


def step_masks(variables: Mapping[str, str], secured: Mapping[str, str]) -> dict[str, str]:
    """What the step's output is masked with, as Bitbucket masks secured variables: each value
    (the OIDC token, secured variables) replaced by ``$NAME`` wherever it occurs; the longest
    first, so a secret containing another is masked whole. Encoded forms (base64) are not
    masked, as in Bitbucket."""
    found = {value: f"${name}" for name, value in secured.items() if value}
    token = variables.get(bitbucket.STEP_VARIABLE, "")
    if token:
        found[token] = f"${bitbucket.STEP_VARIABLE}"
    return dict(sorted(found.items(), key=lambda item: -len(item[0])))


def _not_run(step: Step) -> StepResult:
    return StepResult(name=step.name, deployment=step.deployment, status=StepStatus.NOT_RUN)


def _run_step(
    job: StepJob, *, stack: StackInfo, base_env: Mapping[str, str], log: TextIO, tokens: JobTokens
) -> StepResult:
    step = job.step
    title = f"Step {job.number}/{job.total}: {step.name}"
    if step.deployment:
        title += f" (deployment: {step.deployment})"
    _say(log, f"=== {title} " + "=" * max(3, 95 - len(title)))
    began = time.monotonic()
    variables, claims = step_variables(job, tokens)
    _say(log, "Build setup")
    for line in setup_lines(job, claims):
        _say(log, "  " + line)
    masks = step_masks(variables, job.plan.variables.secrets_for_step(step.deployment))
    with tempfile.TemporaryDirectory(prefix="keyless-step-") as scratch:
        workdir = Path(scratch)
        env = process_environment(workdir, variables, stack=stack, base_env=base_env)
        run = functools.partial(
            run_commands, env=env, workdir=workdir, cwd=job.plan.clone_dir, log=log, masks=masks
        )
        minutes = step.max_time_minutes
        code, at, output, timed_out = run(
            step.script, max_seconds=minutes * _SECONDS_PER_MINUTE if minutes else None
        )
        if step.after_script:
            _say(log, "After script")
            # Atlassian: "The exit code of a step ... Values can be 0 (success) or 1 (failed)".
            after_code, _, after_output, _ = run(
                step.after_script,
                env={**env, "BITBUCKET_EXIT_CODE": "0" if code == 0 else "1"},
                max_seconds=None,
            )
            output += after_output
            if after_code != 0:
                _say(log, f"  after-script exited with {after_code} (the step's result stands)")
    seconds = time.monotonic() - began
    subject = str(claims["sub"]) if claims is not None else None
    result = StepResult(
        name=step.name,
        deployment=step.deployment,
        status=StepStatus.PASSED,
        exit_code=0,
        seconds=seconds,
        subject=subject,
        output=output,
    )
    if code == 0:
        _say(log, f"Step {step.name!r} PASSED in {seconds:.1f} s")
        return result
    command = step.script[at] if at is not None and at < len(step.script) else None
    reason = _failure_reason(step, command, code, timed_out=timed_out)
    _say(log, f"Step {step.name!r} FAILED in {seconds:.1f} s: {reason}")
    return replace(
        result,
        status=StepStatus.FAILED,
        exit_code=code,
        failed_command=command_text(command) if command is not None else None,
        reason=reason,
    )


def _failure_reason(step: Step, command: Command | None, code: int, *, timed_out: bool) -> str:
    if timed_out:
        return f"max-time of {step.max_time_minutes} minutes reached"
    if isinstance(command, PipeCall) and command.emulated is None:
        return f"pipe {command.name} is not emulated"
    if command is not None:
        return f"`{_first_line(command_text(command))}` exited with {code}"
    return f"exit code {code}"


def _first_line(text: str) -> str:
    first, _, rest = text.partition("\n")
    return first + (" ..." if rest.strip() else "")


def run_commands(
    commands: Sequence[Command],
    *,
    env: Mapping[str, str],
    workdir: Path,
    cwd: Path,
    log: TextIO,
    masks: Mapping[str, str],
    max_seconds: float | None,
) -> tuple[int, int | None, str, bool]:
    """Run ``commands`` in one bash; returns (exit code, index of the last command started,
    the masked output, whether max-time ended it)."""
    progress = workdir / "progress"
    progress.write_text("")
    script = workdir / "script.sh"
    script.write_text(step_script(commands, progress=progress), encoding="utf-8")
    bash = shutil.which("bash", path=env.get("PATH")) or "/bin/bash"
    log.flush()
    child = subprocess.Popen(  # noqa: S603 - the pipeline's own script; secrets are in env only
        [bash, "--noprofile", "--norc", str(script)],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # Its own process group: max-time and Ctrl-C end the whole step, children included.
        start_new_session=True,
    )
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        _stop_group(child)

    timer = threading.Timer(max_seconds, expire) if max_seconds is not None else None
    captured: list[str] = []
    with child:
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            for raw in child.stdout or ():
                line = raw.decode("utf-8", "replace")
                for secret, shown in masks.items():
                    line = line.replace(secret, shown)
                captured.append(line)
                log.write(line)
                log.flush()
            code = child.wait()
        except BaseException:
            _stop_group(child)
            raise
        finally:
            if timer is not None:
                timer.cancel()
    text = progress.read_text().strip()
    at = int(text) if text.isdigit() else None
    if code < 0:
        code = 128 - code
    return code, at, "".join(captured), timed_out.is_set()


def _stop_group(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=_STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def _say(log: TextIO, text: str) -> None:
    log.write(text + "\n")
    log.flush()
