"""Rules specific to HCP Terraform / Terraform Enterprise workload identity subjects
(`organization:O:project:P:workspace:W:run_phase:plan|apply`, docs/ci-tokens.md#terraform)."""

from __future__ import annotations

from collections.abc import Iterator

from keyless.ci.base import SegmentRole
from keyless.trust.findings import Severity
from keyless.trust.lint_rules.registry import Hit, rule
from keyless.trust.lint_rules.targets import Document, Target, allows, example_fix, subject_values
from keyless.trust.subjects import Breadth


def is_terraform(target: Target) -> bool:
    return target.provider is not None and target.provider.name == "terraform"


def _phase_grade(target: Target) -> Severity:
    return Severity.HIGH if target.context.may_write else Severity.LOW


@rule(
    id="terraform-plan-can-assume",
    severity=Severity.HIGH,
    grade=_phase_grade,
    title="HCP Terraform run phase left open",
    help="A wildcard over `run_phase` lets plan runs assume the role; anyone who can open a pull"
    " request on the workspace's VCS repository triggers a speculative plan, which runs their"
    " code.",
    fix="Pin `run_phase:apply` for the role that writes, and give plans a read-only role:"
    " keyless trust build --ci terraform --organization ORG --project PROJECT"
    " --workspace WORKSPACE --run-phase apply.",
)
def terraform_plan_can_assume(doc: Document) -> Iterator[Hit]:
    for target in filter(is_terraform, allows(doc)):
        for item in subject_values(doc, target):
            shape = item.shape
            segment = shape.segment
            if (
                shape.breadth is Breadth.REPO_WIDE
                and segment
                and segment.role is SegmentRole.CONTEXT
            ):
                who = (
                    "the role's permissions write"
                    if target.context.writes
                    else (
                        "the role may write"
                        if target.context.may_write
                        else "the role is read-only"
                    )
                )
                yield Hit(
                    target,
                    f"`sub` value {item.value!r} leaves the run phase open: plan runs, which"
                    " anyone who can open a pull request on the workspace's repository can"
                    f" trigger, can assume the role ({who})",
                    example_fix(target),
                    location=item.condition.location,
                    element=item.condition.key,
                )
