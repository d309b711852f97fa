"""A GitHub Actions workflow file read for ``keyless local workflow``: its ``env``, ``permissions``,
``workflow_dispatch`` inputs and one job's steps, as values; what a local run cannot honour
(``strategy``, ``services``, ``container``, ``needs``, reusable workflows) is refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from keyless.errors import UsageError
from keyless.limits import WORKFLOW_DEFAULT_TIMEOUT_MINUTES
from keyless.yamlsafe import load_yaml_file

__all__ = [
    "Job",
    "Step",
    "Workflow",
    "WorkflowError",
    "id_token_granted",
    "load_values",
    "load_workflow",
]

#: Job keys a local run cannot honour: each would change what the job does.
_REFUSED_JOB_KEYS: Final = {
    "strategy": "matrix jobs are not run here; run one combination by writing its values in",
    "services": "service containers are not started here",
    "container": "jobs run on this machine, not in a container",
    "uses": "reusable workflows are not run here",
}


class WorkflowError(UsageError):
    """The workflow file, the job or one of its steps is unusable here."""

    kind = "workflow"


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    #: 1-based position in the job.
    number: int
    id: str | None
    name: str | None
    run: str | None
    uses: str | None
    with_: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    if_: str | None = None
    shell: str | None = None
    working_directory: str | None = None
    #: ``true``/``false`` or an expression.
    continue_on_error: str = "false"
    timeout_minutes: float | None = None

    @property
    def title(self) -> str:
        """What GitHub's log calls the step: its name, else ``Run <first line or uses>``."""
        if self.name:
            return self.name
        if self.uses:
            return f"Run {self.uses}"
        first = (self.run or "").strip().splitlines()
        return f"Run {first[0] if first else ''}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    id: str
    name: str | None
    #: The deployment environment (``environment:`` or ``environment: {name:}``), as written.
    environment: str | None
    env: Mapping[str, str]
    #: ``None``: the job has no ``permissions:`` of its own (the workflow's apply).
    permissions: object
    if_: str | None
    steps: tuple[Step, ...]
    shell: str | None
    working_directory: str | None
    timeout_minutes: float
    #: Why this job cannot run here (keys a local run cannot honour), first reason first.
    refusals: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Workflow:
    path: Path
    name: str | None
    env: Mapping[str, str]
    permissions: object
    #: workflow_dispatch inputs: name -> default ("" when none).
    inputs: Mapping[str, str]
    #: Names of the events in `on:`.
    events: tuple[str, ...]
    jobs: Mapping[str, Job]
    shell: str | None
    working_directory: str | None

    def job(self, job_id: str | None) -> Job:
        if job_id is None:
            if len(self.jobs) == 1:
                return self.job(next(iter(self.jobs)))
            raise WorkflowError(
                f"{self.path} has {len(self.jobs)} jobs; choose one with --job"
                f" ({', '.join(self.jobs)})"
            )
        if job_id not in self.jobs:
            raise WorkflowError(
                f"{self.path} has no job {job_id!r}; its jobs are {', '.join(self.jobs)}"
            )
        job = self.jobs[job_id]
        if job.refusals:
            raise WorkflowError(f"{self.path}: {job.refusals[0]}")
        return job


def id_token_granted(workflow: Workflow, job: Job) -> bool:
    """The job may request an OIDC token: ``id-token: write`` (or ``write-all``) in its own
    ``permissions:``, else in the workflow's. GitHub's default for ``id-token`` is ``none``, and a
    job's ``permissions:`` replaces the workflow's entirely (GitHub Docs, "Controlling permissions
    for GITHUB_TOKEN")."""
    permissions = job.permissions if job.permissions is not None else workflow.permissions
    if permissions == "write-all":
        return True
    if isinstance(permissions, Mapping):
        return permissions.get("id-token") == "write"
    return False


def load_workflow(path: Path) -> Workflow:
    document = load_yaml_file(path, error=WorkflowError)
    if not isinstance(document, Mapping):
        raise WorkflowError(f"{path} is not a workflow (a mapping with `jobs:`)")
    jobs_node = document.get("jobs")
    if not isinstance(jobs_node, Mapping) or not jobs_node:
        raise WorkflowError(f"{path} has no `jobs:`")
    # YAML 1.1 reads a bare `on` key as true.
    on = document.get("on", document.get(True))
    events, inputs = _events(on, path)
    defaults = _defaults(document.get("defaults"), "defaults", path)
    jobs = {
        str(job_id): _job(str(job_id), body, path, defaults) for job_id, body in jobs_node.items()
    }
    return Workflow(
        path=path,
        name=_optional_text(document.get("name"), "name", path),
        env=_text_map(document.get("env"), "env", path),
        permissions=document.get("permissions"),
        inputs=inputs,
        events=events,
        jobs=jobs,
        shell=defaults[0],
        working_directory=defaults[1],
    )


def _events(on: object, path: Path) -> tuple[tuple[str, ...], dict[str, str]]:
    if isinstance(on, str):
        return (on,), {}
    if isinstance(on, list):
        return tuple(str(event) for event in on), {}
    if not isinstance(on, Mapping):
        return (), {}
    inputs: dict[str, str] = {}
    dispatch = on.get("workflow_dispatch")
    declared = dispatch.get("inputs") if isinstance(dispatch, Mapping) else None
    if isinstance(declared, Mapping):
        for name, spec in declared.items():
            default = spec.get("default") if isinstance(spec, Mapping) else None
            inputs[str(name)] = "" if default is None else _scalar(default, f"input {name}", path)
    return tuple(str(event) for event in on), inputs


def _defaults(node: object, where: str, path: Path) -> tuple[str | None, str | None]:
    if node is None:
        return None, None
    run = node.get("run") if isinstance(node, Mapping) else None
    if not isinstance(run, Mapping):
        return None, None
    shell = _optional_text(run.get("shell"), f"{where}.run.shell", path)
    folder = _optional_text(run.get("working-directory"), f"{where}.run.working-directory", path)
    return shell, folder


def _job(job_id: str, body: object, path: Path, defaults: tuple[str | None, str | None]) -> Job:
    where = f"jobs.{job_id}"
    if not isinstance(body, Mapping):
        raise WorkflowError(f"{path}: {where} is not a mapping")
    steps_node = body.get("steps")
    if not isinstance(steps_node, list):
        steps_node = []
    environment = body.get("environment")
    if isinstance(environment, Mapping):
        environment = environment.get("name")
    job_shell, job_folder = _defaults(body.get("defaults"), f"{where}.defaults", path)
    timeout = body.get("timeout-minutes", WORKFLOW_DEFAULT_TIMEOUT_MINUTES)
    refusals = [f"{where}.{key}: {why}" for key, why in _REFUSED_JOB_KEYS.items() if key in body]
    if "needs" in body:
        refusals.append(
            f"{where}.needs: one job runs here, without `needs.*`; run the jobs it needs with"
            " their own --job first"
        )
    if not steps_node:
        refusals.append(f"{where} has no `steps:`")
    return Job(
        id=job_id,
        name=_optional_text(body.get("name"), f"{where}.name", path),
        environment=_optional_text(environment, f"{where}.environment", path),
        env=_text_map(body.get("env"), f"{where}.env", path),
        permissions=body.get("permissions"),
        if_=_optional_text(body.get("if"), f"{where}.if", path),
        steps=tuple(
            _step(number, node, f"{where}.steps[{number - 1}]", path)
            for number, node in enumerate(steps_node, start=1)
        ),
        shell=job_shell or defaults[0],
        working_directory=job_folder or defaults[1],
        timeout_minutes=_minutes(timeout, f"{where}.timeout-minutes", path),
        refusals=tuple(refusals),
    )


def _step(number: int, node: object, where: str, path: Path) -> Step:
    if not isinstance(node, Mapping):
        raise WorkflowError(f"{path}: {where} is not a mapping")
    run = _optional_text(node.get("run"), f"{where}.run", path)
    uses = _optional_text(node.get("uses"), f"{where}.uses", path)
    if (run is None) == (uses is None):
        raise WorkflowError(f"{path}: {where} needs exactly one of `run:` and `uses:`")
    continue_on_error = node.get("continue-on-error", False)
    timeout = node.get("timeout-minutes")
    return Step(
        number=number,
        id=_optional_text(node.get("id"), f"{where}.id", path),
        name=_optional_text(node.get("name"), f"{where}.name", path),
        run=run,
        uses=uses,
        with_=_text_map(node.get("with"), f"{where}.with", path),
        env=_text_map(node.get("env"), f"{where}.env", path),
        if_=_optional_text(node.get("if"), f"{where}.if", path),
        shell=_optional_text(node.get("shell"), f"{where}.shell", path),
        working_directory=_optional_text(
            node.get("working-directory"), f"{where}.working-directory", path
        ),
        continue_on_error=_scalar(continue_on_error, f"{where}.continue-on-error", path),
        timeout_minutes=None if timeout is None else _minutes(timeout, where, path),
    )


def _minutes(value: object, where: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise WorkflowError(f"{path}: {where} must be a positive number of minutes")
    return float(value)


def _scalar(value: object, where: str, path: Path) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise WorkflowError(f"{path}: {where} must be a string, number or boolean")


def _optional_text(value: object, where: str, path: Path) -> str | None:
    return None if value is None else _scalar(value, where, path)


def _text_map(value: object, where: str, path: Path) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise WorkflowError(f"{path}: {where} must be a mapping of names to values")
    return {
        str(name): "" if item is None else _scalar(item, f"{where}.{name}", path)
        for name, item in value.items()
    }


def load_values(path: Path, *, what: str) -> dict[str, str]:
    """A ``--secrets``/``--vars`` file: one YAML (or JSON) mapping of NAME: value."""
    document = load_yaml_file(path, error=WorkflowError)
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise WorkflowError(f"{what} file {path} must be a mapping of NAME: value")
    values: dict[str, str] = {}
    for name, value in document.items():
        if not isinstance(name, str) or not name:
            raise WorkflowError(f"{what} file {path}: names must be non-empty strings")
        if isinstance(value, Mapping | list):
            raise WorkflowError(f"{what} file {path}: {name} must be a string, number or boolean")
        values[name] = "" if value is None else _scalar(value, name, path)
    return values
