"""Rules specific to GitLab CI's token subjects."""

from __future__ import annotations

from collections.abc import Iterator

from keyless.trust.findings import Severity
from keyless.trust.lint_rules.registry import Hit, rule
from keyless.trust.lint_rules.targets import Document, Target, allows, subject_values
from keyless.trust.subjects import Breadth


def is_gitlab(target: Target) -> bool:
    return target.provider is not None and target.provider.name == "gitlab"


@rule(
    id="gitlab-path-only-subject",
    severity=Severity.LOW,
    title="GitLab subject by project path only",
    help="GitLab's `sub` names the project by path, which is free again after a rename, transfer"
    " or deletion; whoever takes the path inherits the trust. IAM does not see `project_id` or"
    " `namespace_id` for GitLab, so only keeping the path (or updating the role) closes it.",
    fix="Keep the group and project path registered while the role exists; when you rename,"
    " transfer or delete the project, rebuild the trust: keyless trust build --ci gitlab"
    " --project GROUP/PROJECT --ref main.",
)
def gitlab_path_only(doc: Document) -> Iterator[Hit]:
    for target in filter(is_gitlab, allows(doc)):
        values = [
            v
            for v in subject_values(doc, target)
            if v.shape.breadth in (Breadth.EXACT, Breadth.PER_RUN, Breadth.REPO_WIDE)
        ]
        if values:
            item = values[0]
            yield Hit(
                target,
                f"`sub` value {item.value!r} names the project by path only: whoever registers"
                " the path after a rename, transfer or deletion can assume the role (IAM cannot"
                " check `project_id` for GitLab)",
                location=item.condition.location,
                element=item.condition.key,
            )
