"""Reading what IAM has for a ``Desired`` state, and applying a ``Plan``: the write calls it
lists and nothing else, retrying only IAM's eventual consistency, and saying what exists when a
call fails part-way.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from keyless.aws.errors import error_code, error_message
from keyless.aws.provision import Action, Call, Item, Plan, changes_and_calls
from keyless.aws.provision_state import Current, Desired, ProviderState, RoleState
from keyless.errors import AccessDeniedError, AwsError, KeylessError
from keyless.limits import (
    IAM_PROPAGATION_MAX_ATTEMPTS,
    IAM_PROPAGATION_MAX_DELAY_SECONDS,
    IAM_PROPAGATION_RETRY_BASE_SECONDS,
    IAM_ROLE_DEFAULT_SESSION_SECONDS,
)

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

__all__ = [
    "Applied",
    "ProvisionIncompleteError",
    "ProvisionRefusedError",
    "apply",
    "read_current",
]


# --- reading what IAM has ------------------------------------------------------------------------


def _aws_error(exc: botocore.exceptions.ClientError, what: str) -> KeylessError:
    code = error_code(exc) or ""
    message = f"{what}: {code}: {error_message(exc)}"
    if code in ("AccessDenied", "AccessDeniedException"):
        return AccessDeniedError(
            message,
            remedy="keyless provision reads with iam:GetOpenIDConnectProvider, iam:GetRole,"
            " iam:ListRolePolicies, iam:GetRolePolicy and iam:ListAttachedRolePolicies.",
        )
    return AwsError(message)


def _document(value: Any) -> Any:
    # botocore decodes IAM's URL-encoded policy documents into dicts; other clients may not.
    if isinstance(value, str):
        return json.loads(urllib.parse.unquote(value))
    return value


def read_current(iam: IAMClient, desired: Desired) -> Current:
    """What the account has now, with read calls only (Get*/List*)."""
    return Current(provider=_read_provider(iam, desired), role=_read_role(iam, desired))


def _read_provider(iam: IAMClient, desired: Desired) -> ProviderState | None:
    arn = desired.provider_arn
    try:
        response = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    except botocore.exceptions.ClientError as exc:
        if (error_code(exc) or "") == "NoSuchEntity":
            return None
        raise _aws_error(exc, f"cannot read the OIDC provider {arn}") from exc
    return ProviderState(
        arn=arn,
        client_ids=tuple(response.get("ClientIDList", [])),
        thumbprints=tuple(tp.lower() for tp in response.get("ThumbprintList", [])),
    )


def _read_role(iam: IAMClient, desired: Desired) -> RoleState | None:
    name = desired.role_name
    try:
        role = iam.get_role(RoleName=name)["Role"]
        names: list[str] = []
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
            names.extend(page.get("PolicyNames", []))
        attached: list[str] = []
        for listing in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
            attached.extend(p.get("PolicyArn", "") for p in listing.get("AttachedPolicies", []))
        permissions: Any = None
        if desired.policy_name in names:
            permissions = _document(
                iam.get_role_policy(RoleName=name, PolicyName=desired.policy_name)["PolicyDocument"]
            )
    except botocore.exceptions.ClientError as exc:
        if (error_code(exc) or "") == "NoSuchEntity":
            return None
        raise _aws_error(exc, f"cannot read the role {name}") from exc
    boundary = role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")
    return RoleState(
        arn=role["Arn"],
        trust=_document(role.get("AssumeRolePolicyDocument")),
        max_session_duration=int(role.get("MaxSessionDuration", IAM_ROLE_DEFAULT_SESSION_SECONDS)),
        permissions_boundary=boundary,
        tags=tuple((tag["Key"], tag["Value"]) for tag in role.get("Tags", [])),
        inline_policies=tuple(names),
        permissions=permissions,
        attached_policies=tuple(attached),
    )


# --- applying a plan -----------------------------------------------------------------------------


class ProvisionRefusedError(KeylessError):
    """``apply`` would widen the trust or write a risky one without the flag that allows it."""

    kind = "provision-refused"


class ProvisionIncompleteError(AwsError):
    """A write call failed part-way; ``done`` and ``pending`` say what exists and what does not."""

    kind = "provision-incomplete"

    def __init__(
        self,
        message: str,
        *,
        remedy: str,
        failed: Call,
        code: str,
        done: Sequence[Call],
        pending: Sequence[Call],
    ) -> None:
        super().__init__(message, remedy=remedy)
        self.failed = failed
        self.code = code
        self.done = tuple(done)
        self.pending = tuple(pending)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(super().to_json())
        data.update(
            {
                "failed": {"call": self.failed.operation, "what": self.failed.describe},
                "code": self.code,
                "done": [{"call": c.operation, "what": c.describe} for c in self.done],
                "pending": [{"call": c.operation, "what": c.describe} for c in self.pending],
            }
        )
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    plan: Plan
    #: The write calls made, in order (empty when the plan had no change).
    calls: tuple[Call, ...]

    def summary(self) -> str:
        """One line that counts what the plan counts (its rows) and what was written (calls):
        one call can make several rows (a new provider takes its client IDs and thumbprints)."""
        if not self.calls:
            return "Nothing to change: the account is as planned (no write call)."
        return f"Applied: {changes_and_calls(self.plan.changes, self.calls)}."


Sleep = Callable[[float], None]


def apply(
    the_plan: Plan,
    iam: IAMClient,
    *,
    force: bool = False,
    allow_risky: bool = False,
    sleep: Sleep = time.sleep,
) -> Applied:
    """Make the plan's write calls in order, after its refusals are cleared by the flags."""
    refusals = the_plan.refusals(force=force, allow_risky=allow_risky)
    if refusals:
        raise ProvisionRefusedError(
            f"refusing to provision: {refusals[0].reason}",
            remedy="\n".join(
                [f"- {r.reason}; pass {r.flag} if that is intended" for r in refusals]
                + ["Nothing was written. Review the plan above (--dry-run shows it again)."]
            ),
        )
    calls = list(the_plan.calls)
    done: list[Call] = []
    created_provider = False
    for index, call in enumerate(calls):
        try:
            _invoke(iam, call, retry_principal=created_provider, sleep=sleep)
        except botocore.exceptions.ClientError as exc:
            if call.method == "create_open_id_connect_provider" and (
                (error_code(exc) or "") == "EntityAlreadyExists"
            ):
                # Created by someone else since the plan was read: reuse it, as a fresh plan
                # would, and add the audiences it lacks.
                done.extend(_adopt_provider(iam, call, the_plan.desired, sleep))
                continue
            raise _incomplete(the_plan, exc, call, done, calls[index + 1 :]) from exc
        done.append(call)
        created_provider = created_provider or call.method == "create_open_id_connect_provider"
    return Applied(plan=the_plan, calls=tuple(done))


def _invoke(iam: IAMClient, call: Call, *, retry_principal: bool, sleep: Sleep) -> None:
    method = getattr(iam, call.method)
    attempt = 1
    while True:
        try:
            method(**call.params)
            return
        except botocore.exceptions.ClientError as exc:
            # IAM is eventually consistent: a provider created a moment ago can be unknown to the
            # role's policy check for a few seconds ("Invalid principal in policy"; IAM User
            # Guide, "Changes that I make are not always immediately visible").
            propagating = (
                retry_principal
                and call.method in ("create_role", "update_assume_role_policy")
                and (error_code(exc) or "") == "MalformedPolicyDocument"
                and "principal" in error_message(exc).lower()
            )
            if not propagating or attempt >= IAM_PROPAGATION_MAX_ATTEMPTS:
                raise
            sleep(
                min(
                    IAM_PROPAGATION_RETRY_BASE_SECONDS * 2 ** (attempt - 1),
                    IAM_PROPAGATION_MAX_DELAY_SECONDS,
                )
            )
            attempt += 1


def _adopt_provider(iam: IAMClient, create: Call, desired: Desired, sleep: Sleep) -> list[Call]:
    existing = _read_provider(iam, desired)
    if existing is None:  # gone again: nothing sensible to adopt
        raise AwsError(f"the OIDC provider {desired.provider_arn} exists and then does not")
    made: list[Call] = []
    for cid in desired.client_ids:
        if cid in existing.client_ids:
            continue
        call = Call(
            method="add_client_id_to_open_id_connect_provider",
            params={"OpenIDConnectProviderArn": existing.arn, "ClientID": cid},
            describe=f"add the client ID {cid} to the OIDC provider {existing.arn}",
        )
        _invoke(iam, call, retry_principal=False, sleep=sleep)
        made.append(call)
    return made


def _incomplete(
    the_plan: Plan,
    exc: botocore.exceptions.ClientError,
    failed: Call,
    done: Sequence[Call],
    pending: Sequence[Call],
) -> ProvisionIncompleteError:
    code = error_code(exc) or ""
    desired = the_plan.desired
    lines = ["In the account now:"]
    lines.extend(f"  done       {call.describe}" for call in done)
    for change in the_plan.changes:
        if change.action is Action.UNCHANGED and change.item in (Item.PROVIDER, Item.ROLE):
            lines.append(f"  unchanged  {change.summary}")
    if len(lines) == 1:
        lines.append("  nothing was changed by this run")
    lines.append("Not done:")
    lines.append(f"  failed     {failed.describe}: {code}: {error_message(exc)}")
    lines.extend(f"  not done   {call.describe}" for call in pending)
    lines.append(
        f"Next: allow the caller {failed.operation}"
        + (" (the error names the missing permission)" if "Denied" in code else "")
        + ", then run the same keyless provision command again: it reads what exists now and"
        " makes only the missing changes."
    )
    return ProvisionIncompleteError(
        f"provision of role {desired.role_name} stopped part-way: {failed.operation} failed"
        f" with {code}; {len(done)} of {len(done) + 1 + len(pending)} write calls were made",
        remedy="\n".join(lines),
        failed=failed,
        code=code,
        done=done,
        pending=pending,
    )
