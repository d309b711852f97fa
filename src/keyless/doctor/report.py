"""What doctor reports: each step ok, problem or skipped, with its named cause and fix; and the
request it checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from keyless.arn import RoleArn
from keyless.causes import Cause
from keyless.compat import StrEnum
from keyless.trust.model import Policy

__all__ = ["DoctorRequest", "Report", "Status", "Step"]


class Status(StrEnum):
    OK = "ok"
    PROBLEM = "problem"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    name: str
    status: Status
    summary: str
    cause: Cause | None = None
    fix: str | None = None
    #: Lines shown under the step (claims, condition rows); never secrets.
    details: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "status": self.status.value,
            "summary": self.summary,
            "cause": self.cause.value if self.cause else None,
            "fix": self.fix,
            "details": list(self.details),
            **({"data": dict(self.data)} if self.data else {}),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    steps: tuple[Step, ...]

    @property
    def ok(self) -> bool:
        return all(step.status is not Status.PROBLEM for step in self.steps)

    @property
    def causes(self) -> tuple[Cause, ...]:
        found: list[Cause] = []
        for step in self.steps:
            if step.status is Status.PROBLEM and step.cause and step.cause not in found:
                found.append(step.cause)
        return tuple(found)

    def to_json(self) -> dict[str, Any]:
        causes = self.causes
        return {
            "ok": self.ok,
            "cause": causes[0].value if causes else None,
            "causes": [cause.value for cause in causes],
            "steps": [step.to_json() for step in self.steps],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DoctorRequest:
    env: Mapping[str, str]
    ci: str = "auto"
    audience: str | None = None
    token_file: str | None = None
    token_env: str | None = None
    role_arn: RoleArn | None = None
    #: A trust policy given with ``--policy FILE`` (else read from IAM when credentials allow).
    policy: Policy | None = None
    policy_source: str | None = None
    region: str | None = None
