"""Rules on policies read from a template (CloudFormation, Terraform): values only the deployed
stack knows are said to be unknown rather than judged as if they were literal text."""

from __future__ import annotations

from collections.abc import Iterator

from keyless.trust.findings import Severity
from keyless.trust.lint_rules.registry import Hit, rule
from keyless.trust.lint_rules.targets import Document

__all__ = ["UNRESOLVED_PREFIX", "unresolved_value"]

#: The text that stands for a value only a deployed stack or a Terraform apply knows: a
#: template reader (``keyless.audit``) writes ``{unresolved:Ref GitHubOrg}`` in its place.
UNRESOLVED_PREFIX = "{unresolved:"


def unresolved_value(expression: str) -> str:
    """The placeholder kept in a document where ``expression`` could not be resolved."""
    return f"{UNRESOLVED_PREFIX}{expression}}}"


def _expressions(value: str) -> list[str]:
    """The expressions of the placeholders in ``value``, in order. An expression may hold
    braces of its own (``Fn::Sub ${GitHubOrg}``): each placeholder ends at its matching brace.
    One pass over ``value``."""
    found = []
    at = value.find(UNRESOLVED_PREFIX)
    while at >= 0:
        begin = at + len(UNRESOLVED_PREFIX)
        depth, index = 1, begin
        while index < len(value) and depth:
            depth += {"{": 1, "}": -1}.get(value[index], 0)
            index += 1
        if depth:
            break
        found.append(value[begin : index - 1])
        at = value.find(UNRESOLVED_PREFIX, index)
    return found


@rule(
    id="template-value-unresolved",
    severity=Severity.INFO,
    title="A value of the trust is known only once the template is deployed",
    help="A template parameter, import or resource attribute decides what this condition or"
    " principal admits; lint judges the rest of the policy and leaves this value unjudged.",
    fix="Lint the deployed role (aws iam get-role --role-name NAME | keyless trust lint -), or"
    " write the value into the template.",
)
def template_value_unresolved(doc: Document) -> Iterator[Hit]:
    for statement in doc.policy.statements:
        principal = statement.principal.values("Federated") if statement.principal else ()
        for value in principal:
            for expression in _expressions(value):
                yield Hit(
                    statement,
                    f"the federated principal uses {expression}, known only once deployed",
                    location=f"{statement.location}.Principal",
                    element="Principal",
                )
        for condition in statement.conditions or ():
            for value in condition.string_values:
                for expression in _expressions(value):
                    yield Hit(
                        statement,
                        f"{condition.key} uses {expression}, known only once deployed: who it"
                        " admits is not judged",
                        location=condition.location or statement.location,
                        element=condition.key,
                    )
