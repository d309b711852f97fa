"""IAM's JSON shapes (roles, OIDC providers, authorization details) as inventory records: the
same from the API as from a dump of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keyless.audit.inventory import (
    Inventory,
    PolicyDocument,
    ProviderRecord,
    RoleRecord,
    SourceLocation,
)


def account_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[4] else None


def providers_of(document: Mapping[str, Any]) -> tuple[ProviderRecord, ...] | None:
    """Providers from list-open-id-connect-providers (ARNs) or get-open-id-connect-provider."""
    listed = document.get("OpenIDConnectProviderList")
    if isinstance(listed, list):
        out = []
        for item in listed:
            if isinstance(item, dict) and isinstance(item.get("Arn"), str):
                arn = item["Arn"]
                url = item.get("Url") or arn.partition(":oidc-provider/")[2]
                out.append(
                    ProviderRecord(
                        arn=arn,
                        url=str(url).removeprefix("https://"),
                        account_id=account_of(arn),
                        client_ids=tuple(item.get("ClientIDList") or ()),
                        thumbprints=tuple(item.get("ThumbprintList") or ()),
                    )
                )
        return tuple(out)
    if isinstance(document.get("Url"), str) and "ClientIDList" in document:
        return (
            ProviderRecord(
                arn=str(document.get("Arn", "")),
                url=document["Url"].removeprefix("https://"),
                account_id=account_of(str(document.get("Arn", ""))),
                client_ids=tuple(document.get("ClientIDList") or ()),
                thumbprints=tuple(document.get("ThumbprintList") or ()),
            ),
        )
    return None


def role_of(
    label: str,
    item: Mapping[str, Any],
    policies: tuple[PolicyDocument, ...] | None,
    unread: tuple[str, ...] = (),
) -> RoleRecord:
    arn = str(item.get("Arn", ""))
    return RoleRecord(
        arn=arn,
        role_name=str(item.get("RoleName", arn.rpartition("/")[2])),
        account_id=account_of(arn),
        trust=item.get("AssumeRolePolicyDocument"),
        policies=policies,
        unread_policies=unread,
        source=SourceLocation(file=label) if label else None,
    )


def roles_of_authorization_details(label: str, document: Mapping[str, Any]) -> Inventory:
    managed: dict[str, object] = {}
    for policy in document.get("Policies") or ():
        if not isinstance(policy, dict):
            continue
        for version in policy.get("PolicyVersionList") or ():
            if isinstance(version, dict) and version.get("IsDefaultVersion"):
                managed[str(policy.get("Arn"))] = version.get("Document")
    roles = []
    for item in document.get("RoleDetailList") or ():
        if not isinstance(item, dict):
            continue
        inline = tuple(
            PolicyDocument(name=str(p.get("PolicyName")), document=p.get("PolicyDocument"))
            for p in item.get("RolePolicyList") or ()
            if isinstance(p, dict)
        )
        attached = [
            str(p.get("PolicyArn"))
            for p in item.get("AttachedManagedPolicies") or ()
            if isinstance(p, dict)
        ]
        docs = tuple(PolicyDocument(name=a, document=managed[a]) for a in attached if a in managed)
        unread = tuple(a for a in attached if a not in managed)
        roles.append(role_of(label, item, (*inline, *docs), unread))
    return Inventory(roles=tuple(roles), providers=providers_of(document))
