"""Rules on the rest of the document: actions, Resource, policy variables, unknown issuers."""

from __future__ import annotations

from collections.abc import Iterator

from keyless.ci import CI_PROVIDERS
from keyless.trust.findings import Severity
from keyless.trust.lint_rules.registry import Hit, rule
from keyless.trust.lint_rules.targets import (
    Document,
    action_glob,
    allows,
    covers_web_identity,
    provider_prefixes,
)
from keyless.trust.model import Effect
from keyless.trust.web_identity import SET_SOURCE_IDENTITY, TAG_SESSION, WEB_IDENTITY_ACTION

_TAG_KEYS = ("aws:requesttag/", "aws:tagkeys", "sts:transitivetagkeys")
_KNOWN = ", ".join(p.display_name for p in CI_PROVIDERS)


def _allowed_actions(doc: Document, prefix: str, action: str) -> bool:
    for statement in doc.policy.statements:
        if statement.effect is not Effect.ALLOW or prefix not in provider_prefixes(statement):
            continue
        if statement.action is not None:
            if any(action_glob(p).match(action.lower()) for p in statement.action):
                return True
        elif not any(action_glob(p).match(action.lower()) for p in statement.not_action or ()):
            return True
    return False


@rule(
    id="tag-session-missing",
    severity=Severity.LOW,
    title="Session tags without sts:TagSession",
    help="A token with session tags needs sts:TagSession allowed too, or the call fails.",
    fix=f'Add "{TAG_SESSION}" to the Action list of this statement.',
)
def tag_session_missing(doc: Document) -> Iterator[Hit]:
    seen: set[str] = set()
    for target in allows(doc):
        uses_tags = any(
            c.key.lower().startswith(_TAG_KEYS) for c in target.statement.conditions or ()
        )
        if not uses_tags or target.prefix in seen:
            continue
        seen.add(target.prefix)
        if not _allowed_actions(doc, target.prefix, TAG_SESSION):
            yield Hit(
                target,
                f"conditions use session tags but no statement allows {TAG_SESSION}: a token"
                " carrying tags is refused",
                location=f"{target.statement.location}.Action",
                element="Action",
            )


@rule(
    id="allow-not-action",
    severity=Severity.LOW,
    title="Allow with NotAction",
    help="NotAction grants every action not listed, more than web-identity assumption.",
    fix=f'Use "Action": "{WEB_IDENTITY_ACTION}" (plus sts:TagSession if needed).',
)
def allow_not_action(doc: Document) -> Iterator[Hit]:
    for target in allows(doc):
        if target.statement.not_action is not None:
            yield Hit(
                target,
                "Allow with NotAction grants every STS action it does not list to this"
                f" provider's tokens (including {SET_SOURCE_IDENTITY} and {TAG_SESSION})",
                location=f"{target.statement.location}.NotAction",
                element="NotAction",
            )


@rule(
    id="action-mismatch",
    severity=Severity.LOW,
    title="OIDC principal without sts:AssumeRoleWithWebIdentity",
    help="An OIDC provider can only use AssumeRoleWithWebIdentity (Access Analyzer: mismatched"
    " action for principal).",
    fix=f'Use "Action": "{WEB_IDENTITY_ACTION}".',
)
def action_mismatch(doc: Document) -> Iterator[Hit]:
    for statement in doc.policy.statements:
        if statement.effect is not Effect.ALLOW or not provider_prefixes(statement):
            continue
        if not covers_web_identity(statement):
            yield Hit(
                statement,
                f"an OIDC provider is trusted but {WEB_IDENTITY_ACTION} is not allowed: no"
                " token can assume the role through this statement",
                location=f"{statement.location}.Action",
                element="Action",
            )


@rule(
    id="resource-in-trust-policy",
    severity=Severity.LOW,
    title="Resource in a trust policy",
    help="IAM refuses Resource and NotResource in role trust policies.",
    fix="Remove Resource (or NotResource): the role itself is the resource of a trust policy.",
)
def resource_in_trust_policy(doc: Document) -> Iterator[Hit]:
    for statement in doc.policy.statements:
        if statement.resource is not None or statement.not_resource is not None:
            name = "Resource" if statement.resource is not None else "NotResource"
            yield Hit(
                statement,
                f"{name} in a role trust policy: IAM refuses the document",
                f"Remove {name}: the role itself is the resource of a trust policy.",
                location=f"{statement.location}.{name}",
                element=name,
            )


@rule(
    id="variables-ignored",
    severity=Severity.LOW,
    title="Policy variables without Version 2012-10-17",
    help="Without Version 2012-10-17, ${...} is literal text and never matches.",
    fix='Add "Version": "2012-10-17" at the top of the policy.',
)
def variables_ignored(doc: Document) -> Iterator[Hit]:
    if doc.policy.variables_enabled:
        return
    for statement in doc.policy.statements:
        for condition in statement.conditions or ():
            if any("${" in value for value in condition.string_values):
                yield Hit(
                    statement,
                    f"`{condition.key}` uses a policy variable, but without"
                    ' "Version": "2012-10-17" IAM reads `${...}` as literal text',
                    location=condition.location,
                    element=condition.key,
                )


@rule(
    id="unknown-issuer",
    severity=Severity.INFO,
    title="Issuer keyless does not know",
    help="Subject-shape checks need the CI's subject grammar; only generic checks apply.",
    fix="Check the `sub` pattern against the issuer's documentation by hand.",
)
def unknown_issuer(doc: Document) -> Iterator[Hit]:
    seen: set[str] = set()
    for target in allows(doc):
        if target.provider is not None or target.prefix in seen:
            continue
        seen.add(target.prefix)
        yield Hit(
            target,
            f"{target.prefix} is not an issuer keyless knows ({_KNOWN}): only the generic"
            " checks apply (a self-hosted issuer: name its CI with --ci NAME)",
            location=f"{target.statement.location}.Principal",
            element="Principal",
        )
