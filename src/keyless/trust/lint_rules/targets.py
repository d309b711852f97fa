"""What a trust policy trusts, as the lint rules read it: one ``Target`` per statement and OIDC
provider, the provider's subject grammar and exposed claims, and which `sub` values admit whom.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from keyless.ci import CI_PROVIDERS, LocalIssuers, provider_for_issuer
from keyless.ci.base import Provider, SubjectGrammar
from keyless.ci.local_issuers import LOCAL_ISSUERS_NONE
from keyless.trust.findings import Severity
from keyless.trust.glob import Glob, compile_glob
from keyless.trust.model import Condition, Effect, Policy, Statement
from keyless.trust.operators import Category, Qualifier
from keyless.trust.subjects import SubjectShape, subject_shape
from keyless.trust.web_identity import WEB_IDENTITY_ACTION, Exposure, exposure_for


@dataclass(frozen=True, slots=True, kw_only=True)
class LintContext:
    """What lint knows beyond the trust policy: whether the role's permissions write anything,
    the OIDC provider's client-ID list, and the CI (by ``--ci`` name) of an issuer whose URL does
    not say (Terraform Enterprise, GitHub Enterprise Server, GitLab self-managed, the local
    stack). ``None`` is unknown: a role of unknown permissions is graded as one that may write
    (docs/lint-severity.md#what-lint-knows); an unknown issuer gets the generic checks only."""

    writes: bool | None = None
    client_ids: tuple[str, ...] | None = None
    ci: str | None = None
    #: The local stack's issuers, linted as their CI's (``keyless.ci.local_issuers``).
    local: LocalIssuers = LOCAL_ISSUERS_NONE

    @property
    def may_write(self) -> bool:
        return self.writes is not False


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """An Allow or Deny statement for web identity through one OIDC provider."""

    statement: Statement
    prefix: str  # issuer without https://: the condition-key prefix
    provider: Provider | None
    exposure: Exposure
    #: What lint knows beyond the trust policy (docs/lint-severity.md#what-lint-knows).
    context: LintContext = field(default_factory=lambda: LintContext())

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
class Document:
    policy: Policy
    targets: tuple[Target, ...]
    #: ``subject_values`` of each target, by ``id(target)`` (the targets above live as long as
    #: the document): a dozen rules ask for them, and each answer shapes every value once more.
    subjects: dict[int, tuple[SubjectValue, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )


def covers_web_identity(statement: Statement) -> bool:
    if statement.action is not None:
        return any(action_glob(p).match(WEB_IDENTITY_ACTION.lower()) for p in statement.action)
    return not any(
        action_glob(p).match(WEB_IDENTITY_ACTION.lower()) for p in statement.not_action or ()
    )


def action_glob(pattern: str) -> Glob:
    # Action names are case-insensitive (IAM JSON policy elements: Action).
    return compile_glob(pattern.lower())


def provider_prefixes(statement: Statement) -> list[str]:
    prefixes = []
    for value in statement.federated:
        _, marker, path = value.partition(":oidc-provider/")
        if marker and path:
            prefixes.append(path)
    return prefixes


def document(policy: Policy, context: LintContext | None = None) -> Document:
    context = context or LintContext()
    declared = next((p for p in CI_PROVIDERS if p.name == context.ci), None)
    targets: list[Target] = []
    for statement in policy.statements:
        if not covers_web_identity(statement):
            continue
        for prefix in provider_prefixes(statement):
            issuer = f"https://{prefix}"
            targets.append(
                Target(
                    statement=statement,
                    prefix=prefix,
                    # An issuer whose URL names its CI is that CI's, whatever context.ci says.
                    provider=provider_for_issuer(issuer, context.local) or declared,
                    exposure=exposure_for(issuer),
                    context=context,
                )
            )
    return Document(policy=policy, targets=tuple(targets))


def allows(doc: Document) -> Iterator[Target]:
    return (t for t in doc.targets if t.statement.effect is Effect.ALLOW)


def positive_string(condition: Condition) -> bool:
    """A condition that admits only the listed values (not negated, not a no-op when absent)."""
    op = condition.operator
    return (
        op.category is Category.STRING
        and not op.negated
        and op.qualifier is not Qualifier.FOR_ALL_VALUES
    )


def example_fix(target: Target) -> str:
    name = target.provider.name if target.provider else None
    commands = {
        "github": "keyless trust build --ci github --repository OWNER/REPO --environment NAME"
        " --owner-id N --repository-id N",
        "bitbucket": (
            "keyless trust build --ci bitbucket --workspace SLUG --workspace-uuid UUID"
            " --repository-uuid UUID --environment-uuid UUID"
        ),
        "gitlab": "keyless trust build --ci gitlab --project GROUP/PROJECT --ref main",
        "circleci": "keyless trust build --ci circleci --org-id UUID --project-id UUID",
        "buildkite": "keyless trust build --ci buildkite --organization SLUG --pipeline SLUG"
        " --branch main",
        "terraform": "keyless trust build --ci terraform --organization ORG --project PROJECT"
        " --workspace WORKSPACE --run-phase apply",
    }
    if name in commands:
        return f"Pin `{target.prefix}:sub` to one repository and environment: {commands[name]}"
    return f"Pin `{target.prefix}:sub` with StringEquals to the exact subject of the one workload."


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectValue:
    condition: Condition
    value: str
    shape: SubjectShape


def _shape_of(target: Target, condition: Condition, value: str) -> SubjectShape:
    wildcards = condition.operator.base.wildcards
    return subject_shape(
        value,
        target.grammar,
        wildcards=wildcards,
        tenant_in_issuer=target.shared is False,
    )


def _guards(doc: Document, target: Target) -> list[Condition]:
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


def subject_values(doc: Document, target: Target) -> tuple[SubjectValue, ...]:
    """The values of the narrowest positive `sub` condition (conditions AND, values OR)."""
    known = doc.subjects.get(id(target))
    if known is None:
        known = doc.subjects[id(target)] = tuple(_subject_values(doc, target))
    return known


def _subject_values(doc: Document, target: Target) -> list[SubjectValue]:
    candidates = [c for c in target.conditions("sub") if positive_string(c)]
    candidates += _guards(doc, target)
    best: list[SubjectValue] | None = None
    best_rank = -1
    for condition in candidates:
        values = [
            SubjectValue(condition=condition, value=v, shape=_shape_of(target, condition, v))
            for v in condition.string_values
        ]
        worst = max(v.shape.breadth.rank for v in values)
        if best is None or worst < best_rank:
            best, best_rank = values, worst
    return best or []


def has_control(doc: Document, target: Target) -> bool:
    if any(positive_string(c) for c in target.conditions("sub")) or _guards(doc, target):
        return True
    if target.provider is not None and target.provider.name == "github":
        return any(
            positive_string(c)
            for claim in ("repository", "repository_id")
            for c in target.conditions(claim)
        )
    if target.provider is not None and target.provider.name == "buildkite":
        # Buildkite's AWS guide pins organization and pipeline through session tags
        # (docs/ci-tokens.md#buildkite).
        return _buildkite_tags_pinned(target)
    return False


_BUILDKITE_TAGS = ("organization_slug", "organization_id")


def _buildkite_tags_pinned(target: Target) -> bool:
    keys = {
        c.key.lower()
        for c in target.statement.conditions or ()
        if positive_string(c) and not any("*" in v or "?" in v for v in c.string_values)
    }
    return any(f"aws:requesttag/{tag}" in keys for tag in _BUILDKITE_TAGS)


def issuer_reach(target: Target) -> Severity:
    """The grade of rules whose finding means "anyone the issuer mints tokens for": CRITICAL for a
    shared issuer (every customer of the CI) or an unknown one, HIGH for a per-tenant issuer (one
    workspace or organization)."""
    return target.reach


def is_github(target: Target) -> bool:
    return target.provider is not None and target.provider.name == "github"


def is_bitbucket(target: Target) -> bool:
    return target.provider is not None and target.provider.name == "bitbucket"


def build_command(target: Target) -> str:
    """The `keyless trust build` command that writes the safe form for this target's CI."""
    return example_fix(target)


def exact_values(condition: Condition) -> list[str]:
    """The values of a positive string condition that are exact (no wildcard IAM would honour)."""
    if not positive_string(condition):
        return []
    wild = condition.operator.base.wildcards
    return [v for v in condition.string_values if not (wild and any(c in v for c in "*?"))]


def pinned(target: Target, claim: str) -> bool:
    """A positive condition pins ``claim`` to exact values only."""
    return any(
        (values := exact_values(c)) and len(values) == len(c.string_values)
        for c in target.conditions(claim)
    )


def closed_by(target: Target) -> str | None:
    """The condition besides `sub` that closes a repository-wide subject to trusted writers, or
    ``None``: a pinned GitHub `environment`, a pinned `job_workflow_ref` with `repository_id`, a
    GitLab `ref_protected` pinned to "true" (docs/lint-severity.md#closing-conditions)."""
    name = target.provider.name if target.provider else None
    if name == "github":
        if pinned(target, "environment"):
            return "`environment` is pinned"
        if pinned(target, "job_workflow_ref") and pinned(target, "repository_id"):
            return "`job_workflow_ref` and `repository_id` are pinned"
    if name == "gitlab":
        for condition in target.conditions("ref_protected"):
            if [v.lower() for v in exact_values(condition)] == ["true"]:
                return "`ref_protected` is pinned to true"
    return None
