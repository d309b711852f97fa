"""The audit report: per OIDC-trusting role its provider, lint findings, who can assume it and
its blast radius; providers no role uses; roles whose provider does not exist. JSON schema
version 1 is documented in docs/audit-schema.json."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from keyless.audit.blast import BlastRadius, blast_radius
from keyless.audit.inventory import Inventory, ProviderRecord, RoleRecord, SourceLocation
from keyless.audit.who import Identity, who_can_assume
from keyless.ci import provider_for_issuer
from keyless.errors import PolicyError, UsageError
from keyless.jsonlimits import loads_bounded
from keyless.limits import (
    AUDIT_ANALYSED_CACHE_MAX_ENTRIES,
)
from keyless.trust.lint import Severity, lint
from keyless.trust.lint_rules.templates import template_value_unresolved
from keyless.trust.model import Effect, Policy, parse_policy
from keyless.trust.operators import literal_pattern, test_condition

__all__ = [
    "AUDIT_RULES",
    "SCHEMA_VERSION",
    "AuditReport",
    "AuditRule",
    "ProviderView",
    "ReportFinding",
    "RoleReport",
    "baseline_keys",
    "build_report",
    "new_since",
]

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRule:
    """A finding only the audit makes (it needs the account, not just the policy), declared
    like a lint rule (``keyless.trust.lint_rules``): id, severity, title, help and fix."""

    id: str
    severity: Severity
    title: str
    help: str
    fix: str

    def finding(self, message: str, fix: str | None = None) -> ReportFinding:
        return ReportFinding(
            rule=self.id, severity=self.severity, message=message, fix=fix or self.fix
        )


PROVIDER_MISSING = AuditRule(
    id="provider-missing",
    severity=Severity.MEDIUM,
    title="The role trusts an OIDC provider that does not exist",
    help="Nobody can assume the role today, and whoever registers that provider later gets"
    " what the trust admits.",
    fix="Delete the role, or register the provider on purpose and review the trust first.",
)
TRUST_UNREADABLE = AuditRule(
    id="trust-unreadable",
    severity=Severity.MEDIUM,
    title="The trust policy is not a valid policy document",
    help="IAM refuses such a document; what the input says the role trusts cannot be checked.",
    fix="Correct the document; IAM refuses it as written.",
)
TRUST_UNRESOLVED = AuditRule(
    id="trust-unresolved",
    severity=Severity.INFO,
    title="The trust uses a value only the deployed stack resolves",
    help="A template parameter, import or resource attribute decides who the role admits.",
    fix="Audit the deployed account (keyless audit with credentials) to see the resolved value.",
)
AUDIENCE_UNREGISTERED = AuditRule(
    id="audience-unregistered",
    severity=Severity.LOW,
    title="The trust requires an audience the provider does not register",
    help="STS accepts a token only when its aud is one of the provider's client IDs"
    " (docs/aws-sts-iam.md#sts-errors), so a statement whose aud condition admits none of them"
    " never lets anyone in: the role is broken, or its trust was written for another provider.",
    fix="Add the audience to the provider's client IDs (aws iam"
    " add-client-id-to-open-id-connect-provider), or correct the aud condition.",
)
THUMBPRINT_STALE = AuditRule(
    id="thumbprint-stale",
    severity=Severity.LOW,
    title="The provider's thumbprint is not the certificate its issuer presents",
    help="For an issuer whose certificate is not publicly trusted AWS checks the key host's"
    " certificate against the provider's thumbprints (docs/aws-sts-iam.md#thumbprints); a"
    " stale one makes every token fail.",
    fix="Update the provider's thumbprint (keyless provision, or aws iam"
    " update-open-id-connect-provider-thumbprint).",
)
#: Every rule the audit declares besides lint's, for SARIF's catalogue.
AUDIT_RULES: tuple[AuditRule, ...] = (
    PROVIDER_MISSING,
    AUDIENCE_UNREGISTERED,
    THUMBPRINT_STALE,
    TRUST_UNREADABLE,
    TRUST_UNRESOLVED,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportFinding:
    rule: str
    severity: Severity
    message: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderView:
    url: str
    arn: str | None
    account_id: str | None
    #: ``None``: the input does not list the account's providers.
    exists: bool | None
    client_ids: tuple[str, ...] = ()
    #: ``False`` where AWS does not use the thumbprint (issuers of the hosted CIs, whose
    #: certificates chain to CAs AWS trusts); ``None`` where keyless did not check it.
    thumbprint_stale: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "arn": self.arn,
            "account_id": self.account_id,
            "exists": self.exists,
            "client_ids": list(self.client_ids),
            "thumbprint_stale": self.thumbprint_stale,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleReport:
    arn: str
    role_name: str
    account_id: str | None
    providers: tuple[ProviderView, ...]
    findings: tuple[ReportFinding, ...]
    who_can_assume: tuple[Identity, ...]
    blast_radius: BlastRadius
    source: SourceLocation | None
    trust: object

    @property
    def severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)

    @property
    def rank(self) -> int:
        worst = self.severity
        return -1 if worst is None else worst.rank

    def to_json(self) -> dict[str, Any]:
        worst = self.severity
        return {
            "arn": self.arn,
            "role_name": self.role_name,
            "account_id": self.account_id,
            "severity": worst.value if worst else None,
            "provider": self.providers[0].to_json() if self.providers else None,
            "providers": [p.to_json() for p in self.providers],
            "findings": [f.to_json() for f in self.findings],
            "who_can_assume": [i.to_json() for i in self.who_can_assume],
            "blast_radius": self.blast_radius.to_json(),
            "source": self.source.to_json() if self.source else None,
            "trust": self.trust,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditReport:
    roles: tuple[RoleReport, ...]
    orphan_providers: tuple[ProviderView, ...]
    roles_with_missing_provider: tuple[str, ...]
    #: Roles read in all (OIDC or not).
    roles_scanned: int
    errors: tuple[str, ...] = ()
    #: Set when the report holds only what is new since a baseline.
    baseline: str | None = None

    def worst(self) -> Severity | None:
        return max(
            (r.severity for r in self.roles if r.severity is not None),
            key=lambda s: s.rank,
            default=None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "roles_scanned": self.roles_scanned,
            "baseline": self.baseline,
            "roles": [r.to_json() for r in self.roles],
            "orphan_providers": [p.to_json() for p in self.orphan_providers],
            "roles_with_missing_provider": list(self.roles_with_missing_provider),
            "errors": list(self.errors),
        }


# --- building -----------------------------------------------------------------------------------


def trust_document(raw: object) -> object:
    """The trust policy as a JSON value: IAM's API returns it URL-encoded, the CLI decoded,
    Terraform as a JSON string."""
    if isinstance(raw, str):
        text = unquote(raw) if raw.lstrip().startswith("%7B") else raw
        try:
            return loads_bounded(text)
        except ValueError:  # JsonLimitError included: the parser reports it as unreadable
            return text
    return raw


def _mentions_oidc(document: object) -> bool:
    """A cheap look before parsing: most roles of an account trust services, not OIDC
    providers. True when a statement's Federated principal names an ``oidc-provider/``, or the
    document has a shape too odd to judge here (the parser then reports it)."""
    if isinstance(document, str):
        return ":oidc-provider/" in document
    if not isinstance(document, dict):
        return False
    statements = document.get("Statement")
    for statement in statements if isinstance(statements, list) else [statements]:
        principal = statement.get("Principal") if isinstance(statement, dict) else None
        federated = principal.get("Federated") if isinstance(principal, dict) else None
        values = federated if isinstance(federated, list) else [federated]
        if any(isinstance(v, str) and ":oidc-provider/" in v for v in values):
            return True
    return False


def _provider_key(account: str | None, url: str) -> tuple[str, str]:
    return (account or "", url.lower().removeprefix("https://").rstrip("/"))


def _account_of_arn(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[4].isdigit() else None


def _public_issuer(url: str) -> bool:
    provider = provider_for_issuer(f"https://{url}")
    return provider is not None and bool(provider.shared_issuer)


def build_report(inventory: Inventory) -> AuditReport:
    providers = inventory.providers
    known: dict[tuple[str, str], ProviderRecord] = {}
    for record in providers or ():
        known[_provider_key(record.account_id, record.url)] = record
    used: set[tuple[str, str]] = set()
    roles: list[RoleReport] = []
    missing: list[str] = []
    for role in inventory.roles:
        report = _role_report(role, known, providers is not None, used)
        if report is None:
            continue
        roles.append(report)
        if any(p.exists is False for p in report.providers):
            missing.append(report.arn)
    orphans = tuple(
        _view(record.url, record, record.account_id, exists=True)
        for key, record in known.items()
        if key not in used
    )
    roles.sort(key=lambda r: (-r.rank, r.account_id or "", r.role_name))
    return AuditReport(
        roles=tuple(roles),
        orphan_providers=orphans,
        roles_with_missing_provider=tuple(missing),
        roles_scanned=len(inventory.roles),
        errors=inventory.errors,
    )


def _view(
    url: str, record: ProviderRecord | None, account: str | None, *, exists: bool | None
) -> ProviderView:
    return ProviderView(
        url=url,
        arn=record.arn if record else None,
        account_id=account,
        exists=exists,
        client_ids=record.client_ids if record else (),
        thumbprint_stale=_thumbprint_stale(url, record),
    )


def _thumbprint_stale(url: str, record: ProviderRecord | None) -> bool | None:
    """Whether IAM holds a thumbprint the issuer no longer presents, where AWS uses it: not for
    the hosted CIs' issuers nor any publicly trusted host (docs/aws-sts-iam.md#thumbprints)."""
    if record is not None and record.publicly_trusted:
        return False
    if record is None or record.current_thumbprint is None:
        # Unchecked: the hosted CIs' issuers are publicly trusted; others are unknown.
        return False if _public_issuer(url) else None
    return record.current_thumbprint.lower() not in {t.lower() for t in record.thumbprints}


def _role_report(
    role: RoleRecord,
    known: Mapping[tuple[str, str], ProviderRecord],
    providers_listed: bool,
    used: set[tuple[str, str]],
) -> RoleReport | None:
    document = trust_document(role.trust)
    if not _mentions_oidc(document):
        return None
    findings: list[ReportFinding] = []
    policy: Policy | None = None
    identities: tuple[Identity, ...] = ()
    try:
        policy, linted, identities = _analysed(document)
        findings.extend(linted)
    except PolicyError as exc:
        findings.append(
            TRUST_UNREADABLE.finding(
                f"the trust policy is not a valid policy document: {exc.message}"
            )
        )
    views: list[ProviderView] = []
    if policy is not None:
        seen: set[str] = set()
        for statement in policy.statements:
            for federated in statement.federated:
                _, marker, url = federated.partition(":oidc-provider/")
                if not marker or url in seen:
                    continue
                seen.add(url)
                account = _account_of_arn(federated) or role.account_id
                key = _provider_key(account, url)
                record = known.get(key)
                if record is not None:
                    used.add(key)
                exists = (record is not None) if providers_listed else None
                view = _view(url, record, account, exists=exists)
                views.append(view)
                if view.thumbprint_stale and record is not None:
                    findings.append(
                        THUMBPRINT_STALE.finding(
                            f"IAM holds the thumbprints {', '.join(record.thumbprints) or 'none'}"
                            f" for {url}, whose key host now presents"
                            f" {record.current_thumbprint}: STS cannot fetch its keys and"
                            " refuses every token"
                        )
                    )
                if exists is False:
                    findings.append(_missing_provider(url, account))
                if record is not None and record.client_ids:
                    findings.extend(_unregistered_audiences(policy, url, record.client_ids))
    for expression in role.unresolved:
        findings.append(
            TRUST_UNRESOLVED.finding(
                f"the trust uses {expression}, which only the deployed stack resolves:"
                " who it admits there is unknown"
            )
        )
    findings.sort(key=lambda f: -f.severity.rank)
    return RoleReport(
        arn=role.arn,
        role_name=role.role_name,
        account_id=role.account_id,
        providers=tuple(views),
        findings=tuple(findings),
        who_can_assume=identities,
        blast_radius=blast_radius(role.policies, role.unread_policies),
        source=role.source,
        trust=document,
    )


_Analysis = tuple[Policy, tuple[ReportFinding, ...], tuple[Identity, ...]]


def _analyse(policy: Policy) -> _Analysis:
    # An unresolved template value is reported once per expression by TRUST_UNRESOLVED, which
    # also covers values outside the trust document (a plan's "known after apply").
    findings = tuple(
        ReportFinding(rule=f.rule, severity=f.severity, message=f.message, fix=f.fix)
        for f in lint(policy)
        if f.rule != template_value_unresolved.id
    )
    return policy, findings, who_can_assume(policy)


@functools.lru_cache(maxsize=AUDIT_ANALYSED_CACHE_MAX_ENTRIES)
def _analysed_text(text: str) -> _Analysis:
    return _analyse(parse_policy(json.loads(text)))


def _analysed(document: object) -> _Analysis:
    """The parsed policy, its findings and who can assume it; ``PolicyError`` if unreadable."""
    try:
        text = json.dumps(document, sort_keys=True)
    except (TypeError, ValueError):
        return _analyse(parse_policy(document))
    return _analysed_text(text)


def _unregistered_audiences(
    policy: Policy, url: str, client_ids: Sequence[str]
) -> Iterator[ReportFinding]:
    """A finding per Allow statement for ``url`` whose aud condition holds for none of the
    provider's client IDs, tested by the evaluator's own operators."""
    key = f"{url}:aud".lower()
    for statement in policy.statements:
        if statement.effect is not Effect.ALLOW or not any(
            federated.partition(":oidc-provider/")[2] == url for federated in statement.federated
        ):
            continue
        for condition in statement.conditions or ():
            values = condition.string_values
            if condition.key.lower() != key or any("${" in value for value in values):
                continue
            patterns = [literal_pattern(value) for value in values]
            if all(
                test_condition(condition.operator, patterns, cid) is False for cid in client_ids
            ):
                yield AUDIENCE_UNREGISTERED.finding(
                    f"{statement.label}: {condition.operator.name} {condition.key}"
                    f" {', '.join(values)} admits none of the client IDs of {url}"
                    f" ({', '.join(client_ids)}): STS refuses every token for this statement"
                )


def _missing_provider(url: str, account: str | None) -> ReportFinding:
    where = f"account {account}" if account else "the account"
    return PROVIDER_MISSING.finding(
        f"trusts the OIDC provider {url}, which does not exist in {where}: the role"
        " cannot be assumed today, and whoever registers that provider later gets what this"
        " trust admits",
        fix=f"Delete the role, or register {url} on purpose and review the trust first.",
    )


# --- baselines --------------------------------------------------------------------------------


def _finding_key(arn: str, finding: Mapping[str, Any] | ReportFinding) -> tuple[str, str, str]:
    if isinstance(finding, ReportFinding):
        return (arn, finding.rule, finding.message)
    return (arn, str(finding.get("rule")), str(finding.get("message")))


def baseline_keys(document: object, source: str) -> set[tuple[str, str, str]]:
    """The findings of a previous ``--format json`` run, as keys that identify them."""
    if not isinstance(document, dict) or not isinstance(document.get("roles"), list):
        raise UsageError(
            f"baseline {source} is not a keyless audit JSON report (no `roles` list)",
            remedy="Make one with: keyless audit ... --format json --output baseline.json",
        )
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UsageError(
            f"baseline {source} has schema_version {version!r}; this keyless reads"
            f" {SCHEMA_VERSION}",
            remedy="Re-create the baseline with this version of keyless.",
        )
    keys: set[tuple[str, str, str]] = set()
    for role in document["roles"]:
        if not isinstance(role, dict):
            continue
        arn = str(role.get("arn"))
        for finding in role.get("findings") or ():
            if isinstance(finding, dict):
                keys.add(_finding_key(arn, finding))
    return keys


def new_since(report: AuditReport, keys: set[tuple[str, str, str]], source: str) -> AuditReport:
    """Only the findings not in the baseline, and only roles that have some."""
    roles = []
    for role in report.roles:
        fresh = tuple(f for f in role.findings if _finding_key(role.arn, f) not in keys)
        if fresh:
            roles.append(replace(role, findings=fresh))
    missing = {r.arn for r in roles}
    return replace(
        report,
        roles=tuple(roles),
        roles_with_missing_provider=tuple(
            a for a in report.roles_with_missing_provider if a in missing
        ),
        baseline=source,
    )


def counts(roles: Iterable[RoleReport]) -> dict[str, int]:
    out = {s.value: 0 for s in reversed(Severity)}
    for role in roles:
        worst = role.severity
        if worst is not None:
            out[worst.value] += 1
    return out


def roles_at(roles: Sequence[RoleReport], severity: Severity) -> list[RoleReport]:
    return [r for r in roles if r.rank >= severity.rank]
