"""Where an audit's roles come from: the live account (boto3's standard credential chain), every
account of an Organization through an assumable role, or offline files whose format is detected:
`aws iam get-account-authorization-details`, `aws iam list-roles` pages, `aws iam get-role`,
`aws iam list-open-id-connect-providers` / `get-open-id-connect-provider`, CloudFormation
templates (JSON or YAML), Terraform HCL and `terraform show -json` plans.

IAM reads go through a bounded thread pool; a throttled read is retried with exponential backoff
and jitter (AWS General Reference, "Error retries and exponential backoff in AWS").
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from keyless.audit.inventory import (
    Inventory,
    PolicyDocument,
    ProviderRecord,
    RoleRecord,
    SourceLocation,
    unresolved,
)
from keyless.errors import AwsError, UsageError
from keyless.jsonlimits import JsonLimitError, loads_bounded
from keyless.limits import (
    AUDIT_INPUT_MAX_CHARS,
    AUDIT_MAX_ROLES,
    AUDIT_MAX_WORKERS,
    AUDIT_THROTTLE_ATTEMPTS,
    AUDIT_THROTTLE_BASE_SECONDS,
    AUDIT_THROTTLE_MAX_SECONDS,
)

if TYPE_CHECKING:
    import boto3

__all__ = [
    "IAM_READ_CALLS",
    "ORG_CALLS",
    "check_thumbprints",
    "live_inventory",
    "load_inputs",
    "load_text",
    "org_inventory",
    "read_input",
]

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


# --- reading files --------------------------------------------------------------------------


def read_input(path: str, stdin: TextIO | None) -> tuple[str, str]:
    """``(label, text)`` of one input; ``-`` reads standard input."""
    if path == "-":
        if stdin is None:
            raise UsageError("'-' reads standard input, which is not available here")
        text = stdin.read(AUDIT_INPUT_MAX_CHARS + 1)
        label = "<stdin>"
    else:
        file = Path(path)
        if file.is_dir():
            raise UsageError(f"audit input {path} is a folder; name the files in it")
        try:
            with file.open(encoding="utf-8") as handle:
                text = handle.read(AUDIT_INPUT_MAX_CHARS + 1)
        except FileNotFoundError:
            raise UsageError(f"audit input {path} does not exist") from None
        except UnicodeDecodeError:
            raise UsageError(f"audit input {path} is not UTF-8 text") from None
        except OSError as exc:
            raise UsageError(f"cannot read audit input {path}: {exc.strerror or exc}") from None
        label = file.as_posix().removeprefix("./")
    if len(text) > AUDIT_INPUT_MAX_CHARS:
        raise UsageError(
            f"audit input {label} is longer than {AUDIT_INPUT_MAX_CHARS:,} characters, the most"
            " keyless audit reads in one file; split it (one dump per account)"
        )
    if not text.strip():
        raise UsageError(f"audit input {label} is empty")
    return label, text


def load_inputs(paths: Sequence[str], stdin: TextIO | None = None) -> Inventory:
    inventory = Inventory()
    for path in paths:
        label, text = read_input(path, stdin)
        inventory = inventory.merged(load_text(label, text))
        _check_role_count(len(inventory.roles), "the inputs")
    return inventory


def _check_role_count(count: int, where: str) -> None:
    if count > AUDIT_MAX_ROLES:
        raise UsageError(
            f"{where} hold more than {AUDIT_MAX_ROLES:,} roles, the most one keyless audit"
            " reports on; audit them in parts"
        )


def load_text(label: str, text: str) -> Inventory:
    """The roles and providers of one input, its format detected from its content."""
    stripped = text.lstrip()
    if stripped[:1] in "{[":
        try:
            document = loads_bounded(text, max_chars=AUDIT_INPUT_MAX_CHARS)
        except JsonLimitError as exc:
            raise UsageError(f"audit input {label} {exc}; it is not an IAM dump") from None
        except ValueError as exc:
            if label.endswith(".json") or stripped[:1] == "[":
                raise UsageError(f"audit input {label} is not valid JSON: {exc}") from None
        else:
            return _from_json(label, text, document)
    if label.endswith(".tf") or re.search(r'^\s*(resource|data)\s+"', text, re.MULTILINE):
        return _from_terraform(label, text)
    from keyless.audit.cfn_yaml import load_template

    document = load_template(text, source=label)
    if isinstance(document, dict) and isinstance(document.get("Resources"), dict):
        return _from_cloudformation(label, text, document)
    raise UsageError(
        f"audit input {label}: not a format keyless audit reads",
        remedy="It reads get-account-authorization-details, list-roles, get-role and"
        " list-open-id-connect-providers JSON, CloudFormation templates, Terraform .tf files"
        " and `terraform show -json` plans.",
    )


def _from_json(label: str, text: str, document: object) -> Inventory:
    if isinstance(document, list):
        inventory = Inventory()
        for page in document:
            inventory = inventory.merged(_from_json(label, text, page))
        return inventory
    if not isinstance(document, dict):
        raise UsageError(f"audit input {label} holds a JSON {type(document).__name__}")
    if "RoleDetailList" in document:
        return _from_authorization_details(label, document)
    if "Resources" in document and isinstance(document["Resources"], dict):
        return _from_cloudformation(label, text, document)
    if "planned_values" in document or "resource_changes" in document:
        return _from_plan(label, document)
    inventory = Inventory(providers=_providers_of(document))
    if isinstance(document.get("Roles"), list):
        roles = tuple(_role_of(label, item, None) for item in document["Roles"])
        return Inventory(roles=roles, providers=inventory.providers)
    if isinstance(document.get("Role"), dict):
        return Inventory(roles=(_role_of(label, document["Role"], None),))
    if inventory.providers is not None:
        return inventory
    raise UsageError(
        f"audit input {label}: JSON of an unknown shape (no RoleDetailList, Roles, Role,"
        " OpenIDConnectProviderList or Resources)",
    )


def _account(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[4] else None


def _providers_of(document: Mapping[str, Any]) -> tuple[ProviderRecord, ...] | None:
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
                        account_id=_account(arn),
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
                account_id=_account(str(document.get("Arn", ""))),
                client_ids=tuple(document.get("ClientIDList") or ()),
                thumbprints=tuple(document.get("ThumbprintList") or ()),
            ),
        )
    return None


def _role_of(
    label: str,
    item: Mapping[str, Any],
    policies: tuple[PolicyDocument, ...] | None,
    unread: tuple[str, ...] = (),
) -> RoleRecord:
    arn = str(item.get("Arn", ""))
    return RoleRecord(
        arn=arn,
        role_name=str(item.get("RoleName", arn.rpartition("/")[2])),
        account_id=_account(arn),
        trust=item.get("AssumeRolePolicyDocument"),
        policies=policies,
        unread_policies=unread,
        source=SourceLocation(file=label) if label else None,
    )


def _from_authorization_details(label: str, document: Mapping[str, Any]) -> Inventory:
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
        roles.append(_role_of(label, item, (*inline, *docs), unread))
    return Inventory(roles=tuple(roles), providers=_providers_of(document))


# --- CloudFormation ------------------------------------------------------------------------------

#: Pseudo parameters that do not change who a trust admits (the account is the provider's own).
_PSEUDO = frozenset({"AWS::AccountId", "AWS::Partition", "AWS::Region", "AWS::URLSuffix"})


class _Resolver:
    """Resolves the intrinsics of one CloudFormation role's trust that a template fixes by
    itself; anything else becomes an ``{unresolved:...}`` placeholder, recorded."""

    def __init__(self, resources: Mapping[str, Any]) -> None:
        self.resources = resources
        self.unresolved: list[str] = []

    def _miss(self, expression: str) -> str:
        self.unresolved.append(expression)
        return unresolved(expression)

    def _provider_arn(self, logical: str) -> str | None:
        resource = self.resources.get(logical)
        if isinstance(resource, dict) and resource.get("Type") == "AWS::IAM::OIDCProvider":
            url = (resource.get("Properties") or {}).get("Url")
            if isinstance(url, str):
                return (
                    f"arn:aws:iam::${{AWS::AccountId}}:oidc-provider/{url.removeprefix('https://')}"
                )
        return None

    def resolve(self, value: object) -> object:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((name, argument),) = value.items()
            if name == "Ref":
                if argument in _PSEUDO:
                    return f"${{{argument}}}"
                return self._provider_arn(str(argument)) or self._miss(f"Ref {argument}")
            if name == "Fn::GetAtt":
                target = argument[0] if isinstance(argument, list) else str(argument).split(".")[0]
                return self._provider_arn(str(target)) or self._miss(f"Fn::GetAtt {argument}")
            if name == "Fn::Sub":
                return self._sub(argument)
            if name == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
                parts = self.resolve(argument[1])
                if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
                    return str(argument[0]).join(parts)
            if name.startswith("Fn::") or name == "Condition":
                return self._miss(f"{name} {json.dumps(argument)[:80]}")
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, argument: object) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (None, {})
        if isinstance(argument, list) and argument and isinstance(argument[0], str):
            text = argument[0]
            variables = argument[1] if len(argument) > 1 and isinstance(argument[1], dict) else {}
        if text is None:
            return self._miss("Fn::Sub")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in _PSEUDO:
                return match.group(0)
            given = variables.get(name)
            if isinstance(given, str):
                return given
            arn = self._provider_arn(name.split(".")[0])
            return arn or self._miss(f"Fn::Sub ${{{name}}}")

        return re.sub(r"\$\{([^}]+)\}", replace, text)


def _line_of_key(text: str, key: str) -> int | None:
    match = re.search(rf'^[ \t]*"?{re.escape(key)}"?\s*:', text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _from_cloudformation(label: str, text: str, document: Mapping[str, Any]) -> Inventory:
    resources = document.get("Resources") or {}
    roles = []
    for logical, resource in resources.items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::IAM::Role":
            continue
        properties = resource.get("Properties") or {}
        resolver = _Resolver(resources)
        trust = resolver.resolve(properties.get("AssumeRolePolicyDocument"))
        name = properties.get("RoleName")
        inline = tuple(
            PolicyDocument(
                name=str(p.get("PolicyName")),
                document=_Resolver(resources).resolve(p.get("PolicyDocument")),
            )
            for p in properties.get("Policies") or ()
            if isinstance(p, dict)
        )
        managed = [m for m in properties.get("ManagedPolicyArns") or () if isinstance(m, str)]
        roles.append(
            RoleRecord(
                arn=f"cloudformation:{label}#{logical}",
                role_name=name if isinstance(name, str) else str(logical),
                account_id=None,
                trust=trust,
                policies=inline,
                unread_policies=tuple(managed),
                source=SourceLocation(file=label, line=_line_of_key(text, str(logical))),
                unresolved=tuple(dict.fromkeys(resolver.unresolved)),
            )
        )
    return Inventory(roles=tuple(roles))


# --- Terraform ---------------------------------------------------------------------------------


def _from_plan(label: str, document: Mapping[str, Any]) -> Inventory:
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
                account_id=_account(str(arn)),
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


def _from_terraform(label: str, text: str) -> Inventory:
    from keyless.audit.terraform import roles_of_hcl

    return Inventory(roles=roles_of_hcl(label, text))


# --- the live account ----------------------------------------------------------------------------


def with_backoff(
    call: Callable[[], T],
    *,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = AUDIT_THROTTLE_ATTEMPTS,
) -> T:
    """``call()``, retried while AWS answers with a throttling error (exponential backoff with
    full jitter); any other error becomes an ``AwsError`` naming the call."""
    from botocore.exceptions import BotoCoreError, ClientError

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

    def provider(arn: str) -> ProviderRecord:
        got = with_backoff(
            lambda: iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn),
            what=f"iam:GetOpenIDConnectProvider {arn}",
            sleep=sleep,
        )
        return ProviderRecord(
            arn=arn,
            url=str(got.get("Url", arn.partition(":oidc-provider/")[2])).removeprefix("https://"),
            account_id=_account(arn),
            client_ids=tuple(got.get("ClientIDList") or ()),
            thumbprints=tuple(got.get("ThumbprintList") or ()),
        )

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
            return _role_of("", item, None)
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
        return _role_of("", item, (*inline, *attached))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        providers = tuple(pool.map(provider, arns))
        roles = tuple(pool.map(role, all_roles))
    return Inventory(roles=roles, providers=providers)


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
        _check_role_count(len(inventory.roles), "the Organization's accounts")
    return inventory


# --- thumbprints ------------------------------------------------------------------------------

#: ``(issuer URL, ca_bundle) -> thumbprint``: keyless.aws.thumbprint.issuer_thumbprint.
ThumbprintReader = Callable[[str, Path | None], str]


def _issuer_thumbprint(issuer: str, ca_bundle: Path | None) -> str:
    from keyless.aws.thumbprint import issuer_thumbprint

    return issuer_thumbprint(issuer, ca_bundle=ca_bundle)


def check_thumbprints(
    inventory: Inventory,
    *,
    ca_bundle: Path | None = None,
    read: ThumbprintReader = _issuer_thumbprint,
) -> Inventory:
    """The providers with the thumbprint their issuer's key host presents now. A host the
    system's trust store accepts is publicly trusted (AWS then ignores thumbprints); one it
    refuses is read again with ``ca_bundle``. A provider that cannot be read is listed in
    ``errors`` and the audit goes on."""
    from keyless.errors import KeylessError

    providers: list[ProviderRecord] = []
    errors: list[str] = []
    for record in inventory.providers or ():
        issuer = f"https://{record.url}"
        try:
            current, public = read(issuer, None), True
        except KeylessError as first:
            if ca_bundle is None:
                errors.append(
                    f"thumbprint of {record.url} not checked: {first} (pass --ca-bundle PEM when"
                    " its CA is private)"
                )
                providers.append(record)
                continue
            try:
                current, public = read(issuer, ca_bundle), False
            except KeylessError as second:
                errors.append(f"thumbprint of {record.url} not checked: {second}")
                providers.append(record)
                continue
        providers.append(
            dataclasses.replace(record, current_thumbprint=current, publicly_trusted=public)
        )
    return dataclasses.replace(
        inventory,
        providers=tuple(providers) if inventory.providers is not None else None,
        errors=(*inventory.errors, *errors),
    )


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
