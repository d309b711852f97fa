"""Executing a planned pipeline: its groups in order, a `parallel:` group's steps at once, each
step's setup, commands and teardown logged as Bitbucket does, and the results."""

from __future__ import annotations

import concurrent.futures
import functools
import io
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, TextIO, TypeAlias

from keyless.ci import bitbucket
from keyless.ci.base import JobTokens
from keyless.ci.bitbucket import BitbucketScope
from keyless.limits import PIPELINE_MAX_CONCURRENT_STEPS, PIPELINE_STEP_OUTPUT_KEPT_CHARS
from keyless.local.pipeline.files import (
    collect_artifacts,
    download_artifacts,
    kept_artifacts,
    restore_cache,
    save_cache,
    step_caches,
)
from keyless.local.pipeline.identities import Identity, resolve_identity
from keyless.local.pipeline.model import CacheSpec, Command, PipeCall, Step, command_text
from keyless.local.pipeline.plan import PipelinePlan
from keyless.local.pipeline.results import PipelineResult, StepResult, StepStatus
from keyless.local.pipeline.run import StopSignal, run_commands
from keyless.local.pipeline.script import (
    StepJob,
    process_environment,
    setup_lines,
    step_variables,
)
from keyless.local.pipeline.source import Source, read_source
from keyless.local.served import RemoteTokens, StackInfo
from keyless.local.worktree import TreeError

_SECONDS_PER_MINUTE: Final = 60
#: A step's exit code when its files could not be set up or kept (clone, artifacts, caches).
_SETUP_FAILED: Final = 2


TokensFor: TypeAlias = Callable[[BitbucketScope], JobTokens]


@dataclass(slots=True, kw_only=True)
class _Run:
    """What the steps of one pipeline run share."""

    plan: PipelinePlan
    source: Source
    identity: Identity
    pipeline_uuid: str
    stack: StackInfo
    base_env: Mapping[str, str]
    make_tokens: TokensFor
    #: Where the artifacts of the steps so far are kept.
    artifacts: Path
    #: Where caches are kept between runs; None: no caches kept.
    caches: Path | None
    total: int
    #: The shared artifacts so far by name, each a folder of files at their paths in the clone;
    #: in the order they were made (a name made again moves to the end).
    kept: dict[str, Path] = field(default_factory=dict)


def run_pipeline(
    plan: PipelinePlan,
    *,
    stack: StackInfo,
    base_env: Mapping[str, str],
    log: TextIO,
    tokens_for: TokensFor | None = None,
    cache_dir: Path | None = None,
    max_concurrent: int = PIPELINE_MAX_CONCURRENT_STEPS,
) -> PipelineResult:
    """Run ``plan``'s steps against ``stack``, each in a fresh clone, writing a Bitbucket-like log
    to ``log``; a `parallel:` group's steps at once (at most ``max_concurrent``); the first failed
    step stops the pipeline (the rest of its group still runs unless it is `fail-fast`). Caches
    are kept below ``cache_dir``."""
    began = time.monotonic()
    source = read_source(plan)
    identity = resolve_identity(
        plan.identities, repository=plan.repository, deployments=plan.deployments, new_build=True
    )
    make_tokens = tokens_for or (lambda scope: RemoteTokens.of(stack, bitbucket.PROVIDER, scope))
    steps = [step for group in plan.groups for step in group]
    _say_start(log, plan, identity=identity, stack=stack, source=source)
    results: list[StepResult] = []
    failed = paused = False
    number = 0
    with tempfile.TemporaryDirectory(prefix="keyless-pipeline-") as scratch:
        run = _Run(
            plan=plan,
            source=source,
            identity=identity,
            pipeline_uuid=str(uuid.uuid4()),
            stack=stack,
            base_env=base_env,
            make_tokens=make_tokens,
            artifacts=Path(scratch) / "artifacts",
            caches=cache_dir / identity.repository if cache_dir is not None else None,
            total=len(steps),
        )
        for group in plan.groups:
            first = number + 1
            number += len(group)
            if failed or paused:
                results.extend(_not_run(step) for step in group)
                continue
            if any(step.manual for step in group) and not plan.manual:
                # Bitbucket pauses the pipeline here until someone runs the step.
                manual = next(step for step in group if step.manual)
                _say(
                    log,
                    f"Step {manual.name!r} is `trigger: manual`: the pipeline stops here"
                    " (run it with --manual, or --step NAME)",
                )
                paused = True
                results.extend(_not_run(step) for step in group)
                continue
            done = _run_group(run, group, first=first, log=log, max_concurrent=max_concurrent)
            results.extend(done)
            failed = any(r.status in (StepStatus.FAILED, StepStatus.STOPPED) for r in done)
    outcome = PipelineResult(
        pipeline=plan.pipeline.key,
        repository=identity.repository,
        build_number=identity.build_number,
        steps=tuple(results),
        seconds=time.monotonic() - began,
    )
    _say_outcome(log, outcome, paused=paused and not failed)
    return outcome


def _say_start(
    log: TextIO, plan: PipelinePlan, *, identity: Identity, stack: StackInfo, source: Source
) -> None:
    """The log's head: which pipeline, repository, trigger and commit, and against what."""
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
    if source.notice:
        _say(log, f"  {source.notice}")


def _say_outcome(log: TextIO, outcome: PipelineResult, *, paused: bool) -> None:
    """The log's last line: passed, paused before a manual step, or failed at a step."""
    steps = outcome.steps
    total = len(steps)
    passed = sum(1 for r in steps if r.status is StepStatus.PASSED)
    skipped = sum(1 for r in steps if r.status is StepStatus.SKIPPED)
    also = f", {skipped} skipped" if skipped else ""
    if outcome.passed:
        _say(
            log,
            f"Pipeline PASSED: {passed} of {total} steps{also} in {outcome.seconds:.1f} s",
        )
    elif paused:
        waiting = next(r for r in steps if r.status is StepStatus.NOT_RUN)
        _say(
            log,
            f"Pipeline PAUSED before manual step {waiting.name!r}: {passed} of {total}"
            f" steps passed{also}",
        )
    else:
        first_failed = next(r for r in steps if r.status is StepStatus.FAILED)
        _say(
            log,
            f"Pipeline FAILED at step {first_failed.name!r}: {first_failed.reason};"
            f" {passed} of {total} steps passed{also}",
        )


def _run_group(
    run: _Run, group: Sequence[Step], *, first: int, log: TextIO, max_concurrent: int
) -> list[StepResult]:
    """One step, or a `parallel:` group's steps at once, each logging to a buffer that goes to
    ``log`` whole when it ends (Bitbucket shows each step's log apart). The steps' artifacts are
    kept for the later groups, not for each other."""
    pending = run.artifacts.parent / f"group-{first}"
    jobs = [
        StepJob(
            plan=run.plan,
            step=step,
            number=first + index,
            total=run.total,
            identity=run.identity,
            pipeline_uuid=run.pipeline_uuid,
            parallel=(index + 1, len(group)) if len(group) > 1 else None,
            clone_dir=Path(),  # set by _run_step, in the step's own folder
        )
        for index, step in enumerate(group)
    ]
    stop = StopSignal()
    if len(jobs) == 1:
        results = [_run_step(run, jobs[0], log=log, stop=stop, pending=pending / "1")]
    else:
        workers = max(1, min(len(jobs), max_concurrent))
        _say(log, f"Parallel: {len(jobs)} steps, {workers} at once")
        lock = threading.Lock()

        def one(index: int, job: StepJob) -> StepResult:
            if stop.stopped:
                return _stopped(job.step, stop)
            buffer = io.StringIO()
            result = _run_step(run, job, log=buffer, stop=stop, pending=pending / str(index))
            with lock:
                log.write(buffer.getvalue())
                log.flush()
            return result

        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(one, index, job) for index, job in enumerate(jobs, 1)]
            try:
                results = [future.result() for future in futures]
            except BaseException:
                # Ctrl-C reaches this thread only: end every step's processes, then stop.
                stop.stop("the run was interrupted")
                raise
    # Later groups get these artifacts, in the group's step order (a later one of a name wins).
    for index in range(1, len(jobs) + 1):
        for name, files in kept_artifacts(pending / str(index)):
            folder = run.artifacts / uuid.uuid4().hex  # the name may be any text
            run.artifacts.mkdir(exist_ok=True)
            if files.is_dir():
                shutil.move(files, folder)
            else:
                folder.mkdir()
            run.kept.pop(name, None)
            run.kept[name] = folder
    shutil.rmtree(pending, ignore_errors=True)
    return results


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


def _stopped(step: Step, stop: StopSignal) -> StepResult:
    return StepResult(
        name=step.name, deployment=step.deployment, status=StepStatus.STOPPED, reason=stop.reason
    )


def _run_step(
    run: _Run, job: StepJob, *, log: TextIO, stop: StopSignal, pending: Path
) -> StepResult:
    step = job.step
    title = f"Step {job.number}/{job.total}: {step.name}"
    if step.deployment:
        title += f" (deployment: {step.deployment})"
    _say(log, f"=== {title} " + "=" * max(3, 95 - len(title)))
    changed = run.source.changed
    if changed is not None and not all(
        any(changesets.counts(path) for path in changed) for changesets in step.changesets
    ):
        return _skipped(step, log)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="keyless-step-") as scratch:
        clone = Path(scratch) / "build"
        clone.mkdir()
        workdir = Path(scratch) / "job"
        workdir.mkdir()
        job = replace(job, clone_dir=clone)
        variables, claims = step_variables(
            job, run.make_tokens(job.identity.scope(step.deployment))
        )
        _say(log, "Build setup")
        for line in setup_lines(job, claims):
            _say(log, "  " + line)
        if step.changesets and changed is None:
            _say(log, "  condition.changesets: not evaluated (git cannot tell what changed)")
        masks = step_masks(variables, job.plan.variables.secrets_for_step(step.deployment))
        env = process_environment(workdir, variables, stack=run.stack, base_env=run.base_env)
        home = Path(env["HOME"])
        caches = step_caches(step, job.plan.file.caches) if run.caches is not None else ()
        try:
            _set_up_files(run, step, clone=clone, home=home, caches=caches, log=log)
        except TreeError as exc:
            _say(log, f"Step {step.name!r} FAILED: {exc.message}")
            return StepResult(
                name=step.name,
                deployment=step.deployment,
                status=StepStatus.FAILED,
                exit_code=_SETUP_FAILED,
                reason=exc.message,
            )
        execute = functools.partial(
            run_commands, env=env, workdir=workdir, cwd=clone, log=log, masks=masks, stop=stop
        )
        minutes = step.max_time_minutes
        code, at, output, timed_out = execute(
            step.script, max_seconds=minutes * _SECONDS_PER_MINUTE if minutes else None
        )
        if step.after_script and not stop.stopped:
            _say(log, "After script")
            # Atlassian: "The exit code of a step ... Values can be 0 (success) or 1 (failed)".
            after_code, _, after_output, _ = execute(
                step.after_script,
                env={**env, "BITBUCKET_EXIT_CODE": "0" if code == 0 else "1"},
                max_seconds=None,
            )
            output = (output + after_output)[-PIPELINE_STEP_OUTPUT_KEPT_CHARS:]
            if after_code != 0:
                _say(log, f"  after-script exited with {after_code} (the step's result stands)")
        kept = stop.stopped or _tear_down(
            run, step, clone=clone, home=home, caches=caches, pending=pending, code=code, log=log
        )
        if not kept:
            code, at, timed_out = code or _SETUP_FAILED, None, False
    seconds = time.monotonic() - began
    subject = str(claims["sub"]) if claims is not None else None
    return _step_result(
        step,
        code=code,
        at=at,
        timed_out=timed_out,
        seconds=seconds,
        subject=subject,
        output=output,
        stop=stop,
        log=log,
    )


def _skipped(step: Step, log: TextIO) -> StepResult:
    """A step whose `condition: changesets:` matched no changed file, as Bitbucket skips it."""
    _say(log, f"Step {step.name!r} SKIPPED: no changed file matches condition.changesets")
    return StepResult(
        name=step.name,
        deployment=step.deployment,
        status=StepStatus.SKIPPED,
        reason="condition.changesets matched no changed file",
    )


def _set_up_files(
    run: _Run, step: Step, *, clone: Path, home: Path, caches: Sequence[CacheSpec], log: TextIO
) -> None:
    """Fill the step's folder as Bitbucket does: the clone, the artifacts it downloads, its
    caches; ``TreeError`` when one cannot be set up."""
    if step.clone:
        _say(log, "  " + run.source.fill(clone))
    else:
        _say(log, "  clone: enabled: false, the step starts in an empty folder")
    for line in download_artifacts(run.kept, clone, step.download_artifacts):
        _say(log, "  " + line)
    for spec in caches:
        _say(log, "  " + restore_cache(spec, root=_root(run), clone=clone, home=home))


def _tear_down(
    run: _Run,
    step: Step,
    *,
    clone: Path,
    home: Path,
    caches: Sequence[CacheSpec],
    pending: Path,
    code: int,
    log: TextIO,
) -> bool:
    """Keep the step's artifacts, then its caches when it passed; False (and no cache saved) when
    the artifacts could not be kept."""
    _say(log, "Build teardown")
    try:
        for line in collect_artifacts(step, clone, pending, passed=code == 0):
            _say(log, "  " + line)
    except TreeError as exc:
        _say(log, f"  {exc.message}")
        return False
    for spec in caches if code == 0 else ():
        _say(log, "  " + save_cache(spec, root=_root(run), clone=clone, home=home))
    return True


def _step_result(
    step: Step,
    *,
    code: int,
    at: int | None,
    timed_out: bool,
    seconds: float,
    subject: str | None,
    output: str,
    stop: StopSignal,
    log: TextIO,
) -> StepResult:
    """The step's result from its exit code, logged; a failure of a fail-fast step stops its
    group."""
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
    if stop.stopped:  # another step of the group failed first and ended this one
        _say(log, f"Step {step.name!r} STOPPED in {seconds:.1f} s: {stop.reason}")
        return replace(result, status=StepStatus.STOPPED, exit_code=code, reason=stop.reason)
    command = step.script[at] if at is not None and at < len(step.script) else None
    reason = _failure_reason(step, command, code, timed_out=timed_out)
    if step.fail_fast:
        stop.stop(_fail_fast_reason(step))
    _say(log, f"Step {step.name!r} FAILED in {seconds:.1f} s: {reason}")
    return replace(
        result,
        status=StepStatus.FAILED,
        exit_code=code,
        failed_command=command_text(command) if command is not None else None,
        reason=reason,
    )


def _fail_fast_reason(step: Step) -> str:
    return f"step {step.name!r} of this fail-fast parallel group failed"


def _root(run: _Run) -> Path:
    assert run.caches is not None  # noqa: S101 - caches are only chosen with a cache folder
    return run.caches


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


def _say(log: TextIO, text: str) -> None:
    log.write(text + "\n")
    log.flush()
