"""Rules on who a statement names as principal."""

from __future__ import annotations

from collections.abc import Iterator

from keyless.trust.findings import Severity
from keyless.trust.lint_rules.registry import Hit, rule
from keyless.trust.lint_rules.targets import Document
from keyless.trust.model import Effect


@rule(
    id="principal-wildcard",
    severity=Severity.CRITICAL,
    title="Principal is *",
    help="A wildcard principal trusts whoever AWS admits under it (Access Analyzer: unsupported"
    " wildcard in principal).",
    fix='Name the OIDC provider: "Principal": {"Federated": "arn:aws:iam::ACCOUNT:'
    'oidc-provider/ISSUER"}.',
)
def principal_wildcard(doc: Document) -> Iterator[Hit]:
    for statement in doc.policy.statements:
        principal = statement.principal
        if statement.effect is not Effect.ALLOW or principal is None:
            continue
        if principal.wildcard or any("*" in v for _, values in principal.entries for v in values):
            yield Hit(
                statement,
                'the principal is "*": whoever AWS admits under it can assume the role',
                location=f"{statement.location}.Principal",
                element="Principal",
            )


@rule(
    id="not-principal",
    severity=Severity.HIGH,
    title="NotPrincipal in a trust policy",
    help="IAM refuses NotPrincipal in role trust policies; with Allow it trusts all but a few.",
    fix="Replace NotPrincipal with a Principal naming the one OIDC provider.",
)
def not_principal(doc: Document) -> Iterator[Hit]:
    for statement in doc.policy.statements:
        if statement.not_principal is not None:
            yield Hit(
                statement,
                "NotPrincipal in a role trust policy: IAM refuses it, and with Allow it would"
                " trust everyone not listed",
                location=f"{statement.location}.NotPrincipal",
                element="NotPrincipal",
            )
