"""GitHub's `sub` claim: its grammar, and why a job's subject misses a role's patterns.

Facts: docs/ci-tokens.md#github-sub.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from keyless.causes import Cause
from keyless.ci.base import SegmentRole, SubjectFinding, SubjectGrammar, SubjectSegment
from keyless.ci.subject_words import is_wild, named, ref_words

#: `repo:OWNER/REPO:CONTEXT` where CONTEXT is `environment:NAME`, `pull_request`,
#: `ref:refs/heads/BRANCH` or `ref:refs/tags/TAG`; owner and repository may carry `@ID` in the
#: immutable form (docs/ci-tokens.md#github-sub).
SUBJECT_GRAMMAR = SubjectGrammar(
    segments=(
        SubjectSegment(
            literal="repo:", field="owner", role=SegmentRole.TENANT, example="zz-probe-owner"
        ),
        SubjectSegment(
            literal="/", field="repository", role=SegmentRole.REPOSITORY, example="zz-probe-repo"
        ),
        SubjectSegment(
            literal=":",
            field="ref or environment",
            role=SegmentRole.CONTEXT,
            example="ref:refs/heads/zz-probe",
            name_prefixes=("ref:refs/heads/", "ref:refs/tags/", "environment:", "ref:"),
        ),
    )
)


def encode_environment(name: str) -> str:
    """An environment name as GitHub writes it into `sub`: `:` becomes `%3A`
    (docs/ci-tokens.md#github-sub)."""
    return name.replace(":", "%3A")


# --- keyless doctor: why a GitHub `sub` does not match ------------------------------------------


def classify_subject(
    actual: str, patterns: Sequence[str], *, differing: SegmentRole | None
) -> SubjectFinding | None:
    parsed = _default_subject(actual)
    if parsed is None:
        return _custom_subject(actual)
    owner_repo, context = parsed
    repos = [repo for repo in (_pattern_repo(p) for p in patterns) if repo is not None]
    immutable = "@" in owner_repo
    if immutable and repos and not any("@" in repo for repo in repos):
        return _finding(Cause.IMMUTABLE_SUBJECT, _IMMUTABLE_FIX, actual)
    if not immutable and repos and all("@" in repo for repo in repos):
        return _finding(Cause.IMMUTABLE_SUBJECT, _IMMUTABLE_REVERSE_FIX, actual)
    if differing is not None and differing is not SegmentRole.CONTEXT:
        return None  # the owner or the repository differs
    if context == "pull_request":
        return _finding(Cause.PULL_REQUEST, _PULL_REQUEST_FIX, actual)
    pinned_environment = any(":environment:" in pattern for pattern in patterns)
    if context.startswith("environment:") and not pinned_environment:
        return _finding(Cause.DEPLOYMENT_ENVIRONMENT, _ENVIRONMENT_FIX, actual)
    if not context.startswith("environment:") and pinned_environment and patterns:
        return _finding(Cause.DEPLOYMENT_ENVIRONMENT, _NO_ENVIRONMENT_FIX, actual)
    if context.startswith("environment:"):
        return SubjectFinding(
            cause=Cause.DEPLOYMENT_ENVIRONMENT,
            fix=f"The job deploys to another environment than the role pins (sub {actual}).",
        )
    if differing is not None:
        return None  # another branch or tag
    return SubjectFinding(
        cause=Cause.SUBJECT,
        fix=f"sub {actual!r} matches none of {', '.join(patterns)}: the job runs in another"
        " repository or on another branch or tag than the role expects.",
    )


def likely_subject_cause(subject: str) -> SubjectFinding | None:
    parsed = _default_subject(subject)
    if parsed is None:
        return _custom_subject(subject)
    owner_repo, context = parsed
    if "@" in owner_repo:
        return _finding(Cause.IMMUTABLE_SUBJECT, _IMMUTABLE_FIX, subject)
    if context == "pull_request":
        return _finding(Cause.PULL_REQUEST, _PULL_REQUEST_FIX, subject)
    if context.startswith("environment:"):
        return _finding(Cause.DEPLOYMENT_ENVIRONMENT, _ENVIRONMENT_FIX, subject)
    return None


# repo:OWNER[@ID]/REPO[@ID]:CONTEXT with GitHub's default contexts (docs/ci-tokens.md#github-sub); a
# value's `:` is written %3A, so a further `:` means a custom subject template.
_DEFAULT_SUBJECT = re.compile(
    r"repo:(?P<repo>[^/:]+/[^:]+):(?P<context>pull_request|environment:[^:]+|ref:[^:]+)"
)

_IMMUTABLE_FIX = (
    "The token uses GitHub's immutable subject form ({subject}: owner and repository with @ID,"
    " the default for repositories created or renamed after 2026-07-15), and the trust policy"
    " pins the name-only form. Pin repo:OWNER@OWNER_ID/REPO@REPO_ID:... (keyless trust build"
    " --owner-id N --repository-id N), or keep both forms during a migration."
)
_IMMUTABLE_REVERSE_FIX = (
    "The trust policy pins GitHub's immutable subject form (owner and repository with @ID), and"
    " this repository's tokens use the name-only form ({subject}). Pin repo:OWNER/REPO:..., or"
    " opt the repository in to immutable subjects."
)
_PULL_REQUEST_FIX = (
    "The job runs for a pull request, so sub is {subject}; the role pins a branch or an"
    " environment. Do not let pull requests assume a deploy role: run the deploy on push to the"
    " branch, or give pull requests their own read-only role trusting ...:pull_request."
)
_ENVIRONMENT_FIX = (
    "The job has `environment:`, which makes sub {subject} instead of ...:ref:refs/heads/BRANCH."
    " Pin the environment in the trust policy (keyless trust build --environment NAME), or"
    " drop `environment:` from the job."
)
_NO_ENVIRONMENT_FIX = (
    "The trust policy pins a GitHub environment, and this job has none (sub {subject}). Add"
    " `environment: NAME` to the job."
)


def _finding(cause: Cause, fix: str, subject: str) -> SubjectFinding:
    return SubjectFinding(cause=cause, fix=fix.format(subject=subject))


def _default_subject(subject: str) -> tuple[str, str] | None:
    match = _DEFAULT_SUBJECT.fullmatch(subject)
    if match is None:
        return None
    return match["repo"], match["context"]


def _custom_subject(subject: str) -> SubjectFinding:
    return SubjectFinding(
        cause=Cause.CUSTOM_SUBJECT,
        fix=f"sub {subject!r} is not in GitHub's default form repo:OWNER/REPO:CONTEXT: the"
        " organization or repository uses a custom subject template (see GET"
        " /repos/OWNER/REPO/actions/oidc/customization/sub). Write the trust policy for that"
        " template, or reset the repository to the default with use_default: true.",
    )


def _pattern_repo(pattern: str) -> str | None:
    """The OWNER/REPO part of a GitHub subject pattern, or ``None`` for another shape."""
    if not pattern.startswith("repo:"):
        return None
    return pattern[len("repo:") :].split(":", 1)[0]


# --- keyless audit: what a subject pattern admits, in words -------------------------------------


def describe_subject(fields: Mapping[str, str]) -> str | None:
    owner, repo = fields.get("owner", "*"), fields.get("repository", "*")
    if owner.strip("*") == "":
        where = "any repository on GitHub"
    elif is_wild(owner):
        where = f"repositories of owners matching {owner}"
    elif repo.strip("*") == "":
        where = f"any repository in org {owner}"
    elif is_wild(repo):
        where = f"repositories matching {owner}/{repo}"
    else:
        where = f"{owner}/{repo}"
    context = fields.get("ref or environment", "*")
    if context.strip("*") == "":
        what = "any workflow run"
    elif context == "pull_request":
        what = "pull requests"
    elif context.startswith("ref:"):
        what = ref_words(context[4:])
    elif context.startswith("environment:"):
        what = named("deployment environment", "deployment environments", context[12:])
    elif context.startswith("job_workflow_ref:"):
        what = named("reusable workflow", "reusable workflows", context[17:])
    elif is_wild(context):
        what = f"runs whose context matches {context}"
    else:
        what = context
    return f"{what} of {where}"
