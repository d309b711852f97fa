"""What a pipeline run reports: each step's status, exit code, reason and output, and the whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from keyless.compat import StrEnum


class StepStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    #: `condition: changesets:` matched no changed file: Bitbucket skips the step.
    SKIPPED = "skipped"
    #: Ended or never started because another step of its `fail-fast` parallel group failed.
    STOPPED = "stopped"
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


_DONE: Final = (StepStatus.PASSED, StepStatus.SKIPPED)


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineResult:
    pipeline: str
    repository: str
    build_number: int
    steps: tuple[StepResult, ...]
    seconds: float

    @property
    def passed(self) -> bool:
        return all(step.status in _DONE for step in self.steps)

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
