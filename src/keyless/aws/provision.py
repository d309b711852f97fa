"""The AWS side of a CI trust: an IAM OIDC provider and a role, planned. ``plan`` is pure (desired
state against what IAM has: create / update / unchanged per resource, with the exact write
calls); ``keyless.aws.provision_apply`` reads the account and makes those calls and nothing else,
so a second run makes no write call at all.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keyless.aws.provision_state import (
    Current,
    Desired,
    ProviderState,
    RoleState,
)
from keyless.aws.widening import Widening, find_widening
from keyless.ci.local_issuers import LOCAL_ISSUERS_NONE, LocalIssuers
from keyless.compat import StrEnum
from keyless.errors import PolicyError
from keyless.limits import (
    IAM_OIDC_MAX_THUMBPRINTS,
    IAM_ROLE_DEFAULT_SESSION_SECONDS,
)
from keyless.trust.lint import Finding, LintContext, Severity, lint
from keyless.trust.model import Policy, dumps_policy, parse_policy, to_document
from keyless.trust.permissions import writes

if TYPE_CHECKING:
    pass

__all__ = [
    "Action",
    "Call",
    "Change",
    "Item",
    "Plan",
    "plan",
]


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"


class Item(StrEnum):
    """The resources and settings a plan compares, in the order ``apply`` writes them."""

    PROVIDER = "oidc-provider"
    CLIENT_IDS = "client-ids"
    THUMBPRINTS = "thumbprints"
    ROLE = "role"
    TRUST = "trust-policy"
    MAX_SESSION = "max-session-duration"
    BOUNDARY = "permissions-boundary"
    TAGS = "tags"
    PERMISSIONS = "permissions"


# --- the plan ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One IAM write call: the boto3 method, its parameters, and what it does in words."""

    method: str
    params: Mapping[str, Any] = field(repr=False)
    describe: str

    @property
    def operation(self) -> str:
        """IAM's name for it: ``iam:CreateRole``."""
        return "iam:" + "".join(part.title() for part in self.method.split("_")).replace(
            "OpenIdConnect", "OpenIDConnect"
        ).replace("ClientId", "ClientID")


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    item: Item
    action: Action
    summary: str
    #: A unified diff (current -> planned) for policy documents, one line per entry.
    diff: tuple[str, ...] = ()
    calls: tuple[Call, ...] = ()
    #: For the trust policy: a request the planned trust admits and the current one refuses.
    widening: Widening | None = None
    #: For the trust policy: the current document cannot be read, so widening cannot be ruled out.
    unreadable: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "item": self.item.value,
            "action": self.action.value,
            "summary": self.summary,
            "diff": list(self.diff),
            "calls": [call.operation for call in self.calls],
            "widening": self.widening.to_json() if self.widening else None,
            "unreadable": self.unreadable,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """Why ``apply`` will not run this plan, and the flag that would let it."""

    reason: str
    flag: str

    def to_json(self) -> dict[str, str]:
        return {"reason": self.reason, "flag": self.flag}


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    desired: Desired
    role_arn: str
    changes: tuple[Change, ...]
    #: Lint findings of the planned trust policy.
    findings: tuple[Finding, ...]
    #: Things keyless does not manage but that matter (other inline or attached policies).
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return any(change.action is not Action.UNCHANGED for change in self.changes)

    @property
    def calls(self) -> tuple[Call, ...]:
        return tuple(call for change in self.changes for call in change.calls)

    def dry_run_summary(self) -> str:
        if not self.calls:
            return "Dry run: nothing to change, nothing was written."
        planned = changes_and_calls(self.changes, self.calls)
        return f"Dry run: would make {planned}; nothing was written."

    def change(self, item: Item) -> Change:
        return next(change for change in self.changes if change.item is item)

    def refusals(self, *, force: bool = False, allow_risky: bool = False) -> tuple[Refusal, ...]:
        found: list[Refusal] = []
        risky = [f for f in self.findings if f.severity.rank >= Severity.HIGH.rank]
        if risky and not allow_risky:
            worst = risky[0]
            found.append(
                Refusal(
                    reason=f"the planned trust policy has {len(risky)} finding(s) of high"
                    f" severity or above, first: [{worst.severity.value}] {worst.rule}:"
                    f" {worst.message}",
                    flag="--allow-risky",
                )
            )
        trust = self.change(Item.TRUST)
        if not force and trust.widening is not None:
            found.append(
                Refusal(
                    reason=f"the new trust policy of role {self.desired.role_name} widens who can"
                    f" assume it: it admits {trust.widening.describe()}, which the current"
                    " trust refuses",
                    flag="--force",
                )
            )
        if not force and trust.unreadable is not None:
            found.append(
                Refusal(
                    reason=f"the current trust policy of role {self.desired.role_name} cannot be"
                    f" compared ({trust.unreadable}), so a widening cannot be ruled out",
                    flag="--force",
                )
            )
        return tuple(found)

    def to_json(self, *, force: bool = False, allow_risky: bool = False) -> dict[str, Any]:
        return {
            "account_id": self.desired.account_id,
            "issuer": self.desired.issuer,
            "provider_arn": self.desired.provider_arn,
            "role_name": self.desired.role_name,
            "role_arn": self.role_arn,
            "changed": self.changed,
            "changes": [change.to_json() for change in self.changes],
            "findings": [finding.to_json() for finding in self.findings],
            "refusals": [
                refusal.to_json() for refusal in self.refusals(force=force, allow_risky=allow_risky)
            ],
            "notes": list(self.notes),
        }


def _compact(policy: Policy) -> str:
    # IAM stores the text it is given; compact JSON keeps within its size quotas, which do not
    # count whitespace anyway.
    return json.dumps(to_document(policy), separators=(",", ":"), ensure_ascii=False)


def _normalized(document: Any) -> tuple[Policy | None, str | None]:
    """A document IAM returned, parsed; or why it cannot be."""
    try:
        return parse_policy(document), None
    except PolicyError as exc:
        return None, exc.message


def _diff(current: Any, planned: Policy) -> tuple[str, ...]:
    parsed, _ = _normalized(current)
    before = (
        dumps_policy(parsed)
        if parsed is not None
        else json.dumps(current, indent=2, sort_keys=True) + "\n"
    )
    lines = difflib.unified_diff(
        before.splitlines(), dumps_policy(planned).splitlines(), "current", "planned", lineterm=""
    )
    return tuple(lines)


def _created(planned: Policy) -> tuple[str, ...]:
    """A new policy document as a diff: every line added, so a plan shows what it writes."""
    return tuple(f"+{line}" for line in dumps_policy(planned).splitlines())


def _same_policy(current: Any, planned: Policy) -> bool:
    parsed, _ = _normalized(current)
    return parsed is not None and to_document(parsed) == to_document(planned)


def plan(desired: Desired, current: Current, *, local: LocalIssuers = LOCAL_ISSUERS_NONE) -> Plan:
    """Compare ``desired`` with ``current``; pure: the same inputs give the same plan. ``local``
    names the local stack's issuers, so that its trust is linted as its CI's."""
    changes = [*_provider_changes(desired, current.provider), *_role_changes(desired, current.role)]
    notes: list[str] = []
    if current.role is not None:
        others = [name for name in current.role.inline_policies if name != desired.policy_name]
        if others:
            notes.append(
                f"role {desired.role_name} also has inline policies keyless does not manage:"
                f" {', '.join(others)}; they grant more than the permissions planned here"
            )
        if current.role.attached_policies:
            notes.append(
                f"role {desired.role_name} also has attached managed policies:"
                f" {', '.join(current.role.attached_policies)}"
            )
        extra_tags = dict(current.role.tags).keys() - dict(desired.tags).keys()
        if extra_tags:
            notes.append(f"tags kept as they are: {', '.join(sorted(extra_tags))}")
    if current.provider is not None:
        extra = [cid for cid in current.provider.client_ids if cid not in desired.client_ids]
        if extra:
            notes.append(
                "the OIDC provider also accepts the audiences "
                + ", ".join(extra)
                + "; they are kept (other roles may use them)"
            )
    return Plan(
        desired=desired,
        role_arn=current.role.arn if current.role else desired.role_arn,
        changes=tuple(changes),
        findings=tuple(lint(desired.trust, context=_lint_context(desired, current, local))),
        notes=tuple(notes),
    )


def _lint_context(desired: Desired, current: Current, local: LocalIssuers) -> LintContext:
    # Provisioning knows what lint alone cannot: whether the role's permissions write, the
    # provider's client IDs and the CI (docs/lint-severity.md#what-lint-knows).
    kept = current.provider.client_ids if current.provider is not None else ()
    return LintContext(
        writes=writes(to_document(desired.permissions)),
        client_ids=tuple(dict.fromkeys((*desired.client_ids, *kept))),
        ci=desired.ci,
        local=local,
    )


def _provider_changes(desired: Desired, current: ProviderState | None) -> list[Change]:
    if current is None:
        return _new_provider(desired)
    return [
        Change(
            item=Item.PROVIDER,
            action=Action.UNCHANGED,
            summary=f"OIDC provider {desired.provider_arn}",
        ),
        _client_ids_change(desired, current),
        _thumbprints_change(desired, current),
    ]


def _new_provider(desired: Desired) -> list[Change]:
    params: dict[str, Any] = {"Url": desired.issuer, "ClientIDList": list(desired.client_ids)}
    if desired.thumbprints:
        params["ThumbprintList"] = list(desired.thumbprints)
    create = Call(
        method="create_open_id_connect_provider",
        params=params,
        describe=f"create the OIDC provider {desired.provider_arn}",
    )
    return [
        Change(
            item=Item.PROVIDER,
            action=Action.CREATE,
            summary=f"OIDC provider for {desired.issuer}",
            calls=(create,),
        ),
        Change(
            item=Item.CLIENT_IDS,
            action=Action.CREATE,
            summary="client IDs " + ", ".join(desired.client_ids),
        ),
        Change(
            item=Item.THUMBPRINTS,
            action=Action.CREATE,
            summary="thumbprints " + (", ".join(desired.thumbprints) or "(none)"),
        ),
    ]


def _client_ids_change(desired: Desired, current: ProviderState) -> Change:
    missing = [cid for cid in desired.client_ids if cid not in current.client_ids]
    if not missing:
        return Change(
            item=Item.CLIENT_IDS,
            action=Action.UNCHANGED,
            summary="client IDs " + ", ".join(desired.client_ids),
        )
    return Change(
        item=Item.CLIENT_IDS,
        action=Action.UPDATE,
        summary="add client IDs " + ", ".join(missing),
        calls=tuple(
            Call(
                method="add_client_id_to_open_id_connect_provider",
                params={"OpenIDConnectProviderArn": current.arn, "ClientID": cid},
                describe=f"add the client ID {cid} to the OIDC provider {current.arn}",
            )
            for cid in missing
        ),
    )


def _thumbprints_change(desired: Desired, current: ProviderState) -> Change:
    new_prints = [tp for tp in desired.thumbprints if tp not in current.thumbprints]
    if not new_prints:
        return Change(
            item=Item.THUMBPRINTS,
            action=Action.UNCHANGED,
            summary="thumbprints " + (", ".join(current.thumbprints) or "(none)"),
        )
    # Added, never replaced: a thumbprint in use for another reason keeps working. IAM keeps
    # five at most, so the oldest are the ones that give way.
    merged = [*new_prints, *current.thumbprints][:IAM_OIDC_MAX_THUMBPRINTS]
    return Change(
        item=Item.THUMBPRINTS,
        action=Action.UPDATE,
        summary="add thumbprints " + ", ".join(new_prints),
        calls=(
            Call(
                method="update_open_id_connect_provider_thumbprint",
                params={"OpenIDConnectProviderArn": current.arn, "ThumbprintList": merged},
                describe=f"set the thumbprints of {current.arn} to {', '.join(merged)}",
            ),
        ),
    )


def _role_changes(desired: Desired, current: RoleState | None) -> list[Change]:
    if current is None:
        return _new_role(desired)
    name = desired.role_name
    if current.permissions is not None and _same_policy(current.permissions, desired.permissions):
        permissions = Change(
            item=Item.PERMISSIONS,
            action=Action.UNCHANGED,
            summary=f"inline policy {desired.policy_name} of {name}",
        )
    else:
        permissions = _put_permissions(desired, current.permissions)
    return [
        Change(item=Item.ROLE, action=Action.UNCHANGED, summary=f"role {current.arn}"),
        _trust_change(desired, current),
        _max_session_change(desired, current),
        _boundary_change(desired, current),
        _tags_change(desired, current),
        permissions,
    ]


def _trust_change(desired: Desired, current: RoleState) -> Change:
    name = desired.role_name
    if _same_policy(current.trust, desired.trust):
        return Change(item=Item.TRUST, action=Action.UNCHANGED, summary=f"trust policy of {name}")
    parsed, problem = _normalized(current.trust)
    widening = find_widening(parsed, desired.trust) if parsed is not None else None
    return Change(
        item=Item.TRUST,
        action=Action.UPDATE,
        summary=f"trust policy of {name}"
        + (" (widens who can assume it)" if widening or problem else ""),
        diff=_diff(current.trust, desired.trust),
        calls=(
            Call(
                method="update_assume_role_policy",
                params={"RoleName": name, "PolicyDocument": _compact(desired.trust)},
                describe=f"replace the trust policy of role {name}",
            ),
        ),
        widening=widening,
        unreadable=problem,
    )


def _max_session_change(desired: Desired, current: RoleState) -> Change:
    name, wanted = desired.role_name, desired.max_session_duration
    if wanted is None or wanted == current.max_session_duration:
        return Change(
            item=Item.MAX_SESSION,
            action=Action.UNCHANGED,
            summary=f"max session duration {current.max_session_duration} s",
        )
    return Change(
        item=Item.MAX_SESSION,
        action=Action.UPDATE,
        summary=f"max session duration {current.max_session_duration} s -> {wanted} s",
        calls=(
            Call(
                method="update_role",
                params={"RoleName": name, "MaxSessionDuration": wanted},
                describe=f"set the max session duration of role {name} to {wanted} s",
            ),
        ),
    )


def _boundary_change(desired: Desired, current: RoleState) -> Change:
    name, boundary = desired.role_name, desired.permissions_boundary
    shown = current.permissions_boundary or "(none)"
    if boundary is None or boundary == current.permissions_boundary:
        return Change(
            item=Item.BOUNDARY, action=Action.UNCHANGED, summary=f"permissions boundary {shown}"
        )
    return Change(
        item=Item.BOUNDARY,
        action=Action.UPDATE,
        summary=f"permissions boundary {shown} -> {boundary}",
        calls=(
            Call(
                method="put_role_permissions_boundary",
                params={"RoleName": name, "PermissionsBoundary": boundary},
                describe=f"set the permissions boundary of role {name} to {boundary}",
            ),
        ),
    )


def _tags_change(desired: Desired, current: RoleState) -> Change:
    name, have = desired.role_name, dict(current.tags)
    missing = [(key, value) for key, value in desired.tags if have.get(key) != value]
    if not missing:
        return Change(item=Item.TAGS, action=Action.UNCHANGED, summary=_tags_summary(desired.tags))
    shown = ", ".join(f"{key}={value}" for key, value in missing)
    return Change(
        item=Item.TAGS,
        action=Action.UPDATE,
        summary=f"tags {shown}",
        calls=(
            Call(
                method="tag_role",
                params={
                    "RoleName": name,
                    "Tags": [{"Key": key, "Value": value} for key, value in missing],
                },
                describe=f"tag role {name} with {shown}",
            ),
        ),
    )


def _tags_summary(tags: Sequence[tuple[str, str]]) -> str:
    return "tags " + (", ".join(f"{key}={value}" for key, value in tags) or "(none given)")


def _put_permissions(desired: Desired, current: Any) -> Change:
    name = desired.role_name
    return Change(
        item=Item.PERMISSIONS,
        action=Action.CREATE if current is None else Action.UPDATE,
        summary=f"inline policy {desired.policy_name} of {name}",
        diff=_diff(current, desired.permissions)
        if current is not None
        else _created(desired.permissions),
        calls=(
            Call(
                method="put_role_policy",
                params={
                    "RoleName": name,
                    "PolicyName": desired.policy_name,
                    "PolicyDocument": _compact(desired.permissions),
                },
                describe=f"write the inline policy {desired.policy_name} of role {name}",
            ),
        ),
    )


def _new_role(desired: Desired) -> list[Change]:
    name = desired.role_name
    params: dict[str, Any] = {
        "RoleName": name,
        "AssumeRolePolicyDocument": _compact(desired.trust),
        "Description": desired.description,
        "MaxSessionDuration": desired.max_session_duration or IAM_ROLE_DEFAULT_SESSION_SECONDS,
    }
    if desired.permissions_boundary:
        params["PermissionsBoundary"] = desired.permissions_boundary
    if desired.tags:
        params["Tags"] = [{"Key": key, "Value": value} for key, value in desired.tags]
    create = Call(
        method="create_role",
        params=params,
        describe=f"create the role {name} with its trust policy",
    )
    seconds = desired.max_session_duration or IAM_ROLE_DEFAULT_SESSION_SECONDS
    return [
        Change(item=Item.ROLE, action=Action.CREATE, summary=f"role {name}", calls=(create,)),
        Change(
            item=Item.TRUST,
            action=Action.CREATE,
            summary=f"trust policy of {name}",
            diff=_created(desired.trust),
        ),
        Change(
            item=Item.MAX_SESSION, action=Action.CREATE, summary=f"max session duration {seconds} s"
        ),
        Change(
            item=Item.BOUNDARY,
            action=Action.CREATE if desired.permissions_boundary else Action.UNCHANGED,
            summary=f"permissions boundary {desired.permissions_boundary or '(none)'}",
        ),
        Change(
            item=Item.TAGS,
            action=Action.CREATE if desired.tags else Action.UNCHANGED,
            summary=_tags_summary(desired.tags),
        ),
        _put_permissions(desired, None),
    ]


def changes_and_calls(changes: Sequence[Change], calls: Sequence[Call]) -> str:
    """``7 changes (7 create) in 3 IAM write calls (iam:CreateRole, ...)``."""
    counts: dict[str, int] = {}
    for change in changes:
        if change.action is not Action.UNCHANGED:
            counts[change.action.value] = counts.get(change.action.value, 0) + 1
    total = sum(counts.values())
    kinds = ", ".join(f"{count} {action}" for action, count in counts.items())
    operations = ", ".join(dict.fromkeys(call.operation for call in calls))
    return (
        f"{total} change{'s' if total != 1 else ''} ({kinds}) in {len(calls)} IAM write"
        f" call{'s' if len(calls) != 1 else ''} ({operations})"
    )
