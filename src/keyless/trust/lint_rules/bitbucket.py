"""Rules specific to Bitbucket Pipelines' UUID-based token subjects."""

from __future__ import annotations

import re
from collections.abc import Iterator

from keyless.trust.findings import Severity
from keyless.trust.lint_rules.registry import Hit, rule
from keyless.trust.lint_rules.targets import Document, Target, allows, is_bitbucket, positive_string
from keyless.trust.model import Condition
from keyless.trust.subjects import WILDCARDS

_BRACED_UUID = r"\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}"
_BARE_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_FULL_BITBUCKET_SUB = re.compile(rf"{_BRACED_UUID}(:{_BRACED_UUID}){{1,2}}")


def _positive_sub_values(target: Target) -> Iterator[tuple[Condition, str]]:
    for condition in target.conditions("sub"):
        if positive_string(condition):
            for value in condition.string_values:
                yield condition, value


@rule(
    id="bitbucket-step-pinned",
    severity=Severity.MEDIUM,
    title="Bitbucket subject pinned to one step",
    help="The step UUID changes every run; a full-subject StringEquals works once.",
    fix='Use "StringLike" with "{REPO_UUID}:*" or "{REPO_UUID}:{ENV_UUID}:*".',
)
def bitbucket_step_pinned(doc: Document) -> Iterator[Hit]:
    for target in filter(is_bitbucket, allows(doc)):
        for condition, value in _positive_sub_values(target):
            if _FULL_BITBUCKET_SUB.fullmatch(value):
                yield Hit(
                    target,
                    f"`sub` value {value!r} includes the step UUID, which changes on every run:"
                    " the role works once and then never again (and the usual 'fix' is to drop"
                    " the subject check)",
                    location=condition.location,
                    element=condition.key,
                )


@rule(
    id="bitbucket-environment-name",
    severity=Severity.LOW,
    title="Bitbucket environment name instead of UUID",
    help="Bitbucket's subject carries the deployment environment's UUID, never its name.",
    fix="Use the environment's UUID in braces (Deployments settings, or"
    " $BITBUCKET_DEPLOYMENT_ENVIRONMENT_UUID in a step).",
)
def bitbucket_environment_name(doc: Document) -> Iterator[Hit]:
    for target in filter(is_bitbucket, allows(doc)):
        for condition, value in _positive_sub_values(target):
            parts = value.split(":")
            if len(parts) < 2 or not re.fullmatch(_BRACED_UUID, parts[0]):
                continue
            middle = parts[1]
            if (
                len(parts) >= 3
                and middle
                and not re.fullmatch(_BRACED_UUID, middle)
                and not any(ch in middle for ch in WILDCARDS)
            ):
                yield Hit(
                    target,
                    f"`sub` value {value!r} names the deployment environment {middle!r}"
                    " where Bitbucket writes its UUID: it never matches",
                    location=condition.location,
                    element=condition.key,
                )


@rule(
    id="bitbucket-uuid-braces",
    severity=Severity.LOW,
    title="Bitbucket UUID without braces",
    help="Bitbucket writes UUIDs in braces in `sub`; without them the value never matches.",
    fix="Write the repository UUID with its braces: {xxxxxxxx-...}:*.",
)
def bitbucket_uuid_braces(doc: Document) -> Iterator[Hit]:
    for target in filter(is_bitbucket, allows(doc)):
        for condition, value in _positive_sub_values(target):
            if re.match(_BARE_UUID, value):
                yield Hit(
                    target,
                    f"`sub` value {value!r} has a UUID without braces; Bitbucket writes"
                    " `{UUID}`, so it never matches",
                    location=condition.location,
                    element=condition.key,
                )
