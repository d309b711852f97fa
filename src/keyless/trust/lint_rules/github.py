"""Rules specific to GitHub Actions' token subjects and reusable workflows."""

from __future__ import annotations

from collections.abc import Iterator

from keyless.ci.base import SegmentRole
from keyless.trust.findings import Severity
from keyless.trust.lint_rules.registry import Hit, rule
from keyless.trust.lint_rules.targets import (
    Document,
    Target,
    allows,
    closed_by,
    example_fix,
    has_control,
    is_github,
    pinned,
    positive_string,
    subject_values,
)
from keyless.trust.subjects import Breadth, SubjectShape


def _writer_grade(target: Target) -> Severity:
    # Anyone who can push a branch can open a pull request from it: high for a role that may
    # write, low once read-only permissions or a closing condition narrow it.
    if not target.context.may_write or closed_by(target) is not None:
        return Severity.LOW
    return Severity.HIGH


@rule(
    id="github-pull-request",
    severity=Severity.HIGH,
    grade=_writer_grade,
    title="GitHub pull_request subject",
    help="pull_request runs execute unmerged code of any branch with the role: anyone who can"
    " push a branch and open a pull request can assume it.",
    fix="Trust a protected environment (`...:environment:NAME`) or the default"
    " branch instead; give pull requests a read-only role if they need one.",
)
def github_pull_request(doc: Document) -> Iterator[Hit]:
    for target in filter(is_github, allows(doc)):
        for item in subject_values(doc, target):
            if item.value.endswith(":pull_request"):
                yield Hit(
                    target,
                    f"`sub` value {item.value!r} admits pull_request runs: anyone who can push"
                    " a branch and open a pull request runs unmerged code with the role",
                    "Trust a protected environment instead: "
                    + example_fix(target).split(": ", 1)[1],
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


_NAMED = (Breadth.EXACT, Breadth.PER_RUN, Breadth.REPO_WIDE)


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
        # Only values of the default template name the repository; a customised template
        # (`repository_owner_id:N:...`) is github-custom-subject's.
        pinned = [v for v in values if v.shape.breadth in _NAMED]
        if pinned and not any(_is_immutable(v.shape) for v in pinned):
            item = pinned[0]
            yield Hit(
                target,
                f"`sub` value {item.value!r} names the repository by name only: whoever"
                " registers the name after a rename, transfer or deletion can assume the role,"
                " and it stops matching once the repository uses immutable subjects"
                " (repo:OWNER@ID/REPO@ID, default after renames and transfers since"
                " 2026-07-15)",
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


#: Claims a GitHub job (or whoever writes its workflow) chooses; as the first claim of a
#: customised subject template they come before anything naming the repository, so a value that
#: pins them admits any repository that uses such a template (docs/ci-tokens.md#github-sub).
_JOB_CHOSEN = frozenset(
    {
        "actor",
        "base_ref",
        "context",
        "environment",
        "event_name",
        "head_ref",
        "job_workflow_ref",
        "ref",
        "ref_type",
        "runner_environment",
        "workflow",
        "workflow_ref",
    }
)


def _first_claim(value: str) -> str:
    return value.partition(":")[0]


def is_custom_template(target: Target) -> bool:
    """A GitHub `sub` condition written for a customised subject template (include_claim_keys)
    led by a claim the job chooses (github-custom-subject-job-chosen reports it)."""
    if not is_github(target):
        return False
    return any(
        _first_claim(value) in _JOB_CHOSEN
        for condition in target.conditions("sub")
        if positive_string(condition)
        for value in condition.string_values
    )


@rule(
    id="github-custom-subject-job-chosen",
    severity=Severity.HIGH,
    title="GitHub custom subject led by a claim the job chooses",
    help="A customised subject template whose first claim is `environment`, `workflow`, `ref` or"
    " `context` lets any repository that uses such a template produce the pinned value"
    " (Checkov CKV_AWS_358 fails it).",
    fix="Lead the template with `repository_owner_id` and `repository_id`, or use the default"
    " subject: keyless trust build --ci github --repository OWNER/REPO --environment NAME"
    " --owner-id N --repository-id N.",
)
def github_custom_subject(doc: Document) -> Iterator[Hit]:
    for target in filter(is_github, allows(doc)):
        if pinned(target, "repository_id"):
            continue  # the repository is pinned by its immutable id in its own condition
        for condition in target.conditions("sub"):
            if not positive_string(condition):
                continue
            for value in condition.string_values:
                claim = _first_claim(value)
                if claim in _JOB_CHOSEN:
                    yield Hit(
                        target,
                        f"`sub` value {value!r} starts with `{claim}`, which the job chooses:"
                        " any repository whose subject template starts the same way, in any"
                        " organization, can produce it and assume the role",
                        location=condition.location,
                        element=condition.key,
                    )
                    break
