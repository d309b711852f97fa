"""Rules specific to GitHub Actions' token subjects and reusable workflows."""

from __future__ import annotations

from collections.abc import Iterator

from keyless.ci.base import SegmentRole
from keyless.trust.findings import Severity
from keyless.trust.lint_rules.registry import Hit, rule
from keyless.trust.lint_rules.targets import (
    Document,
    allows,
    has_control,
    is_github,
    positive_string,
    subject_values,
)
from keyless.trust.subjects import Breadth, SubjectShape


@rule(
    id="github-pull-request",
    severity=Severity.MEDIUM,
    title="GitHub pull_request subject",
    help="pull_request runs execute unmerged code of any branch with the role.",
    fix="Trust a protected environment (`...:environment:NAME`) or the default"
    " branch instead; give pull requests a read-only role if they need one.",
)
def github_pull_request(doc: Document) -> Iterator[Hit]:
    for target in filter(is_github, allows(doc)):
        for item in subject_values(doc, target):
            if item.value.endswith(":pull_request"):
                yield Hit(
                    target,
                    f"`sub` value {item.value!r} admits pull_request runs: unmerged code from"
                    " any branch of the repository runs with the role",
                    location=item.condition.location,
                    element=item.condition.key,
                )


@rule(
    id="github-job-workflow-ref-only",
    severity=Severity.HIGH,
    title="GitHub job_workflow_ref without a repository",
    help="job_workflow_ref names the called workflow; any repository allowed to call it passes.",
    fix="Add a `sub` (or `repository_id`) condition naming the calling repositories.",
)
def github_job_workflow_ref_only(doc: Document) -> Iterator[Hit]:
    for target in filter(is_github, allows(doc)):
        workflow = target.conditions("job_workflow_ref")
        if not workflow or has_control(doc, target):
            continue
        yield Hit(
            target,
            "trusts `job_workflow_ref` without `sub`, `repository` or `repository_id`: any"
            " repository allowed to call that reusable workflow (for a public one, any"
            " repository on GitHub) can assume the role",
            location=workflow[0].location,
            element=workflow[0].key,
        )


@rule(
    id="github-floating-workflow-ref",
    severity=Severity.LOW,
    title="GitHub reusable workflow pinned to a branch",
    help="A branch ref lets whoever pushes to it change what runs with the role.",
    fix="Pin the reusable workflow to a tag or a commit SHA.",
)
def github_floating_workflow_ref(doc: Document) -> Iterator[Hit]:
    for target in filter(is_github, allows(doc)):
        for condition in target.conditions("job_workflow_ref"):
            floating = [v for v in condition.string_values if "@refs/heads/" in v]
            if floating and positive_string(condition):
                yield Hit(
                    target,
                    f"`job_workflow_ref` {floating[0]!r} follows a branch: whoever can push"
                    " to it changes what runs with the role",
                    location=condition.location,
                    element=condition.key,
                )


def _is_immutable(shape: SubjectShape) -> bool:
    return any(
        segment.role in (SegmentRole.TENANT, SegmentRole.REPOSITORY) and "@" in text
        for segment, text in shape.fields
    )


@rule(
    id="github-name-only-subject",
    severity=Severity.LOW,
    title="GitHub subject by name only",
    help="Repositories on the immutable subject format (repo:OWNER@ID/REPO@ID) never match"
    " name-only values, and deleted names can be registered again.",
    fix="Use the immutable form (keyless trust build --ci github ... --owner-id N"
    " --repository-id N), which also pins `repository_id`.",
)
def github_name_only(doc: Document) -> Iterator[Hit]:
    for target in filter(is_github, allows(doc)):
        if any(positive_string(c) for c in target.conditions("repository_id")):
            continue
        values = subject_values(doc, target)
        pinned = [v for v in values if v.shape.breadth.rank <= Breadth.REPO_WIDE.rank]
        if pinned and not any(_is_immutable(v.shape) for v in pinned):
            item = pinned[0]
            yield Hit(
                target,
                f"`sub` value {item.value!r} names the repository by name only: it stops"
                " matching once the repository uses immutable subjects"
                " (repo:OWNER@ID/REPO@ID, default after renames and transfers since"
                " 2026-07-15), and a deleted name can be registered again",
                location=item.condition.location,
                element=item.condition.key,
            )


@rule(
    id="github-branch-without-environment",
    severity=Severity.INFO,
    title="GitHub branch subject without an environment",
    help="pull_request_target runs get the base branch's subject although they can run fork"
    " code; protected environments are the gate that shows up in `sub`.",
    fix="For deploy roles, trust a protected environment (`...:environment:NAME`).",
)
def github_branch_without_environment(doc: Document) -> Iterator[Hit]:
    for target in filter(is_github, allows(doc)):
        for item in subject_values(doc, target):
            context = {s.role: t for s, t in item.shape.fields}.get(SegmentRole.CONTEXT)
            if item.shape.breadth is Breadth.EXACT and (context or "").startswith(
                "ref:refs/heads/"
            ):
                yield Hit(
                    target,
                    f"`sub` value {item.value!r} trusts a branch: pull_request_target runs"
                    " get the base branch's subject although they can run fork code",
                    location=item.condition.location,
                    element=item.condition.key,
                )


@rule(
    id="github-environment-colon",
    severity=Severity.LOW,
    title="GitHub environment name with an encoded colon",
    help="GitHub writes : as %3A, so Production:V1 and Production%3AV1 give the same subject.",
    fix="Rename the environment so that it has no `:`.",
)
def github_environment_colon(doc: Document) -> Iterator[Hit]:
    for target in filter(is_github, allows(doc)):
        for item in subject_values(doc, target):
            if "%3A" in item.value.upper():
                yield Hit(
                    target,
                    f"`sub` value {item.value!r} contains %3A: GitHub writes `:` in names as"
                    " %3A, so two different environment names can give this subject",
                    location=item.condition.location,
                    element=item.condition.key,
                )
