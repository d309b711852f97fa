"""What a source found: roles with their trust and permission documents, and the OIDC providers
of the account when the source lists them. Plain values, so sources and the report stay apart."""

from __future__ import annotations

from dataclasses import dataclass

from keyless.errors import UsageError
from keyless.limits import AUDIT_MAX_ROLES
from keyless.trust.lint_rules.templates import UNRESOLVED_PREFIX, unresolved_value

__all__ = [
    "UNRESOLVED_PREFIX",
    "Inventory",
    "PolicyDocument",
    "ProviderRecord",
    "RoleRecord",
    "SourceLocation",
    "unresolved",
]

# The placeholder for a value only a deployed stack knows is lint's (it reports such values).
unresolved = unresolved_value


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceLocation:
    file: str
    line: int | None = None

    def to_json(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line}


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyDocument:
    """One permission policy of a role: inline (its name) or managed (its ARN)."""

    name: str
    document: object


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleRecord:
    arn: str
    role_name: str
    account_id: str | None
    #: The trust policy as a JSON value (or a string when the source holds it as text).
    trust: object
    #: The role's permission policies; ``None`` when the source does not carry them.
    policies: tuple[PolicyDocument, ...] | None = None
    #: Managed policies attached to the role whose documents the source does not hold.
    unread_policies: tuple[str, ...] = ()
    source: SourceLocation | None = None
    #: Template expressions left unresolved in the trust (``Ref GitHubOrg``).
    unresolved: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderRecord:
    arn: str
    #: The issuer URL as IAM stores it (without ``https://``).
    url: str
    account_id: str | None
    client_ids: tuple[str, ...] = ()
    thumbprints: tuple[str, ...] = ()
    #: What ``--check-thumbprints`` found: the thumbprint of the certificate the issuer's key
    #: host presents now, and whether that host's certificate is publicly trusted (then AWS
    #: does not use thumbprints, docs/aws-sts-iam.md#thumbprints). ``None``: not checked.
    current_thumbprint: str | None = None
    publicly_trusted: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    roles: tuple[RoleRecord, ...] = ()
    #: ``None`` when no input lists the account's providers (templates, role dumps alone).
    providers: tuple[ProviderRecord, ...] | None = None
    #: Accounts or inputs that could not be read, one line each (the audit goes on without them).
    errors: tuple[str, ...] = ()

    def merged(self, other: Inventory) -> Inventory:
        providers = self.providers
        if other.providers is not None:
            providers = (*(providers or ()), *other.providers)
        return Inventory(
            roles=(*self.roles, *other.roles),
            providers=providers,
            errors=(*self.errors, *other.errors),
        )


def check_role_count(count: int, where: str) -> None:
    """``UsageError`` when ``where`` holds more roles than one audit reports on."""
    if count > AUDIT_MAX_ROLES:
        raise UsageError(
            f"{where} hold more than {AUDIT_MAX_ROLES:,} roles, the most one keyless audit"
            " reports on; audit them in parts"
        )
