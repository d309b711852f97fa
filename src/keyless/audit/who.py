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
from keyless.trust.evaluate import WEB_IDENTITY_ACTION
from keyless.trust.glob import compile_glob
from keyless.trust.model import Condition, Effect, Policy, Statement
from keyless.trust.operators import Category, Qualifier
from keyless.trust.subjects import Breadth, subject_shape

__all__ = ["Identity", "oidc_prefixes", "who_can_assume"]

_WILDCARDS = "*?"


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


def _fields(value: str, grammar: SubjectGrammar) -> dict[str, str] | None:
    """The fields of ``value`` by name; a field that ends in a wildcard with nothing after it
    swallows every later field (``*`` crosses ``:`` and ``/``). ``None``: another shape."""
    out: dict[str, str] = {}
    segments = grammar.segments
    position = 0
    for index, segment in enumerate(segments):
        if not value.startswith(segment.literal, position):
            if value[position:] in ("*", "") and index > 0:
                out.update({s.field: "*" for s in segments[index:]})
                return out
            return None
        position += len(segment.literal)
        following = segments[index + 1].literal if index + 1 < len(segments) else None
        end = value.find(following, position) if following else -1
        if end < 0:
            text = value[position:]
            out[segment.field] = text
            if text.endswith("*"):
                out.update({s.field: "*" for s in segments[index + 1 :]})
            # Otherwise later fields are absent (Bitbucket steps outside a deployment).
            return out
        out[segment.field] = value[position:end]
        position = end
    return out


def _wild(text: str) -> bool:
    return any(c in text for c in _WILDCARDS)


def _named(kind: str, plural: str, value: str | None) -> str:
    if value is None or value.strip("*") == "":
        return f"any {kind}"
    if UNRESOLVED_PREFIX in value:
        return f"a {kind} known only once deployed ({value})"
    if _wild(value):
        return f"{plural} matching {value}"
    return f"{kind} {value}"


def _ref(value: str | None) -> str:
    """A git ref (``refs/heads/main``, ``refs/tags/v*``) in words."""
    if value is None or value.strip("*") == "":
        return "any branch, tag or pull request"
    for prefix, kind, plural in (
        ("refs/heads/", "branch", "branches"),
        ("refs/tags/", "tag", "tags"),
        ("refs/pull/", "pull request", "pull requests"),
    ):
        if value.startswith(prefix):
            return _named(kind, plural, value[len(prefix) :])
    if "refs/".startswith(value.rstrip("*")) or (value.startswith("refs/") and _wild(value)):
        return f"refs matching {value}"
    return _named("ref", "refs", value)


def _words(value: str, provider: Provider | None, grammar: SubjectGrammar, prefix: str) -> str:
    if UNRESOLVED_PREFIX in value:
        return f"subjects known only once deployed: {value}"
    fields = _fields(value, grammar) if provider else None
    if fields is None or provider is None:
        if value.strip("*") == "":
            return f"anyone who can get a token from {prefix}"
        if _wild(value):
            return f"subjects matching {value} from {prefix}"
        return f"subject {value} from {prefix}"
    name = provider.name
    if name == "github":
        return _github(fields)
    if name == "gitlab":
        return _gitlab(fields, prefix)
    if name == "bitbucket":
        return _bitbucket(fields, prefix)
    if name == "circleci":
        return _circleci(fields)
    if name == "buildkite":
        return _buildkite(fields)
    return f"subjects matching {value} from {prefix}"


def _github(fields: dict[str, str]) -> str:
    owner, repo = fields.get("owner", "*"), fields.get("repository", "*")
    if owner.strip("*") == "":
        where = "any repository on GitHub"
    elif _wild(owner):
        where = f"repositories of owners matching {owner}"
    elif repo.strip("*") == "":
        where = f"any repository in org {owner}"
    elif _wild(repo):
        where = f"repositories matching {owner}/{repo}"
    else:
        where = f"{owner}/{repo}"
    context = fields.get("ref or environment", "*")
    if context.strip("*") == "":
        what = "any workflow run"
    elif context == "pull_request":
        what = "pull requests"
    elif context.startswith("ref:"):
        what = _ref(context[4:])
    elif context.startswith("environment:"):
        what = _named("deployment environment", "deployment environments", context[12:])
    elif context.startswith("job_workflow_ref:"):
        what = _named("reusable workflow", "reusable workflows", context[17:])
    elif _wild(context):
        what = f"runs whose context matches {context}"
    else:
        what = context
    return f"{what} of {where}"


def _gitlab(fields: dict[str, str], prefix: str) -> str:
    path = fields.get("project path", "*")
    if path.strip("*") == "":
        where = f"any project on {prefix}"
    elif path.endswith("/*") and not _wild(path[:-2]):
        where = f"any project in group {path[:-2]}"
    elif _wild(path):
        where = f"projects matching {path}"
    else:
        where = f"project {path}"
    ref_type, ref = fields.get("ref type", "*"), fields.get("ref", "*")
    if ref_type == "branch":
        what = _named("branch", "branches", ref)
    elif ref_type == "tag":
        what = _named("tag", "tags", ref)
    elif ref.strip("*") == "":
        what = "any branch or tag"
    else:
        what = f"{_named('branch or tag', 'branches or tags', ref)} (either ref type)"
    return f"{what} of {where}"


def _bitbucket(fields: dict[str, str], prefix: str) -> str:
    _, marker, after = prefix.partition("/workspaces/")
    workspace = after.split("/", 1)[0] if marker else ""
    tenant = f"workspace {workspace}" if workspace else prefix
    repo = fields.get("repository UUID", "*")
    where = f"any repository of {tenant}" if repo.strip("*") == "" else f"repository {repo}"
    if _wild(repo) and repo.strip("*"):
        where = f"repositories matching {repo}"
    environment = fields.get("deployment environment UUID")
    if environment is None:
        what = "any step"
    else:
        what = _named("deployment environment", "deployment environments", environment)
        if environment.strip("*") == "":
            what = "any step"
    return f"{what} of {where}"


def _circleci(fields: dict[str, str]) -> str:
    org, project = fields.get("organization ID", "*"), fields.get("project ID", "*")
    if org.strip("*") == "":
        where = "any project of any organization"
    elif project.strip("*") == "":
        where = f"any project of organization {org}"
    else:
        where = _named("project", "projects", project) + f" of organization {org}"
    ref = fields.get("VCS ref")
    what = "any job" if ref is None or ref.strip("*") == "" else _ref(ref)
    return f"{what} of {where}"


def _buildkite(fields: dict[str, str]) -> str:
    org, pipeline = fields.get("organization", "*"), fields.get("pipeline", "*")
    if org.strip("*") == "":
        where = "any pipeline on Buildkite"
    elif pipeline.strip("*") == "":
        where = f"any pipeline of organization {org}"
    elif _wild(pipeline):
        where = f"pipelines matching {org}/{pipeline}"
    else:
        where = f"pipeline {org}/{pipeline}"
    ref = fields.get("ref")
    what = "any build" if ref is None or ref.strip("*") == "" else _ref(ref)
    return f"{what} of {where}"
