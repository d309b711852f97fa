"""Rules on the token subject (`sub`): whether it is pinned at all, and how much its values admit
(graded by ``keyless.trust.subjects.Breadth``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from keyless.trust.findings import Severity
from keyless.trust.lint_rules.github import is_custom_template
from keyless.trust.lint_rules.registry import Hit, rule
from keyless.trust.lint_rules.targets import (
    Document,
    Target,
    allows,
    closed_by,
    example_fix,
    has_control,
    is_github,
    issuer_reach,
    subject_values,
)
from keyless.trust.model import Condition
from keyless.trust.subjects import Breadth

#: The declared fix of rules whose findings name the CI's own `keyless trust build` command.
_PIN_FIX = (
    "Pin `ISSUER:sub` to one repository and environment: keyless trust build --ci CI ..."
    " prints the least-privilege trust."
)


@rule(
    id="subject-missing",
    severity=Severity.CRITICAL,
    grade=issuer_reach,
    title="No condition on the token subject",
    help="Without a `sub` pin every job the issuer mints tokens for can assume the role: the"
    " whole platform for shared issuers, the whole workspace or org for per-tenant ones.",
    fix=_PIN_FIX,
)
def subject_missing(doc: Document) -> Iterator[Hit]:
    for target in allows(doc):
        if has_control(doc, target) or _negated_subjects(target):
            continue
        if is_github(target) and target.conditions("job_workflow_ref"):
            continue  # github-job-workflow-ref-only reports it
        yield Hit(
            target,
            f"trusts {target.prefix} with no condition on `sub`: {target.everyone} can assume"
            " the role",
            example_fix(target),
            location=f"{target.statement.location}.Condition",
            element="Principal",
        )


def _negated_subjects(target: Target) -> list[Condition]:
    return [c for c in target.conditions("sub") if c.operator.negated]


@rule(
    id="subject-negated-only",
    severity=Severity.CRITICAL,
    grade=issuer_reach,
    title="Only negated operators on the subject",
    help="StringNotLike/StringNotEquals say who may not assume the role; everyone else may.",
    fix="Say who may assume the role with StringEquals/StringLike on `sub`; a negated"
    " operator only says who may not.",
)
def subject_negated_only(doc: Document) -> Iterator[Hit]:
    for target in allows(doc):
        negated = _negated_subjects(target)
        if not negated or has_control(doc, target):
            continue
        condition = negated[0]
        yield Hit(
            target,
            f"the only control on `sub` is {condition.operator.name}"
            f" {', '.join(condition.string_values)}: {target.everyone} else can assume the role",
            location=condition.location,
            element=condition.key,
        )


def _breadth_hits(
    doc: Document, breadth: Breadth, text: str, suffix: Callable[[Target], str] | None = None
) -> Iterator[Hit]:
    """The `sub` values of ``breadth``; ``text`` says what such a value admits (``{field}`` is the
    subject field the wildcard opens, ``{name}`` the CI)."""
    wanted = Breadth.MUTABLE_PREFIX if breadth is Breadth.FIELD_BOUNDARY else breadth
    for target in allows(doc):
        if breadth is Breadth.UNRECOGNISED and not target.grammar.segments:
            continue
        if breadth is Breadth.UNRECOGNISED and is_custom_template(target):
            continue  # github-custom-subject reads GitHub's customised templates
        for item in subject_values(doc, target):
            shape = item.shape
            if shape.breadth is not wanted:
                continue
            field = shape.segment.field if shape.segment else "subject"
            detail = text.format(field=field, name=target.name)
            if shape.open_type is not (breadth is Breadth.FIELD_BOUNDARY):
                continue
            yield Hit(
                target,
                f"`sub` value {item.value!r} "
                + detail
                + (f" ({target.everyone})" if breadth is Breadth.ALL else "")
                + (suffix(target) if suffix else ""),
                example_fix(target) if breadth is not Breadth.UNRECOGNISED else None,
                location=item.condition.location,
                element=item.condition.key,
            )


@rule(
    id="subject-scoped-to-all",
    severity=Severity.CRITICAL,
    grade=issuer_reach,
    title="Subject pattern matches everyone",
    help="Values such as *, repo:*, project_path:* or {*}:* match every subject of the issuer.",
    fix=_PIN_FIX,
)
def subject_scoped_to_all(doc: Document) -> Iterator[Hit]:
    return _breadth_hits(doc, Breadth.ALL, "matches every subject of the issuer")


@rule(
    id="subject-wildcard-tenant",
    severity=Severity.CRITICAL,
    grade=issuer_reach,
    title="Wildcard in or before the owner",
    help="StringLike's * crosses / and :, so a wildcard in or before the owner, workspace or"
    " group matches names an attacker can register (repo:acme* matches acme-evil).",
    fix=_PIN_FIX,
)
def subject_wildcard_tenant(doc: Document) -> Iterator[Hit]:
    return _breadth_hits(
        doc,
        Breadth.CROSS_TENANT,
        "has a wildcard in or before the {field}: other owners' names match it"
        " (someone can register one that does)",
    )


@rule(
    id="subject-org-wide",
    severity=Severity.HIGH,
    title="Owner-, group- or organization-wide subject",
    help="A wildcard over the repository or project admits every repository of the owner,"
    " including ones created, forked or transferred in later.",
    fix=_PIN_FIX,
)
def subject_org_wide(doc: Document) -> Iterator[Hit]:
    return _breadth_hits(
        doc,
        Breadth.ORG_WIDE,
        "has a wildcard in the {field}: every repository or project of the owner (and any"
        " created, forked or transferred in later) matches",
    )


@rule(
    id="subject-mutable-prefix",
    severity=Severity.MEDIUM,
    title="Prefix pattern on a branch, tag or environment name",
    help="Names such as release* or prod* are chosen by whoever can create a branch, tag or"
    " environment; a wildcard ref type lets a tag stand in for a branch.",
    fix=_PIN_FIX,
)
def subject_mutable_prefix(doc: Document) -> Iterator[Hit]:
    return _breadth_hits(
        doc,
        Breadth.MUTABLE_PREFIX,
        "pins only a prefix of the {field}: whoever can create a matching branch, tag or"
        " environment can assume the role",
    )


@rule(
    id="subject-field-boundary-wildcard",
    severity=Severity.HIGH,
    title="Wildcard across a subject field boundary",
    help="A wildcard over a whole field with a later field pinned (`ref_type:*:ref:main`) lets a"
    " tag, which anyone who can push may create, stand in for the protected branch of that name.",
    fix=_PIN_FIX,
)
def subject_field_boundary(doc: Document) -> Iterator[Hit]:
    return _breadth_hits(
        doc,
        Breadth.FIELD_BOUNDARY,
        "leaves the {field} open but pins the name after it: anyone who can push a tag (or"
        " branch) of that name, unprotected, can assume the role",
    )


def repo_wide_grade(target: Target) -> Severity:
    """HIGH for a role that may write (unknown permissions count as writing), LOW when its
    permissions are read-only or another condition closes the subject to trusted writers."""
    if not target.context.may_write or closed_by(target) is not None:
        return Severity.LOW
    return Severity.HIGH


def _repo_wide_suffix(target: Target) -> str:
    closer = closed_by(target)
    if closer is not None:
        return f"; {closer}, which closes it to trusted writers"
    if not target.context.may_write:
        return "; the role's permissions are read-only"
    writes = "write" if target.context.writes else "may write (no --permissions given)"
    return f"; the role's permissions {writes}"


@rule(
    id="subject-repo-wide",
    severity=Severity.HIGH,
    grade=repo_wide_grade,
    title="Any ref, pull request or environment of one repository",
    help="Anyone who can push a branch or tag or open a pull request in the repository can assume"
    " the role; for a role that writes that is high unless a protected environment, `ref_protected`"
    " or a pinned reusable workflow with `repository_id` closes it.",
    fix=_PIN_FIX,
)
def subject_repo_wide(doc: Document) -> Iterator[Hit]:
    # HCP Terraform's only context is the run phase: terraform-plan-can-assume reports it.
    return (
        hit
        for hit in _repo_wide_hits(doc)
        if not (
            isinstance(hit.at, Target) and hit.at.provider and hit.at.provider.name == "terraform"
        )
    )


def _repo_wide_hits(doc: Document) -> Iterator[Hit]:
    return _breadth_hits(
        doc,
        Breadth.REPO_WIDE,
        "leaves the {field} open: anyone who can push a branch or tag or open a pull request"
        " in the repository can assume the role",
        _repo_wide_suffix,
    )


@rule(
    id="subject-loose-value-in-list",
    severity=Severity.HIGH,
    title="One loose value among exact ones",
    help="Several values for one key are ORed: the loosest value decides who gets in.",
    fix="Remove the loose value; give each scope its own role or exact value.",
)
def subject_loose_value(doc: Document) -> Iterator[Hit]:
    for target in allows(doc):
        values = subject_values(doc, target)
        if len(values) < 2:
            continue
        loose = [v for v in values if v.shape.breadth.rank >= Breadth.MUTABLE_PREFIX.rank]
        tight = [v for v in values if v.shape.breadth.rank <= Breadth.REPO_WIDE.rank]
        if loose and tight:
            item = loose[0]
            yield Hit(
                target,
                f"`sub` lists {len(values)} values and they are ORed: {item.value!r} opens the"
                f" role whatever {tight[0].value!r} says",
                location=item.condition.location,
                element=item.condition.key,
            )


@rule(
    id="subject-unrecognised",
    severity=Severity.INFO,
    title="Subject value of an unknown shape",
    help="The value does not follow the CI's default subject format (custom template or typo).",
    fix="Compare it with the `sub` of a real token: keyless claims TOKEN_FILE.",
)
def subject_unrecognised(doc: Document) -> Iterator[Hit]:
    return _breadth_hits(
        doc,
        Breadth.UNRECOGNISED,
        "does not have the default subject shape of {name}; a custom subject template or a"
        " typo: check it by hand",
    )
