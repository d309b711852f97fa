"""Lint role trust policies for over-broad or broken OIDC trust: one small function per rule.

The rules cover the misconfiguration catalogue of security research §1.2 for Bitbucket, GitHub,
GitLab, CircleCI, Buildkite and unknown issuers, and AWS Access Analyzer's trust-policy checks.
Findings are values; ``sarif()`` renders them as SARIF 2.1.0 for GitHub code scanning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from keyless.ci import provider_for_issuer
from keyless.ci.base import Provider, SegmentRole, SubjectGrammar, SubjectSegment
from keyless.compat import StrEnum
from keyless.trust.evaluate import (
    SET_SOURCE_IDENTITY,
    TAG_SESSION,
    WEB_IDENTITY_ACTION,
    Exposure,
    exposure_for,
)
from keyless.trust.glob import Glob, compile_glob
from keyless.trust.model import Condition, Effect, Policy, Statement
from keyless.trust.operators import (
    Category,
    Qualifier,
    literal_pattern,
    test_condition,
)

__all__ = [
    "RULES",
    "Finding",
    "LintedFile",
    "Rule",
    "Severity",
    "line_of",
    "lint",
    "sarif",
]


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)

    @property
    def sarif_level(self) -> str:
        return {"info": "note", "low": "note", "medium": "warning"}.get(self.value, "error")

    @property
    def security_severity(self) -> str:
        # GitHub code scanning maps this CVSS-like score to its severity labels.
        return {"info": "1.0", "low": "3.0", "medium": "5.5", "high": "8.0", "critical": "9.5"}[
            self.value
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    #: Index of the statement, ``None`` for the document as a whole.
    statement: int | None
    #: Where in the document: ``Statement[1].Condition.StringLike["...:sub"]``.
    location: str
    fix: str
    sid: str | None = None
    #: The JSON member the finding is about (a condition key, ``Principal``), to find its line.
    element: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
            "statement": self.statement,
            "sid": self.sid,
            "location": self.location,
            "fix": self.fix,
        }


Check = Callable[["_Document"], Iterable[Finding]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    id: str
    title: str
    #: The highest severity the rule reports (some rules report lower for per-tenant issuers).
    severity: Severity
    rationale: str
    check: Check


# --- what a statement trusts ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Target:
    """An Allow or Deny statement for web identity through one OIDC provider."""

    statement: Statement
    prefix: str  # issuer without https://: the condition-key prefix
    provider: Provider | None
    exposure: Exposure

    @property
    def name(self) -> str:
        return self.provider.display_name if self.provider else f"the issuer {self.prefix}"

    @property
    def grammar(self) -> SubjectGrammar:
        return self.provider.subject_grammar if self.provider else SubjectGrammar()

    @property
    def shared(self) -> bool | None:
        return self.provider.shared_issuer if self.provider else None

    @property
    def reach(self) -> Severity:
        """How bad "anyone who can mint a token from this issuer" is."""
        return Severity.HIGH if self.shared is False else Severity.CRITICAL

    @property
    def everyone(self) -> str:
        if self.provider is None:
            return f"anyone who can get a token from {self.prefix}"
        if self.shared:
            return f"any job anywhere on {self.provider.display_name}"
        return f"any job of the whole {self.provider.display_name} workspace or organization"

    def conditions(self, claim: str) -> list[Condition]:
        key = f"{self.prefix}:{claim}".lower()
        return [c for c in self.statement.conditions or () if c.key.lower() == key]


@dataclass(frozen=True, slots=True)
class _Document:
    policy: Policy
    targets: tuple[_Target, ...]


def _covers_web_identity(statement: Statement) -> bool:
    if statement.action is not None:
        return any(_glob(p).match(WEB_IDENTITY_ACTION.lower()) for p in statement.action)
    return not any(_glob(p).match(WEB_IDENTITY_ACTION.lower()) for p in statement.not_action or ())


def _glob(pattern: str) -> Glob:
    # Action names are case-insensitive (IAM JSON policy elements: Action).
    return compile_glob(pattern.lower())


def _provider_prefixes(statement: Statement) -> list[str]:
    prefixes = []
    for value in statement.federated:
        _, marker, path = value.partition(":oidc-provider/")
        if marker and path:
            prefixes.append(path)
    return prefixes


def _document(policy: Policy) -> _Document:
    targets: list[_Target] = []
    for statement in policy.statements:
        if not _covers_web_identity(statement):
            continue
        for prefix in _provider_prefixes(statement):
            issuer = f"https://{prefix}"
            targets.append(
                _Target(
                    statement=statement,
                    prefix=prefix,
                    provider=provider_for_issuer(issuer),
                    exposure=exposure_for(issuer),
                )
            )
    return _Document(policy=policy, targets=tuple(targets))


def _allows(doc: _Document) -> Iterator[_Target]:
    return (t for t in doc.targets if t.statement.effect is Effect.ALLOW)


def _finding(
    rule: str,
    severity: Severity,
    target: _Target | Statement | None,
    message: str,
    fix: str,
    *,
    location: str | None = None,
    element: str | None = None,
) -> Finding:
    statement = target.statement if isinstance(target, _Target) else target
    where = statement.label if statement else "policy"
    return Finding(
        rule=rule,
        severity=severity,
        message=f"{where}: {message}",
        statement=statement.index if statement else None,
        location=location or (statement.location if statement else ""),
        fix=fix,
        sid=statement.sid if statement else None,
        element=element,
    )


def _positive_string(condition: Condition) -> bool:
    """A condition that admits only the listed values (not negated, not a no-op when absent)."""
    op = condition.operator
    return (
        op.category is Category.STRING
        and not op.negated
        and op.qualifier is not Qualifier.FOR_ALL_VALUES
    )


def _example_fix(target: _Target) -> str:
    name = target.provider.name if target.provider else None
    commands = {
        "github": "keyless trust build --ci github --repository OWNER/REPO --environment NAME",
        "bitbucket": (
            "keyless trust build --ci bitbucket --workspace SLUG --workspace-uuid UUID"
            " --repository-uuid UUID --environment-uuid UUID"
        ),
        "gitlab": "keyless trust build --ci gitlab --project GROUP/PROJECT --ref main",
        "circleci": "keyless trust build --ci circleci --org-id UUID --project-id UUID",
        "buildkite": "keyless trust build --ci buildkite --organization SLUG --pipeline SLUG"
        " --branch main",
    }
    if name in commands:
        return f"Pin `{target.prefix}:sub` to one repository and environment: {commands[name]}"
    return f"Pin `{target.prefix}:sub` with StringEquals to the exact subject of the one workload."


# --- the shape of a subject value ---------------------------------------------------------------


class Breadth(StrEnum):
    """How much a `sub` value admits, narrowest first."""

    EXACT = "exact"
    PER_RUN = "per-run"  # wildcards only over values that change every run
    UNRECOGNISED = "unrecognised"
    REPO_WIDE = "repo-wide"
    MUTABLE_PREFIX = "mutable-prefix"
    ORG_WIDE = "org-wide"
    CROSS_TENANT = "cross-tenant"
    ALL = "all"

    @property
    def rank(self) -> int:
        return list(Breadth).index(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Shape:
    breadth: Breadth
    segment: SubjectSegment | None = None
    #: The literal text of the field before the wildcard.
    consumed: str = ""
    #: The literal fields read before the wildcard (or all of them for an exact value).
    fields: tuple[tuple[SubjectSegment, str], ...] = ()
    #: The wildcard covers a whole field while a later field is pinned (GitLab `ref_type:*`).
    open_type: bool = False


_WILDCARDS = "*?"


def _first_wildcard(value: str, start: int, wildcards: bool) -> int | None:
    if not wildcards:
        return None
    positions = [i for i in range(start, len(value)) if value[i] in _WILDCARDS]
    return positions[0] if positions else None


def _context_breadth(segment: SubjectSegment, consumed: str, rest_pinned: bool) -> Breadth:
    if rest_pinned:
        # e.g. GitLab `ref_type:*:ref:main`: a tag named `main` also satisfies it.
        return Breadth.MUTABLE_PREFIX
    if not consumed or any(prefix.startswith(consumed) for prefix in segment.name_prefixes):
        return Breadth.REPO_WIDE
    return Breadth.MUTABLE_PREFIX


def subject_shape(
    value: str, grammar: SubjectGrammar, *, wildcards: bool, tenant_in_issuer: bool = False
) -> _Shape:
    """Where the first wildcard of ``value`` falls in the CI's subject grammar, and so how wide it
    is. Wildcards over opaque per-run values (step UUID, user id, commit) are passed over; any other
    wildcard decides, because an attacker chooses what it matches (security §1.2 items 3-6)."""
    if wildcards and compile_glob(value).match(grammar.example()):
        return _Shape(breadth=Breadth.ALL)
    segments = grammar.segments
    if not segments:
        return _Shape(breadth=Breadth.UNRECOGNISED)
    fields: list[tuple[SubjectSegment, str]] = []
    position = 0
    first = _first_wildcard(value, 0, wildcards)
    for index, segment in enumerate(segments):
        literal = segment.literal
        if first is not None and first < position + len(literal):
            if value[position:first] != literal[: first - position]:
                return _Shape(breadth=Breadth.UNRECOGNISED, fields=tuple(fields))
            return _classify(segment, "", False, tenant_in_issuer, fields)
        if not value.startswith(literal, position):
            return _Shape(breadth=Breadth.UNRECOGNISED, fields=tuple(fields))
        position += len(literal)
        following = segments[index + 1].literal if index + 1 < len(segments) else None
        end = value.find(following, position) if following else -1
        field_end = end if end >= 0 else len(value)
        if first is not None and first < field_end:
            consumed = value[position:first]
            skippable = segment.role in (SegmentRole.ACTOR, SegmentRole.PER_RUN) or (
                tenant_in_issuer and segment.role is SegmentRole.TENANT
            )
            if skippable and end >= 0:
                fields.append((segment, value[position:end]))
                position = end
                first = _first_wildcard(value, end, wildcards)
                continue
            if skippable and segment.role is not SegmentRole.TENANT:
                return _Shape(breadth=Breadth.PER_RUN, fields=tuple(fields))
            if following and following[0] in consumed:
                # The wildcard sits in the next literal (`project_path:g/p:*`).
                cut = consumed.index(following[0])
                if not following.startswith(consumed[cut:]):
                    return _Shape(breadth=Breadth.UNRECOGNISED, fields=tuple(fields))
                fields.append((segment, consumed[:cut]))
                return _classify(segments[index + 1], "", False, tenant_in_issuer, fields)
            rest = value[end + len(following) :] if following and end >= 0 else ""
            rest_pinned = bool(rest.strip(_WILDCARDS))
            return _classify(segment, consumed, rest_pinned, tenant_in_issuer, fields)
        if end < 0:
            fields.append((segment, value[position:]))
            return _Shape(breadth=Breadth.EXACT, fields=tuple(fields))
        fields.append((segment, value[position:end]))
        position = end
    return _Shape(breadth=Breadth.EXACT, fields=tuple(fields))


def _classify(
    segment: SubjectSegment,
    consumed: str,
    rest_pinned: bool,
    tenant_in_issuer: bool,
    fields: list[tuple[SubjectSegment, str]],
) -> _Shape:
    role = segment.role
    if role is SegmentRole.PATH:
        breadth = Breadth.ORG_WIDE if "/" in consumed else Breadth.CROSS_TENANT
    elif role is SegmentRole.TENANT:
        breadth = Breadth.ORG_WIDE if tenant_in_issuer else Breadth.CROSS_TENANT
    elif role is SegmentRole.REPOSITORY:
        breadth = Breadth.ORG_WIDE
    elif role is SegmentRole.CONTEXT:
        breadth = _context_breadth(segment, consumed, rest_pinned)
    else:
        breadth = Breadth.PER_RUN
    return _Shape(
        breadth=breadth,
        segment=segment,
        consumed=consumed,
        fields=tuple(fields),
        open_type=rest_pinned and role is SegmentRole.CONTEXT,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _SubjectValue:
    condition: Condition
    value: str
    shape: _Shape


def _shape_of(target: _Target, condition: Condition, value: str) -> _Shape:
    wildcards = condition.operator.base.wildcards
    return subject_shape(
        value,
        target.grammar,
        wildcards=wildcards,
        tenant_in_issuer=target.shared is False,
    )


def _guards(doc: _Document, target: _Target) -> list[Condition]:
    """Negated `sub` conditions of Deny statements for the same provider that stand alone: such a
    Deny admits only the listed subjects, exactly like a positive condition in the Allow."""
    guards = []
    for other in doc.targets:
        if other.statement.effect is not Effect.DENY or other.prefix != target.prefix:
            continue
        conditions = other.statement.conditions or ()
        if (
            len(conditions) == 1
            and conditions[0].operator.negated
            and conditions[0].operator.category is Category.STRING
            and conditions[0].key.lower() == f"{target.prefix}:sub".lower()
        ):
            guards.append(conditions[0])
    return guards


def _subject_values(doc: _Document, target: _Target) -> list[_SubjectValue]:
    """The values of the narrowest positive `sub` condition (conditions AND, values OR)."""
    candidates = [c for c in target.conditions("sub") if _positive_string(c)]
    candidates += _guards(doc, target)
    best: list[_SubjectValue] | None = None
    best_rank = -1
    for condition in candidates:
        values = [
            _SubjectValue(condition=condition, value=v, shape=_shape_of(target, condition, v))
            for v in condition.string_values
        ]
        worst = max(v.shape.breadth.rank for v in values)
        if best is None or worst < best_rank:
            best, best_rank = values, worst
    return best or []


def _has_control(doc: _Document, target: _Target) -> bool:
    if any(_positive_string(c) for c in target.conditions("sub")) or _guards(doc, target):
        return True
    if target.provider is not None and target.provider.name == "github":
        return any(
            _positive_string(c)
            for claim in ("repository", "repository_id")
            for c in target.conditions(claim)
        )
    if target.provider is not None and target.provider.name == "buildkite":
        # Buildkite's AWS guide pins organization and pipeline through session tags (facts §5).
        return _buildkite_tags_pinned(target)
    return False


_BUILDKITE_TAGS = ("organization_slug", "organization_id")


def _buildkite_tags_pinned(target: _Target) -> bool:
    keys = {
        c.key.lower()
        for c in target.statement.conditions or ()
        if _positive_string(c) and not any("*" in v or "?" in v for v in c.string_values)
    }
    return any(f"aws:requesttag/{tag}" in keys for tag in _BUILDKITE_TAGS)


# --- rules ---------------------------------------------------------------------------------------


def rule_principal_wildcard(doc: _Document) -> Iterator[Finding]:
    for statement in doc.policy.statements:
        principal = statement.principal
        if statement.effect is not Effect.ALLOW or principal is None:
            continue
        if principal.wildcard or any("*" in v for _, values in principal.entries for v in values):
            yield _finding(
                "principal-wildcard",
                Severity.CRITICAL,
                statement,
                'the principal is "*": whoever AWS admits under it can assume the role',
                'Name the OIDC provider: "Principal": {"Federated": "arn:aws:iam::ACCOUNT:'
                'oidc-provider/ISSUER"}.',
                location=f"{statement.location}.Principal",
                element="Principal",
            )


def rule_not_principal(doc: _Document) -> Iterator[Finding]:
    for statement in doc.policy.statements:
        if statement.not_principal is not None:
            yield _finding(
                "not-principal",
                Severity.HIGH,
                statement,
                "NotPrincipal in a role trust policy: IAM refuses it, and with Allow it would"
                " trust everyone not listed",
                "Replace NotPrincipal with a Principal naming the one OIDC provider.",
                location=f"{statement.location}.NotPrincipal",
                element="NotPrincipal",
            )


def rule_resource(doc: _Document) -> Iterator[Finding]:
    for statement in doc.policy.statements:
        if statement.resource is not None or statement.not_resource is not None:
            name = "Resource" if statement.resource is not None else "NotResource"
            yield _finding(
                "resource-in-trust-policy",
                Severity.LOW,
                statement,
                f"{name} in a role trust policy: IAM refuses the document",
                f"Remove {name}: the role itself is the resource of a trust policy.",
                location=f"{statement.location}.{name}",
                element=name,
            )


def rule_subject_missing(doc: _Document) -> Iterator[Finding]:
    for target in _allows(doc):
        if _has_control(doc, target) or _negated_subjects(target):
            continue
        if _github(target) and target.conditions("job_workflow_ref"):
            continue  # github-job-workflow-ref-only reports it
        yield _finding(
            "subject-missing",
            target.reach,
            target,
            f"trusts {target.prefix} with no condition on `sub`: {target.everyone} can assume"
            " the role",
            _example_fix(target),
            location=f"{target.statement.location}.Condition",
            element="Principal",
        )


def _negated_subjects(target: _Target) -> list[Condition]:
    return [c for c in target.conditions("sub") if c.operator.negated]


def rule_subject_negated_only(doc: _Document) -> Iterator[Finding]:
    for target in _allows(doc):
        negated = _negated_subjects(target)
        if not negated or _has_control(doc, target):
            continue
        condition = negated[0]
        yield _finding(
            "subject-negated-only",
            target.reach,
            target,
            f"the only control on `sub` is {condition.operator.name}"
            f" {', '.join(condition.string_values)}: {target.everyone} else can assume the role",
            "Say who may assume the role with StringEquals/StringLike on `sub`; a negated"
            " operator only says who may not.",
            location=condition.location,
            element=condition.key,
        )


_BREADTH_RULES: dict[Breadth, tuple[str, str]] = {
    Breadth.ALL: ("subject-scoped-to-all", "matches every subject of the issuer"),
    Breadth.CROSS_TENANT: (
        "subject-wildcard-tenant",
        "has a wildcard in or before the {field}: other owners' names match it"
        " (someone can register one that does)",
    ),
    Breadth.ORG_WIDE: (
        "subject-org-wide",
        "has a wildcard in the {field}: every repository or project of the owner (and any"
        " created, forked or transferred in later) matches",
    ),
    Breadth.MUTABLE_PREFIX: (
        "subject-mutable-prefix",
        "pins only a prefix of the {field}: whoever can create a matching branch, tag or"
        " environment can assume the role",
    ),
    Breadth.REPO_WIDE: (
        "subject-repo-wide",
        "leaves the {field} open: any branch, tag, pull request or environment of the"
        " repository can assume the role",
    ),
    Breadth.UNRECOGNISED: (
        "subject-unrecognised",
        "does not have the default subject shape of {name}; a custom subject template or a"
        " typo: check it by hand",
    ),
}


def _breadth_severity(breadth: Breadth, target: _Target) -> Severity:
    if breadth in (Breadth.ALL, Breadth.CROSS_TENANT):
        return target.reach
    return {
        Breadth.ORG_WIDE: Severity.HIGH,
        Breadth.MUTABLE_PREFIX: Severity.MEDIUM,
        Breadth.REPO_WIDE: Severity.LOW,
        Breadth.UNRECOGNISED: Severity.INFO,
    }[breadth]


def _breadth_rule(breadth: Breadth) -> Check:
    rule_id, text = _BREADTH_RULES[breadth]

    def check(doc: _Document) -> Iterator[Finding]:
        for target in _allows(doc):
            if breadth is Breadth.UNRECOGNISED and not target.grammar.segments:
                continue
            for item in _subject_values(doc, target):
                shape = item.shape
                if shape.breadth is not breadth:
                    continue
                field = shape.segment.field if shape.segment else "subject"
                detail = text.format(field=field, name=target.name)
                if shape.open_type:
                    detail = (
                        f"leaves the {field} open but pins the name after it: a tag can stand"
                        " in for the branch of the same name"
                    )
                yield _finding(
                    rule_id,
                    _breadth_severity(breadth, target),
                    target,
                    f"`sub` value {item.value!r} "
                    + detail
                    + (f" ({target.everyone})" if breadth is Breadth.ALL else ""),
                    _example_fix(target)
                    if breadth is not Breadth.UNRECOGNISED
                    else "Compare it with the `sub` of a real token: keyless claims TOKEN_FILE.",
                    location=item.condition.location,
                    element=item.condition.key,
                )

    return check


def rule_subject_loose_value(doc: _Document) -> Iterator[Finding]:
    for target in _allows(doc):
        values = _subject_values(doc, target)
        if len(values) < 2:
            continue
        loose = [v for v in values if v.shape.breadth.rank >= Breadth.MUTABLE_PREFIX.rank]
        tight = [v for v in values if v.shape.breadth.rank <= Breadth.REPO_WIDE.rank]
        if loose and tight:
            item = loose[0]
            yield _finding(
                "subject-loose-value-in-list",
                Severity.HIGH,
                target,
                f"`sub` lists {len(values)} values and they are ORed: {item.value!r} opens the"
                f" role whatever {tight[0].value!r} says",
                "Remove the loose value; give each scope its own role or exact value.",
                location=item.condition.location,
                element=item.condition.key,
            )


def _github(target: _Target) -> bool:
    return target.provider is not None and target.provider.name == "github"


def rule_github_pull_request(doc: _Document) -> Iterator[Finding]:
    for target in filter(_github, _allows(doc)):
        for item in _subject_values(doc, target):
            if item.value.endswith(":pull_request"):
                yield _finding(
                    "github-pull-request",
                    Severity.MEDIUM,
                    target,
                    f"`sub` value {item.value!r} admits pull_request runs: unmerged code from"
                    " any branch of the repository runs with the role",
                    "Trust a protected environment (`...:environment:NAME`) or the default"
                    " branch instead; give pull requests a read-only role if they need one.",
                    location=item.condition.location,
                    element=item.condition.key,
                )


def rule_github_job_workflow_ref_only(doc: _Document) -> Iterator[Finding]:
    for target in filter(_github, _allows(doc)):
        workflow = target.conditions("job_workflow_ref")
        if not workflow or _has_control(doc, target):
            continue
        yield _finding(
            "github-job-workflow-ref-only",
            Severity.HIGH,
            target,
            "trusts `job_workflow_ref` without `sub`, `repository` or `repository_id`: any"
            " repository allowed to call that reusable workflow (for a public one, any"
            " repository on GitHub) can assume the role",
            "Add a `sub` (or `repository_id`) condition naming the calling repositories.",
            location=workflow[0].location,
            element=workflow[0].key,
        )


def rule_github_floating_workflow_ref(doc: _Document) -> Iterator[Finding]:
    for target in filter(_github, _allows(doc)):
        for condition in target.conditions("job_workflow_ref"):
            floating = [v for v in condition.string_values if "@refs/heads/" in v]
            if floating and _positive_string(condition):
                yield _finding(
                    "github-floating-workflow-ref",
                    Severity.LOW,
                    target,
                    f"`job_workflow_ref` {floating[0]!r} follows a branch: whoever can push"
                    " to it changes what runs with the role",
                    "Pin the reusable workflow to a tag or a commit SHA.",
                    location=condition.location,
                    element=condition.key,
                )


def _is_immutable(shape: _Shape) -> bool:
    return any(
        segment.role in (SegmentRole.TENANT, SegmentRole.REPOSITORY) and "@" in text
        for segment, text in shape.fields
    )


def rule_github_name_only(doc: _Document) -> Iterator[Finding]:
    for target in filter(_github, _allows(doc)):
        if any(_positive_string(c) for c in target.conditions("repository_id")):
            continue
        values = _subject_values(doc, target)
        pinned = [v for v in values if v.shape.breadth.rank <= Breadth.REPO_WIDE.rank]
        if pinned and not any(_is_immutable(v.shape) for v in pinned):
            item = pinned[0]
            yield _finding(
                "github-name-only-subject",
                Severity.LOW,
                target,
                f"`sub` value {item.value!r} names the repository by name only: it stops"
                " matching once the repository uses immutable subjects"
                " (repo:OWNER@ID/REPO@ID, default after renames and transfers since"
                " 2026-07-15), and a deleted name can be registered again",
                "Use the immutable form (keyless trust build --ci github ... --owner-id N"
                " --repository-id N), which also pins `repository_id`.",
                location=item.condition.location,
                element=item.condition.key,
            )


def rule_github_branch_without_environment(doc: _Document) -> Iterator[Finding]:
    for target in filter(_github, _allows(doc)):
        for item in _subject_values(doc, target):
            context = {s.role: t for s, t in item.shape.fields}.get(SegmentRole.CONTEXT)
            if item.shape.breadth is Breadth.EXACT and (context or "").startswith(
                "ref:refs/heads/"
            ):
                yield _finding(
                    "github-branch-without-environment",
                    Severity.INFO,
                    target,
                    f"`sub` value {item.value!r} trusts a branch: pull_request_target runs"
                    " get the base branch's subject although they can run fork code",
                    "For deploy roles, trust a protected environment (`...:environment:NAME`).",
                    location=item.condition.location,
                    element=item.condition.key,
                )


def rule_github_environment_colon(doc: _Document) -> Iterator[Finding]:
    for target in filter(_github, _allows(doc)):
        for item in _subject_values(doc, target):
            if "%3A" in item.value.upper():
                yield _finding(
                    "github-environment-colon",
                    Severity.LOW,
                    target,
                    f"`sub` value {item.value!r} contains %3A: GitHub writes `:` in names as"
                    " %3A, so two different environment names can give this subject",
                    "Rename the environment so that it has no `:`.",
                    location=item.condition.location,
                    element=item.condition.key,
                )


def rule_aud_missing(doc: _Document) -> Iterator[Finding]:
    for target in _allows(doc):
        if any(_positive_string(c) for c in target.conditions("aud")):
            continue
        if target.conditions("aud"):
            continue  # aud-loose reports negated-only aud conditions
        yield _finding(
            "aud-missing",
            Severity.MEDIUM,
            target,
            f"no condition on `{target.prefix}:aud`: any audience registered on the provider"
            " is accepted (and some CIs let the job choose its audience)",
            f'Add "StringEquals": {{"{target.prefix}:aud": "AUDIENCE"}} with the one audience'
            " the provider was registered with.",
            location=f"{target.statement.location}.Condition",
            element="Principal",
        )


def rule_aud_loose(doc: _Document) -> Iterator[Finding]:
    for target in _allows(doc):
        conditions = target.conditions("aud")
        positive = [c for c in conditions if _positive_string(c)]
        if conditions and not positive:
            yield _finding(
                "aud-loose",
                Severity.MEDIUM,
                target,
                "`aud` is checked only with a negated or ForAllValues operator: any other"
                " audience passes",
                f'Use "StringEquals": {{"{target.prefix}:aud": "AUDIENCE"}}.',
                location=conditions[0].location,
                element=conditions[0].key,
            )
            continue
        for condition in positive:
            wild = condition.operator.base.wildcards
            for value in condition.string_values:
                if wild and any(ch in value for ch in _WILDCARDS):
                    yield _finding(
                        "aud-loose",
                        Severity.MEDIUM,
                        target,
                        f"`aud` value {value!r} is a pattern: audiences other than the"
                        " provider's own pass",
                        f'Use "StringEquals": {{"{target.prefix}:aud": "AUDIENCE"}}.',
                        location=condition.location,
                        element=condition.key,
                    )


def _hidden_conditions(target: _Target) -> Iterator[tuple[Condition, str]]:
    own = f"{target.prefix}:".lower()
    exposed = {claim.lower() for claim in target.exposure.claims}
    for condition in target.statement.conditions or ():
        if not condition.key.lower().startswith(own):
            continue
        claim = condition.key[len(own) :]
        if claim.lower() not in exposed and claim not in target.exposure.unconfirmed:
            yield condition, claim


def _always(condition: Condition) -> bool | None:
    """What the condition yields for a key IAM never has."""
    values = [literal_pattern(v) for v in condition.string_values]
    return test_condition(condition.operator, values, None)


def rule_condition_never_matches(doc: _Document) -> Iterator[Finding]:
    for target in doc.targets:
        for condition, claim in _hidden_conditions(target):
            allow = target.statement.effect is Effect.ALLOW
            outcome = _always(condition)
            if outcome is None or outcome is allow:
                continue
            effect = (
                "the role can never be assumed through this statement"
                if allow
                else "this Deny blocks every token"
            )
            yield _finding(
                "condition-never-matches",
                Severity.LOW,
                target,
                f"{condition.operator.name} on `{claim}`: AWS does not expose `{claim}` as a"
                f" condition key for {target.name}, so the key is always absent and {effect}",
                f"Remove it; express the restriction through `{target.prefix}:sub`.",
                location=condition.location,
                element=condition.key,
            )


def rule_condition_does_nothing(doc: _Document) -> Iterator[Finding]:
    for target in doc.targets:
        for condition, claim in _hidden_conditions(target):
            allow = target.statement.effect is Effect.ALLOW
            if _always(condition) is not allow:
                continue
            yield _finding(
                "condition-does-nothing",
                Severity.MEDIUM,
                target,
                f"{condition.operator.name} on `{claim}` does nothing: AWS does not expose"
                f" `{claim}` for {target.name}, the key is always absent, and"
                f" {condition.operator.name} is then always " + ("true" if allow else "false"),
                f"Remove it and express the restriction through `{target.prefix}:sub`.",
                location=condition.location,
                element=condition.key,
            )


def rule_condition_unconfirmed(doc: _Document) -> Iterator[Finding]:
    for target in doc.targets:
        own = f"{target.prefix}:".lower()
        for condition in target.statement.conditions or ():
            claim = condition.key[len(own) :] if condition.key.lower().startswith(own) else ""
            if claim in target.exposure.unconfirmed:
                yield _finding(
                    "condition-unconfirmed-claim",
                    Severity.INFO,
                    target,
                    f"condition on `{claim}`: AWS has not published whether it exposes this"
                    f" {target.name} claim, so the condition may be always absent",
                    f"Rely on `{target.prefix}:sub`, which AWS always exposes.",
                    location=condition.location,
                    element=condition.key,
                )


def rule_forallvalues_in_allow(doc: _Document) -> Iterator[Finding]:
    for statement in doc.policy.statements:
        if statement.effect is not Effect.ALLOW:
            continue
        for condition in statement.conditions or ():
            if condition.operator.qualifier is Qualifier.FOR_ALL_VALUES:
                yield _finding(
                    "forallvalues-in-allow",
                    Severity.HIGH,
                    statement,
                    f"{condition.operator.name} on `{condition.key}` in an Allow is true when"
                    " the key is absent or empty, so it lets through tokens without it",
                    "Use the operator without ForAllValues: (or ForAnyValue: for a"
                    " multivalued `aud`).",
                    location=condition.location,
                    element=condition.key,
                )


def _bitbucket(target: _Target) -> bool:
    return target.provider is not None and target.provider.name == "bitbucket"


_BRACED_UUID = r"\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}"
_BARE_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_FULL_BITBUCKET_SUB = re.compile(rf"{_BRACED_UUID}(:{_BRACED_UUID}){{1,2}}")


def _positive_sub_values(target: _Target) -> Iterator[tuple[Condition, str]]:
    for condition in target.conditions("sub"):
        if _positive_string(condition):
            for value in condition.string_values:
                yield condition, value


def rule_bitbucket_step_pinned(doc: _Document) -> Iterator[Finding]:
    for target in filter(_bitbucket, _allows(doc)):
        for condition, value in _positive_sub_values(target):
            if _FULL_BITBUCKET_SUB.fullmatch(value):
                yield _finding(
                    "bitbucket-step-pinned",
                    Severity.MEDIUM,
                    target,
                    f"`sub` value {value!r} includes the step UUID, which changes on every run:"
                    " the role works once and then never again (and the usual 'fix' is to drop"
                    " the subject check)",
                    'Use "StringLike" with "{REPO_UUID}:*" or "{REPO_UUID}:{ENV_UUID}:*".',
                    location=condition.location,
                    element=condition.key,
                )


def rule_bitbucket_environment_name(doc: _Document) -> Iterator[Finding]:
    for target in filter(_bitbucket, _allows(doc)):
        for condition, value in _positive_sub_values(target):
            parts = value.split(":")
            if len(parts) < 2 or not re.fullmatch(_BRACED_UUID, parts[0]):
                continue
            middle = parts[1]
            if (
                len(parts) >= 3
                and middle
                and not re.fullmatch(_BRACED_UUID, middle)
                and not any(ch in middle for ch in _WILDCARDS)
            ):
                yield _finding(
                    "bitbucket-environment-name",
                    Severity.LOW,
                    target,
                    f"`sub` value {value!r} names the deployment environment {middle!r}"
                    " where Bitbucket writes its UUID: it never matches",
                    "Use the environment's UUID in braces (Deployments settings, or"
                    " $BITBUCKET_DEPLOYMENT_ENVIRONMENT_UUID in a step).",
                    location=condition.location,
                    element=condition.key,
                )


def rule_bitbucket_uuid_braces(doc: _Document) -> Iterator[Finding]:
    for target in filter(_bitbucket, _allows(doc)):
        for condition, value in _positive_sub_values(target):
            if re.match(_BARE_UUID, value):
                yield _finding(
                    "bitbucket-uuid-braces",
                    Severity.LOW,
                    target,
                    f"`sub` value {value!r} has a UUID without braces; Bitbucket writes"
                    " `{UUID}`, so it never matches",
                    "Write the repository UUID with its braces: {xxxxxxxx-...}:*.",
                    location=condition.location,
                    element=condition.key,
                )


_TAG_KEYS = ("aws:requesttag/", "aws:tagkeys", "sts:transitivetagkeys")


def _allowed_actions(doc: _Document, prefix: str, action: str) -> bool:
    for statement in doc.policy.statements:
        if statement.effect is not Effect.ALLOW or prefix not in _provider_prefixes(statement):
            continue
        if statement.action is not None:
            if any(_glob(p).match(action.lower()) for p in statement.action):
                return True
        elif not any(_glob(p).match(action.lower()) for p in statement.not_action or ()):
            return True
    return False


def rule_tag_session_missing(doc: _Document) -> Iterator[Finding]:
    seen: set[str] = set()
    for target in _allows(doc):
        uses_tags = any(
            c.key.lower().startswith(_TAG_KEYS) for c in target.statement.conditions or ()
        )
        if not uses_tags or target.prefix in seen:
            continue
        seen.add(target.prefix)
        if not _allowed_actions(doc, target.prefix, TAG_SESSION):
            yield _finding(
                "tag-session-missing",
                Severity.LOW,
                target,
                f"conditions use session tags but no statement allows {TAG_SESSION}: a token"
                " carrying tags is refused",
                f'Add "{TAG_SESSION}" to the Action list of this statement.',
                location=f"{target.statement.location}.Action",
                element="Action",
            )


def rule_allow_not_action(doc: _Document) -> Iterator[Finding]:
    for target in _allows(doc):
        if target.statement.not_action is not None:
            yield _finding(
                "allow-not-action",
                Severity.LOW,
                target,
                "Allow with NotAction grants every STS action it does not list to this"
                f" provider's tokens (including {SET_SOURCE_IDENTITY} and {TAG_SESSION})",
                f'Use "Action": "{WEB_IDENTITY_ACTION}" (plus sts:TagSession if needed).',
                location=f"{target.statement.location}.NotAction",
                element="NotAction",
            )


def rule_action_mismatch(doc: _Document) -> Iterator[Finding]:
    for statement in doc.policy.statements:
        if statement.effect is not Effect.ALLOW or not _provider_prefixes(statement):
            continue
        if not _covers_web_identity(statement):
            yield _finding(
                "action-mismatch",
                Severity.LOW,
                statement,
                f"an OIDC provider is trusted but {WEB_IDENTITY_ACTION} is not allowed: no"
                " token can assume the role through this statement",
                f'Use "Action": "{WEB_IDENTITY_ACTION}".',
                location=f"{statement.location}.Action",
                element="Action",
            )


def rule_variables_ignored(doc: _Document) -> Iterator[Finding]:
    if doc.policy.variables_enabled:
        return
    for statement in doc.policy.statements:
        for condition in statement.conditions or ():
            if any("${" in value for value in condition.string_values):
                yield _finding(
                    "variables-ignored",
                    Severity.LOW,
                    statement,
                    f"`{condition.key}` uses a policy variable, but without"
                    ' "Version": "2012-10-17" IAM reads `${...}` as literal text',
                    'Add "Version": "2012-10-17" at the top of the policy.',
                    location=condition.location,
                    element=condition.key,
                )


def rule_unknown_issuer(doc: _Document) -> Iterator[Finding]:
    seen: set[str] = set()
    for target in _allows(doc):
        if target.provider is not None or target.prefix in seen:
            continue
        seen.add(target.prefix)
        yield _finding(
            "unknown-issuer",
            Severity.INFO,
            target,
            f"{target.prefix} is not an issuer keyless knows (Bitbucket, GitHub, GitLab,"
            " CircleCI, Buildkite): only the generic checks apply",
            "Check the `sub` pattern against the issuer's documentation by hand.",
            location=f"{target.statement.location}.Principal",
            element="Principal",
        )


def _rule(rule_id: str, title: str, severity: Severity, rationale: str, check: Check) -> Rule:
    return Rule(id=rule_id, title=title, severity=severity, rationale=rationale, check=check)


#: Every rule, in the order findings are reported for a statement.
RULES: tuple[Rule, ...] = (
    _rule(
        "principal-wildcard",
        "Principal is *",
        Severity.CRITICAL,
        "A wildcard principal trusts whoever AWS admits under it (Access Analyzer: unsupported"
        " wildcard in principal).",
        rule_principal_wildcard,
    ),
    _rule(
        "not-principal",
        "NotPrincipal in a trust policy",
        Severity.HIGH,
        "IAM refuses NotPrincipal in role trust policies; with Allow it trusts all but a few.",
        rule_not_principal,
    ),
    _rule(
        "subject-missing",
        "No condition on the token subject",
        Severity.CRITICAL,
        "Without a `sub` pin every job the issuer mints tokens for can assume the role: the"
        " whole platform for shared issuers, the whole workspace or org for per-tenant ones.",
        rule_subject_missing,
    ),
    _rule(
        "subject-negated-only",
        "Only negated operators on the subject",
        Severity.CRITICAL,
        "StringNotLike/StringNotEquals say who may not assume the role; everyone else may.",
        rule_subject_negated_only,
    ),
    _rule(
        "subject-scoped-to-all",
        "Subject pattern matches everyone",
        Severity.CRITICAL,
        "Values such as *, repo:*, project_path:* or {*}:* match every subject of the issuer.",
        _breadth_rule(Breadth.ALL),
    ),
    _rule(
        "subject-wildcard-tenant",
        "Wildcard in or before the owner",
        Severity.CRITICAL,
        "StringLike's * crosses / and :, so a wildcard in or before the owner, workspace or"
        " group matches names an attacker can register (repo:acme* matches acme-evil).",
        _breadth_rule(Breadth.CROSS_TENANT),
    ),
    _rule(
        "subject-org-wide",
        "Owner-, group- or organization-wide subject",
        Severity.HIGH,
        "A wildcard over the repository or project admits every repository of the owner,"
        " including ones created, forked or transferred in later.",
        _breadth_rule(Breadth.ORG_WIDE),
    ),
    _rule(
        "subject-mutable-prefix",
        "Prefix pattern on a branch, tag or environment name",
        Severity.MEDIUM,
        "Names such as release* or prod* are chosen by whoever can create a branch, tag or"
        " environment; a wildcard ref type lets a tag stand in for a branch.",
        _breadth_rule(Breadth.MUTABLE_PREFIX),
    ),
    _rule(
        "subject-repo-wide",
        "Any ref or environment of one repository",
        Severity.LOW,
        "Every branch, tag, pull request and environment of the repository can assume the"
        " role; deploy roles should pin a protected environment.",
        _breadth_rule(Breadth.REPO_WIDE),
    ),
    _rule(
        "subject-loose-value-in-list",
        "One loose value among exact ones",
        Severity.HIGH,
        "Several values for one key are ORed: the loosest value decides who gets in.",
        rule_subject_loose_value,
    ),
    _rule(
        "subject-unrecognised",
        "Subject value of an unknown shape",
        Severity.INFO,
        "The value does not follow the CI's default subject format (custom template or typo).",
        _breadth_rule(Breadth.UNRECOGNISED),
    ),
    _rule(
        "github-pull-request",
        "GitHub pull_request subject",
        Severity.MEDIUM,
        "pull_request runs execute unmerged code of any branch with the role.",
        rule_github_pull_request,
    ),
    _rule(
        "github-job-workflow-ref-only",
        "GitHub job_workflow_ref without a repository",
        Severity.HIGH,
        "job_workflow_ref names the called workflow; any repository allowed to call it passes.",
        rule_github_job_workflow_ref_only,
    ),
    _rule(
        "github-floating-workflow-ref",
        "GitHub reusable workflow pinned to a branch",
        Severity.LOW,
        "A branch ref lets whoever pushes to it change what runs with the role.",
        rule_github_floating_workflow_ref,
    ),
    _rule(
        "github-name-only-subject",
        "GitHub subject by name only",
        Severity.LOW,
        "Repositories on the immutable subject format (repo:OWNER@ID/REPO@ID) never match"
        " name-only values, and deleted names can be registered again.",
        rule_github_name_only,
    ),
    _rule(
        "github-branch-without-environment",
        "GitHub branch subject without an environment",
        Severity.INFO,
        "pull_request_target runs get the base branch's subject although they can run fork"
        " code; protected environments are the gate that shows up in `sub`.",
        rule_github_branch_without_environment,
    ),
    _rule(
        "github-environment-colon",
        "GitHub environment name with an encoded colon",
        Severity.LOW,
        "GitHub writes : as %3A, so Production:V1 and Production%3AV1 give the same subject.",
        rule_github_environment_colon,
    ),
    _rule(
        "aud-missing",
        "No condition on the audience",
        Severity.MEDIUM,
        "STS checks aud against the provider's client IDs; pinning it in the role is defence"
        " in depth where a provider has several or the job chooses its own.",
        rule_aud_missing,
    ),
    _rule(
        "aud-loose",
        "Audience checked loosely",
        Severity.MEDIUM,
        "A pattern or negated operator on aud admits audiences other than the intended one.",
        rule_aud_loose,
    ),
    _rule(
        "condition-does-nothing",
        "Condition on a claim AWS does not expose, always true",
        Severity.MEDIUM,
        "IAM sees only sub, aud and a few provider keys; negated, IfExists and ForAllValues"
        " operators on any other claim are always true, so the control silently does nothing.",
        rule_condition_does_nothing,
    ),
    _rule(
        "condition-never-matches",
        "Condition on a claim AWS does not expose, never true",
        Severity.LOW,
        "A positive operator on a claim IAM never sees is always false: the role never works.",
        rule_condition_never_matches,
    ),
    _rule(
        "condition-unconfirmed-claim",
        "Condition on a claim AWS may not expose",
        Severity.INFO,
        "AWS has not published which CircleCI claims it exposes as condition keys.",
        rule_condition_unconfirmed,
    ),
    _rule(
        "forallvalues-in-allow",
        "ForAllValues in an Allow",
        Severity.HIGH,
        "ForAllValues is true for an absent or empty key (Access Analyzer: ForAllValues with"
        " single valued key).",
        rule_forallvalues_in_allow,
    ),
    _rule(
        "bitbucket-step-pinned",
        "Bitbucket subject pinned to one step",
        Severity.MEDIUM,
        "The step UUID changes every run; a full-subject StringEquals works once.",
        rule_bitbucket_step_pinned,
    ),
    _rule(
        "bitbucket-environment-name",
        "Bitbucket environment name instead of UUID",
        Severity.LOW,
        "Bitbucket's subject carries the deployment environment's UUID, never its name.",
        rule_bitbucket_environment_name,
    ),
    _rule(
        "bitbucket-uuid-braces",
        "Bitbucket UUID without braces",
        Severity.LOW,
        "Bitbucket writes UUIDs in braces in `sub`; without them the value never matches.",
        rule_bitbucket_uuid_braces,
    ),
    _rule(
        "tag-session-missing",
        "Session tags without sts:TagSession",
        Severity.LOW,
        "A token with session tags needs sts:TagSession allowed too, or the call fails.",
        rule_tag_session_missing,
    ),
    _rule(
        "allow-not-action",
        "Allow with NotAction",
        Severity.LOW,
        "NotAction grants every action not listed, more than web-identity assumption.",
        rule_allow_not_action,
    ),
    _rule(
        "action-mismatch",
        "OIDC principal without sts:AssumeRoleWithWebIdentity",
        Severity.LOW,
        "An OIDC provider can only use AssumeRoleWithWebIdentity (Access Analyzer: mismatched"
        " action for principal).",
        rule_action_mismatch,
    ),
    _rule(
        "resource-in-trust-policy",
        "Resource in a trust policy",
        Severity.LOW,
        "IAM refuses Resource and NotResource in role trust policies.",
        rule_resource,
    ),
    _rule(
        "variables-ignored",
        "Policy variables without Version 2012-10-17",
        Severity.LOW,
        "Without Version 2012-10-17, ${...} is literal text and never matches.",
        rule_variables_ignored,
    ),
    _rule(
        "unknown-issuer",
        "Issuer keyless does not know",
        Severity.INFO,
        "Subject-shape checks need the CI's subject grammar; only generic checks apply.",
        rule_unknown_issuer,
    ),
)


def lint(policy: Policy, *, rules: Sequence[Rule] = RULES) -> list[Finding]:
    """Every finding of every rule, by statement and then by descending severity."""
    doc = _document(policy)
    findings = [finding for rule in rules for finding in rule.check(doc)]
    unique = list(dict.fromkeys(findings))
    order = {rule.id: index for index, rule in enumerate(rules)}
    return sorted(
        unique,
        key=lambda f: (
            -1 if f.statement is None else f.statement,
            -f.severity.rank,
            order.get(f.rule, len(order)),
        ),
    )


# --- SARIF ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LintedFile:
    """One linted file: its path as the user named it, its text, and its findings."""

    path: str
    text: str
    findings: tuple[Finding, ...]


_EFFECT = re.compile(r'"Effect"\s*:')


def line_of(text: str, finding: Finding) -> int:
    """The 1-based line of the JSON member a finding is about (the statement's ``Effect`` line
    when the member is not found); 1 for document-level findings."""
    if finding.statement is None:
        return 1
    starts = [match.start() for match in _EFFECT.finditer(text)]
    if finding.statement >= len(starts):
        return 1
    anchor = starts[finding.statement]
    low = starts[finding.statement - 1] if finding.statement > 0 else 0
    high = starts[finding.statement + 1] if finding.statement + 1 < len(starts) else len(text)
    position = anchor
    if finding.element:
        needle = json.dumps(finding.element)
        hits = [m.start() for m in re.finditer(re.escape(needle), text) if low <= m.start() < high]
        if hits:
            position = min(hits, key=lambda hit: abs(hit - anchor))
    return text.count("\n", 0, position) + 1


def sarif(
    files: Sequence[LintedFile], *, tool_version: str, rules: Sequence[Rule] = RULES
) -> dict[str, Any]:
    """A SARIF 2.1.0 log for GitHub code scanning: one run, the rule catalogue, one result per
    finding with its file and line."""
    index = {rule.id: position for position, rule in enumerate(rules)}
    results = []
    for linted in files:
        for finding in linted.findings:
            results.append(
                {
                    "ruleId": finding.rule,
                    "ruleIndex": index[finding.rule],
                    "level": finding.severity.sarif_level,
                    "message": {"text": f"{finding.message}. Fix: {finding.fix}"},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": linted.path},
                                "region": {"startLine": line_of(linted.text, finding)},
                            },
                            "logicalLocations": [{"fullyQualifiedName": finding.location}],
                        }
                    ],
                    "properties": {"severity": finding.severity.value},
                }
            )
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "keyless",
                        "version": tool_version,
                        "rules": [
                            {
                                "id": rule.id,
                                "name": _pascal(rule.id),
                                "shortDescription": {"text": rule.title},
                                "fullDescription": {"text": rule.rationale},
                                "help": {"text": rule.rationale},
                                "defaultConfiguration": {"level": rule.severity.sarif_level},
                                "properties": {
                                    "security-severity": rule.severity.security_severity,
                                    "tags": ["security", "iam", "oidc"],
                                    "precision": "high",
                                },
                            }
                            for rule in rules
                        ],
                    }
                },
                "results": results,
            }
        ],
    }


def _pascal(rule_id: str) -> str:
    return "".join(part.capitalize() for part in rule_id.split("-"))
