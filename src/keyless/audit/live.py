"""The live account and the Organization: IAM and Organizations reads through boto3's standard
credential chain, paginated, in a bounded thread pool, a throttled read retried with exponential
backoff and jitter (AWS General Reference, "Error retries and exponential backoff in AWS")."""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from keyless.audit.iam_json import account_of, role_of
from keyless.audit.inventory import (
    Inventory,
    PolicyDocument,
    ProviderRecord,
    RoleRecord,
    check_role_count,
)
from keyless.errors import AwsError, UsageError
from keyless.limits import (
    AUDIT_MAX_ROLES,
    AUDIT_MAX_WORKERS,
    AUDIT_THROTTLE_ATTEMPTS,
    AUDIT_THROTTLE_BASE_SECONDS,
    AUDIT_THROTTLE_MAX_SECONDS,
)

if TYPE_CHECKING:
    import boto3

__all__ = ["IAM_READ_CALLS", "ORG_CALLS", "live_inventory", "org_inventory", "with_backoff"]

T = TypeVar("T")

#: Every IAM API a live audit calls (the README's policy lists exactly these).
IAM_READ_CALLS = (
    "iam:ListOpenIDConnectProviders",
    "iam:GetOpenIDConnectProvider",
    "iam:ListRoles",
    "iam:ListRolePolicies",
    "iam:GetRolePolicy",
    "iam:ListAttachedRolePolicies",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
)
#: What ``--org`` adds: the accounts, and the audit role assumed in each.
ORG_CALLS = ("organizations:ListAccounts", "sts:AssumeRole")

_THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
    }
)
#: IAM role names (IAM API Reference, CreateRole: RoleName pattern [\w+=,.@-]+, 1-64).
_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}")


def with_backoff(
    call: Callable[[], T],
    *,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = AUDIT_THROTTLE_ATTEMPTS,
) -> T:
    """``call()``, retried while AWS answers with a throttling error (exponential backoff with
    full jitter); any other error becomes an ``AwsError`` naming the call."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from keyless.aws.errors import error_code

    delay = AUDIT_THROTTLE_BASE_SECONDS
    for attempt in range(attempts):
        try:
            return call()
        except ClientError as exc:
            code = error_code(exc)
            if code in _THROTTLING and attempt + 1 < attempts:
                import random  # only when throttled: light commands never load it

                sleep(random.uniform(0, min(delay, AUDIT_THROTTLE_MAX_SECONDS)))  # noqa: S311
                delay *= 2
                continue
            if code in _THROTTLING:
                raise AwsError(
                    f"{what}: still throttled after {attempts} attempts; try again later"
                ) from None
            raise AwsError(
                f"{what} was refused ({code})",
                remedy="The audit needs the read-only permissions listed in the README's"
                " audit section.",
            ) from None
        except NoCredentialsError:
            raise AwsError(
                f"{what}: no AWS credentials for a live audit",
                remedy="Run it with a role's credentials (keyless exec --role-arn ARN --"
                " keyless audit, or AWS_PROFILE), or audit files instead: aws iam"
                " get-account-authorization-details > account.json; keyless audit account.json",
            ) from None
        except BotoCoreError as exc:
            raise AwsError(f"{what} failed: {type(exc).__name__}") from None
    raise AssertionError("unreachable")


def _pages(
    fetch: Callable[..., Mapping[str, Any]],
    key: str,
    *,
    what: str,
    sleep: Callable[[float], None],
    **params: Any,
) -> Iterator[Any]:
    """Every item of a Marker-paginated IAM list call, each page retried on throttling. An
    answer that would page forever (a truncated page without a new marker, more than
    ``AUDIT_MAX_ROLES`` items) ends the audit instead."""
    markers: set[str] = set()
    marker: str | None = None
    items = 0
    while True:
        extra = {"Marker": marker} if marker else {}
        page = with_backoff(functools.partial(fetch, **params, **extra), what=what, sleep=sleep)
        listed = page.get(key) or ()
        items += len(listed)
        if items > AUDIT_MAX_ROLES:
            raise AwsError(
                f"{what} listed more than {AUDIT_MAX_ROLES:,} items, the most one keyless audit"
                " reads; audit this account from a dump, in parts"
            )
        yield from listed
        if not page.get("IsTruncated"):
            return
        marker = page.get("Marker")
        if not isinstance(marker, str) or not marker or marker in markers:
            raise AwsError(f"{what} answered a truncated page without a new Marker; stopped")
        markers.add(marker)


def _client(session: boto3.Session, service: str) -> Any:
    from keyless.aws.clients import any_client

    return any_client(session, service)


def live_inventory(
    session: boto3.Session,
    *,
    workers: int = AUDIT_MAX_WORKERS,
    sleep: Callable[[float], None] = time.sleep,
    client: Any = None,
) -> Inventory:
    """The account's OIDC providers and roles; permission policies of the OIDC-trusting roles
    only (the others are not reported), read ``workers`` at a time."""
    iam = client if client is not None else _client(session, "iam")
    listed = with_backoff(
        iam.list_open_id_connect_providers, what="iam:ListOpenIDConnectProviders", sleep=sleep
    )
    arns = [p["Arn"] for p in listed.get("OpenIDConnectProviderList") or ()]
    all_roles = list(_pages(iam.list_roles, "Roles", what="iam:ListRoles", sleep=sleep))
    managed: dict[str, object] = {}
    locks: dict[str, threading.Lock] = {}
    lock = threading.Lock()

    def managed_document(arn: str) -> object:
        # One read per managed policy however many roles attach it: a lock per ARN, so the
        # workers that need the same policy wait for the first instead of reading it again.
        with lock:
            key_lock = locks.setdefault(arn, threading.Lock())
        with key_lock:
            if arn in managed:
                return managed[arn]
            policy = with_backoff(
                lambda: iam.get_policy(PolicyArn=arn), what=f"iam:GetPolicy {arn}", sleep=sleep
            )["Policy"]
            version = with_backoff(
                lambda: iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"]),
                what=f"iam:GetPolicyVersion {arn}",
                sleep=sleep,
            )["PolicyVersion"]
            managed[arn] = version.get("Document")
            return managed[arn]

    def role(item: Mapping[str, Any]) -> RoleRecord:
        name = item["RoleName"]
        trust = item.get("AssumeRolePolicyDocument")
        if ":oidc-provider/" not in (trust if isinstance(trust, str) else json.dumps(trust)):
            return role_of("", item, None)
        inline = []
        for policy_name in _pages(
            iam.list_role_policies,
            "PolicyNames",
            RoleName=name,
            what=f"iam:ListRolePolicies {name}",
            sleep=sleep,
        ):
            got = with_backoff(
                functools.partial(iam.get_role_policy, RoleName=name, PolicyName=policy_name),
                what=f"iam:GetRolePolicy {name}",
                sleep=sleep,
            )
            inline.append(PolicyDocument(name=policy_name, document=got.get("PolicyDocument")))
        attached = [
            PolicyDocument(name=p["PolicyArn"], document=managed_document(p["PolicyArn"]))
            for p in _pages(
                iam.list_attached_role_policies,
                "AttachedPolicies",
                RoleName=name,
                what=f"iam:ListAttachedRolePolicies {name}",
                sleep=sleep,
            )
        ]
        return role_of("", item, (*inline, *attached))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        providers = tuple(pool.map(functools.partial(_provider, iam, sleep=sleep), arns))
        roles = tuple(pool.map(role, all_roles))
    return Inventory(roles=roles, providers=providers)


def _provider(iam: Any, arn: str, *, sleep: Callable[[float], None]) -> ProviderRecord:
    """The OIDC provider ``arn`` as IAM describes it."""
    got = with_backoff(
        lambda: iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn),
        what=f"iam:GetOpenIDConnectProvider {arn}",
        sleep=sleep,
    )
    return ProviderRecord(
        arn=arn,
        url=str(got.get("Url", arn.partition(":oidc-provider/")[2])).removeprefix("https://"),
        account_id=account_of(arn),
        client_ids=tuple(got.get("ClientIDList") or ()),
        thumbprints=tuple(got.get("ThumbprintList") or ()),
    )


def org_inventory(
    session: boto3.Session,
    role_name: str,
    *,
    session_factory: Callable[[Mapping[str, str]], boto3.Session] | None = None,
    workers: int = AUDIT_MAX_WORKERS,
    sleep: Callable[[float], None] = time.sleep,
) -> Inventory:
    """Every active account of the Organization, through ``role_name`` assumed in each; an
    account where the role cannot be assumed is listed in ``errors`` and the audit goes on."""
    if not _ROLE_NAME.fullmatch(role_name):
        raise UsageError(
            f"--role-name {role_name!r} is not an IAM role name (letters, digits and +=,.@_-,"
            " at most 64)"
        )
    from botocore.exceptions import ClientError

    from keyless.aws.errors import error_code

    organizations = _client(session, "organizations")
    sts = _client(session, "sts")
    accounts: list[Mapping[str, Any]] = []
    token: str | None = None
    while True:
        extra = {"NextToken": token} if token else {}
        page = with_backoff(
            functools.partial(organizations.list_accounts, **extra),
            what="organizations:ListAccounts",
            sleep=sleep,
        )
        accounts.extend(a for a in page.get("Accounts") or () if a.get("Status") == "ACTIVE")
        token = page.get("NextToken")
        if not token:
            break
    factory = session_factory or _assumed_session(session)
    inventory = Inventory(providers=())
    for account in accounts:
        partition = str(account.get("Arn", "arn:aws:")).split(":")[1] or "aws"
        role_arn = f"arn:{partition}:iam::{account['Id']}:role/{role_name}"
        try:
            credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName="keyless-audit")[
                "Credentials"
            ]
        except ClientError as exc:
            inventory = inventory.merged(
                Inventory(
                    errors=(
                        f"account {account['Id']}: cannot assume {role_arn} ({error_code(exc)})",
                    )
                )
            )
            continue
        member = factory(
            {
                "access_key_id": credentials["AccessKeyId"],
                "secret_access_key": credentials["SecretAccessKey"],
                "session_token": credentials["SessionToken"],
            }
        )
        inventory = inventory.merged(live_inventory(member, workers=workers, sleep=sleep))
        check_role_count(len(inventory.roles), "the Organization's accounts")
    return inventory


def _assumed_session(parent: boto3.Session) -> Callable[[Mapping[str, str]], boto3.Session]:
    def make(keys: Mapping[str, str]) -> boto3.Session:
        from keyless.aws.clients import session

        return session(
            region=parent.region_name,
            access_key_id=keys["access_key_id"],
            secret_access_key=keys["secret_access_key"],
            session_token=keys["session_token"],
        )

    return make
