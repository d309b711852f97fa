"""Roles of a `terraform show -json` plan: the planned values, else the resource changes, of its
``aws_iam_role`` resources."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from keyless.audit.iam_json import account_of
from keyless.audit.inventory import Inventory, PolicyDocument, RoleRecord, SourceLocation


def roles_of_plan(label: str, document: Mapping[str, Any]) -> Inventory:
    roles = []
    for address, values in _plan_resources(document):
        policy = values.get("assume_role_policy")
        name = values.get("name") or address
        inline = tuple(
            PolicyDocument(name=str(p.get("name")), document=p.get("policy"))
            for p in values.get("inline_policy") or ()
            if isinstance(p, dict) and p.get("policy")
        )
        arn = values.get("arn") or f"terraform:{label}#{address}"
        missing = (
            ()
            if isinstance(policy, str) and policy
            else ("assume_role_policy (known after apply)",)
        )
        roles.append(
            RoleRecord(
                arn=str(arn),
                role_name=str(name),
                account_id=account_of(str(arn)),
                trust=policy if policy else "{}",
                policies=inline,
                unread_policies=tuple(values.get("managed_policy_arns") or ()),
                source=SourceLocation(file=label),
                unresolved=missing,
            )
        )
    return Inventory(roles=tuple(roles))


def _plan_resources(document: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    def walk(module: object) -> Iterator[tuple[str, Mapping[str, Any]]]:
        if not isinstance(module, dict):
            return
        for resource in module.get("resources") or ():
            if isinstance(resource, dict) and resource.get("type") == "aws_iam_role":
                values = resource.get("values")
                if isinstance(values, dict):
                    yield str(resource.get("address")), values
        for child in module.get("child_modules") or ():
            yield from walk(child)

    planned = document.get("planned_values")
    if isinstance(planned, dict):
        yield from walk(planned.get("root_module"))
        return
    for change in document.get("resource_changes") or ():
        if isinstance(change, dict) and change.get("type") == "aws_iam_role":
            after = (change.get("change") or {}).get("after")
            if isinstance(after, dict):
                yield str(change.get("address")), after
