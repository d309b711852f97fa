"""Who can assume a role, in words per CI: the `sub` patterns of each Allow statement for an OIDC
provider, split into the fields of the CI's subject grammar (the grammar lint uses) and said as
"any branch of acme/site" or "pull requests of any repository in org acme".

How wide each pattern is comes from ``keyless.trust.subjects.subject_shape``, so the words and the
lint findings never disagree about breadth.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from keyless.audit.inventory import UNRESOLVED_PREFIX
from keyless.ci import provider_for_issuer
from keyless.ci.base import Provider, SubjectGrammar
from keyless.ci.subject_words import is_wild, split_fields
from keyless.trust.glob import compile_glob
from keyless.trust.model import Condition, Effect, Policy, Statement
from keyless.trust.operators import Category, Qualifier
from keyless.trust.subjects import Breadth, subject_shape
from keyless.trust.web_identity import WEB_IDENTITY_ACTION

__all__ = ["Identity", "oidc_prefixes", "who_can_assume"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """One kind of CI job that can assume the role."""

    #: The CI's ``--ci`` name, or ``other`` for an issuer keyless does not know.
    ci: str
    ci_name: str
    #: The issuer without ``https://`` (the provider's URL as IAM stores it).
    issuer: str
    #: The `sub` value as written in the policy (``None``: no condition on `sub`).
    pattern: str | None
    words: str
    #: How much the pattern admits (``keyless.trust.subjects.Breadth``), narrowest first.
    breadth: str

    def to_json(self) -> dict[str, object]:
        return {
            "ci": self.ci,
            "ci_name": self.ci_name,
            "issuer": self.issuer,
            "pattern": self.pattern,
            "words": self.words,
            "breadth": self.breadth,
        }


def oidc_prefixes(statement: Statement) -> list[str]:
    """The issuers (without ``https://``) of the OIDC providers a statement names."""
    out = []
    for value in statement.federated:
        _, marker, path = value.partition(":oidc-provider/")
        if marker and path:
            out.append(path)
    return out


def _covers_web_identity(statement: Statement) -> bool:
    action = WEB_IDENTITY_ACTION.lower()
    if statement.action is not None:
        return any(compile_glob(p.lower()).match(action) for p in statement.action)
    return not any(compile_glob(p.lower()).match(action) for p in statement.not_action or ())


def _conditions(statement: Statement, prefix: str, claim: str) -> list[Condition]:
    key = f"{prefix}:{claim}".lower()
    return [c for c in statement.conditions or () if c.key.lower() == key]


def _positive(condition: Condition) -> bool:
    op = condition.operator
    return (
        op.category is Category.STRING
        and not op.negated
        and op.qualifier is not Qualifier.FOR_ALL_VALUES
    )


def who_can_assume(policy: Policy) -> tuple[Identity, ...]:
    """Every identity the Allow statements for OIDC providers admit, in statement order."""
    found: list[Identity] = []
    for statement in policy.statements:
        if statement.effect is not Effect.ALLOW or not _covers_web_identity(statement):
            continue
        for prefix in oidc_prefixes(statement):
            found.extend(_identities(statement, prefix))
    return tuple(dict.fromkeys(found))


def _identities(statement: Statement, prefix: str) -> Iterator[Identity]:
    provider = provider_for_issuer(f"https://{prefix}")
    ci = provider.name if provider else "other"
    ci_name = provider.display_name if provider else f"issuer {prefix}"
    subs = [c for c in _conditions(statement, prefix, "sub") if _positive(c)]
    if not subs:
        words, breadth = _without_subject(statement, prefix, provider)
        yield Identity(
            ci=ci, ci_name=ci_name, issuer=prefix, pattern=None, words=words, breadth=breadth
        )
        return
    # Conditions AND together: the narrowest one decides; its values OR.
    grammar = provider.subject_grammar if provider else SubjectGrammar()
    tenant_in_issuer = provider is not None and provider.shared_issuer is False
    best: list[tuple[str, Breadth]] | None = None
    for condition in subs:
        wildcards = condition.operator.base.wildcards
        values = [
            (
                value,
                subject_shape(
                    value, grammar, wildcards=wildcards, tenant_in_issuer=tenant_in_issuer
                ).breadth,
            )
            for value in condition.string_values
        ]
        if best is None or max(b.rank for _, b in values) < max(b.rank for _, b in best):
            best = values
    for value, breadth in best or []:
        words = _words(value, provider, grammar, prefix)
        yield Identity(
            ci=ci,
            ci_name=ci_name,
            issuer=prefix,
            pattern=value,
            words=words,
            breadth=breadth.value,
        )


def _without_subject(
    statement: Statement, prefix: str, provider: Provider | None
) -> tuple[str, str]:
    negated = [c for c in _conditions(statement, prefix, "sub") if c.operator.negated]
    if provider is None:
        everyone = f"anyone who can get a token from {prefix}"
    elif provider.shared_issuer:
        everyone = f"any job anywhere on {provider.display_name}"
    else:
        everyone = f"any job of the {provider.display_name} tenant behind {prefix}"
    if provider is not None and provider.name == "github":
        repositories = [
            v
            for claim in ("repository", "repository_owner")
            for c in _conditions(statement, prefix, claim)
            if _positive(c)
            for v in c.string_values
        ]
        if repositories:
            return f"any workflow run of {', '.join(repositories)}", Breadth.REPO_WIDE.value
    if negated:
        excluded = ", ".join(v for c in negated for v in c.string_values)
        return f"{everyone}, except {excluded}", Breadth.ALL.value
    return everyone, Breadth.ALL.value


# --- the words ---------------------------------------------------------------------------------


def _words(value: str, provider: Provider | None, grammar: SubjectGrammar, prefix: str) -> str:
    """The CI's own words for ``value`` (``Provider.describe_subject``), else generic ones."""
    if UNRESOLVED_PREFIX in value:
        return f"subjects known only once deployed: {value}"
    fields = split_fields(value, grammar) if provider else None
    described = (
        provider.describe_subject(fields, prefix) if provider and fields is not None else None
    )
    if described is not None:
        return described
    if value.strip("*") == "":
        return f"anyone who can get a token from {prefix}"
    if is_wild(value):
        return f"subjects matching {value} from {prefix}"
    return f"subject {value} from {prefix}"
