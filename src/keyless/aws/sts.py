"""The STS exchange: a CI token for a role's temporary credentials (AssumeRoleWithWebIdentity,
unsigned, regional), an optional second hop, GetCallerIdentity, and retries only where they help.
"""

from __future__ import annotations

import random
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from keyless.arn import AccountId, RoleArn, policy
from keyless.aws.regions import region_from
from keyless.aws.sts_endpoint import (
    ClientFactory,
    endpoint_url,
    exchange_client_factory,
    sts_client_factory,
)
from keyless.aws.sts_errors import convert, failures, retry_reason
from keyless.aws.sts_query import StsAnswerError, StsTransportError
from keyless.ci.base import Provider, RawToken, session_name_part
from keyless.compat import UTC
from keyless.errors import (
    KeylessError,
    TokenError,
    TokenVerificationError,
    UsageError,
)
from keyless.limits import (
    STS_CHAINED_DURATION_MAX_SECONDS,
    STS_DURATION_MAX_SECONDS,
    STS_DURATION_MIN_SECONDS,
    STS_MAX_ATTEMPTS,
    STS_RETRY_BASE_DELAY_SECONDS,
    STS_RETRY_MAX_DELAY_SECONDS,
    STS_RETRY_TOTAL_SECONDS,
    STS_SESSION_POLICY_ARNS_MAX,
    STS_SESSION_POLICY_MAX_CHARS,
    TOKEN_LEEWAY_SECONDS,
)
from keyless.tokens import UnverifiedToken, peek

if TYPE_CHECKING:
    from mypy_boto3_sts.type_defs import CredentialsTypeDef

__all__ = [
    "AccountMismatchError",
    "Assumed",
    "CallerIdentity",
    "ExchangeRequest",
    "RetryPolicy",
    "SigningKeys",
    "Sts",
    "TemporaryCredentials",
    "check_session_name",
    "check_token_usable",
    "derive_session_name",
    "endpoint_url",
    "exchange",
    "exchange_client_factory",
    "exchange_with_keys",
    "static_keys",
    "sts_client_factory",
]

#: RoleSessionName: 2 to 64 characters of [\w+=,.@-], \w being ASCII (botocore STS model).
_SESSION_NAME: Final = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
#: Variables that carry static keys; ``exchange_with_keys`` reads them only when asked to.
STATIC_KEY_VARIABLES: Final = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


class AccountMismatchError(KeylessError):
    """The credentials belong to another account than ``--expect-account`` names."""

    kind = "account-mismatch"


# --- values --------------------------------------------------------------------------------------


def check_session_name(value: str) -> str:
    """A session name given by a person, refused (not rewritten) when STS would refuse it."""
    if _SESSION_NAME.fullmatch(value) is None:
        raise UsageError(
            f"--session-name {value!r} is not valid: STS takes 2 to 64 characters of letters,"
            " digits and + = , . @ _ -"
        )
    return value


def derive_session_name(
    env: Mapping[str, str],
    provider: Provider | None,
    *,
    clock: Callable[[], float] = time.time,
) -> str:
    """The session name for this job: the CI's ``session_name`` hook, else ``keyless-<epoch>``
    (botocore's own default is ``botocore-session-<epoch>``). Always valid for STS."""
    name = provider.session_name(env) if provider is not None else None
    name = session_name_part(name or "")[:64]
    if _SESSION_NAME.fullmatch(name) is None:
        name = f"keyless-{int(clock())}"
    return name


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKeys:
    """Keys that sign AWS requests. The secret and the session token never show in ``repr``."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class TemporaryCredentials:
    """A role session's credentials as STS returned them."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime
    account_id: AccountId | None = None

    def signing_keys(self) -> SigningKeys:
        return SigningKeys(
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            session_token=self.session_token,
        )

    def secrets(self) -> tuple[str, str]:
        """The values that must never appear anywhere but the deliberate outputs."""
        return (self.secret_access_key, self.session_token)

    @property
    def expiration_iso(self) -> str:
        return self.expiration.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerIdentity:
    """``GetCallerIdentity``: who a set of credentials is."""

    account: AccountId
    arn: str
    user_id: str

    @property
    def assumed_role(self) -> tuple[str, str] | None:
        """``(role name, session name)`` for an assumed-role ARN, else ``None``."""
        resource = self.arn.split(":", 5)[-1]
        kind, _, rest = resource.partition("/")
        if kind != "assumed-role" or "/" not in rest:
            return None
        role, _, session = rest.rpartition("/")
        return role, session

    def to_json(self) -> dict[str, str | None]:
        assumed = self.assumed_role
        return {
            "account": self.account,
            "arn": self.arn,
            "user_id": self.user_id,
            "role": assumed[0] if assumed else None,
            "session": assumed[1] if assumed else None,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeRequest:
    """What to ask STS for. Session policies apply to the last hop (the credentials handed on)."""

    role_arn: RoleArn
    session_name: str
    duration_seconds: int | None = None
    session_policy: str | None = None
    session_policy_arns: tuple[str, ...] = ()
    chain_role_arn: RoleArn | None = None
    expect_account: AccountId | None = None

    def __post_init__(self) -> None:
        check_session_name(self.session_name)
        duration = self.duration_seconds
        if duration is not None and not (
            STS_DURATION_MIN_SECONDS <= duration <= STS_DURATION_MAX_SECONDS
        ):
            raise UsageError(
                f"--duration {duration} is out of range: STS takes {STS_DURATION_MIN_SECONDS}"
                f" to {STS_DURATION_MAX_SECONDS} seconds (and at most the role's"
                " MaxSessionDuration)"
            )
        if (
            self.chain_role_arn is not None
            and duration is not None
            and duration > STS_CHAINED_DURATION_MAX_SECONDS
        ):
            # IAM User Guide, "Role chaining": a session made from a role's credentials lasts at
            # most one hour, and STS refuses a longer DurationSeconds with ValidationError.
            raise UsageError(
                f"--duration {duration} with --chain-role-arn: AWS limits a chained session to"
                f" {STS_CHAINED_DURATION_MAX_SECONDS} seconds; ask for at most that"
            )
        if self.session_policy is not None and not (
            1 <= len(self.session_policy) <= STS_SESSION_POLICY_MAX_CHARS
        ):
            raise UsageError(
                f"the session policy has {len(self.session_policy)} characters; STS takes 1 to"
                f" {STS_SESSION_POLICY_MAX_CHARS} (remove whitespace, or use managed policies"
                " with --session-policy-arn)"
            )
        if len(self.session_policy_arns) > STS_SESSION_POLICY_ARNS_MAX:
            raise UsageError(
                f"{len(self.session_policy_arns)} --session-policy-arn given; STS takes at most"
                f" {STS_SESSION_POLICY_ARNS_MAX}"
            )
        for arn in self.session_policy_arns:
            if policy(arn) is None:
                raise UsageError(
                    f"--session-policy-arn {arn!r} is not a managed policy ARN"
                    " (arn:aws:iam::123456789012:policy/NAME)"
                )

    @property
    def final_role_arn(self) -> RoleArn:
        return self.chain_role_arn or self.role_arn


@dataclass(frozen=True, slots=True, kw_only=True)
class Assumed:
    """The outcome of an exchange: credentials of the last hop and who they are."""

    credentials: TemporaryCredentials
    role_arn: RoleArn
    session_name: str
    #: The STS assumed-role ARN of the last hop.
    assumed_role_arn: str
    #: The ``sub`` STS read from the token (``None`` after a static-key fallback).
    subject: str | None
    identity: CallerIdentity
    hops: tuple[RoleArn, ...]
    #: "web-identity", or "static-keys" after an explicit ``--allow-static-fallback``.
    source: str

    def to_json(self) -> dict[str, Any]:
        """Everything about the session except its secrets."""
        return {
            "role_arn": self.role_arn,
            "session_name": self.session_name,
            "assumed_role_arn": self.assumed_role_arn,
            "subject": self.subject,
            "hops": list(self.hops),
            "source": self.source,
            "expiration": self.credentials.expiration_iso,
            "access_key_id": self.credentials.access_key_id,
            "identity": self.identity.to_json(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Bounds of keyless' retries of one STS call: attempts, backoff, and total time."""

    max_attempts: int = STS_MAX_ATTEMPTS
    base_delay: float = STS_RETRY_BASE_DELAY_SECONDS
    max_delay: float = STS_RETRY_MAX_DELAY_SECONDS
    total_seconds: float = STS_RETRY_TOTAL_SECONDS


# --- the calls ------------------------------------------------------------------------------------


class Sts:
    """STS calls with keyless' retry policy. Every seam has a production default."""

    def __init__(
        self,
        *,
        client_factory: ClientFactory,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = random.random,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self._client_factory = client_factory
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._random = random
        self._notify = notify or (lambda _message: None)

    @classmethod
    def for_environment(
        cls,
        env: Mapping[str, str],
        *,
        region: str | None = None,
        notify: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Sts:
        return cls(
            client_factory=exchange_client_factory(env, region=region_from(env, region)),
            notify=notify,
            sleep=sleep,
        )

    def assume_role_with_web_identity(
        self,
        token: RawToken,
        *,
        role_arn: RoleArn,
        session_name: str,
        duration_seconds: int | None = None,
        session_policy: str | None = None,
        session_policy_arns: tuple[str, ...] = (),
    ) -> tuple[TemporaryCredentials, str, str | None]:
        """Credentials, assumed-role ARN and the ``sub`` STS read. Unsigned: no keys involved."""
        client = self._client_factory(None)
        params: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": session_name,
            "WebIdentityToken": token,
        }
        # ProviderId is for OAuth 2.0 providers only; it is never sent for OIDC (STS API reference).
        params.update(_optional(duration_seconds, session_policy, session_policy_arns))
        response = self._call(
            "AssumeRoleWithWebIdentity",
            role_arn,
            lambda: client.assume_role_with_web_identity(**params),
            secrets=(token,),
        )
        return (
            _credentials(response["Credentials"]),
            response["AssumedRoleUser"]["Arn"],
            response.get("SubjectFromWebIdentityToken"),
        )

    def assume_role(
        self,
        keys: SigningKeys,
        *,
        role_arn: RoleArn,
        session_name: str,
        duration_seconds: int | None = None,
        session_policy: str | None = None,
        session_policy_arns: tuple[str, ...] = (),
        tags: tuple[tuple[str, str], ...] = (),
        transitive_tag_keys: tuple[str, ...] = (),
        external_id: str | None = None,
    ) -> tuple[TemporaryCredentials, str]:
        """``AssumeRole`` signed with ``keys``: credentials and the assumed-role ARN. Session tags
        and an external ID exist for AssumeRole only (not for the web identity call)."""
        client = self._client_factory(keys)
        params: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": session_name}
        params.update(_optional(duration_seconds, session_policy, session_policy_arns))
        if tags:
            params["Tags"] = [{"Key": key, "Value": value} for key, value in tags]
        if transitive_tag_keys:
            params["TransitiveTagKeys"] = list(transitive_tag_keys)
        if external_id is not None:
            params["ExternalId"] = external_id
        response = self._call(
            "AssumeRole",
            role_arn,
            lambda: client.assume_role(**params),
            secrets=_key_secrets(keys),
        )
        return _credentials(response["Credentials"]), response["AssumedRoleUser"]["Arn"]

    def caller_identity(self, keys: SigningKeys, *, role: str) -> CallerIdentity:
        """``GetCallerIdentity`` with ``keys`` (needs no permission); ``role`` names them."""
        client = self._client_factory(keys)
        response = self._call(
            "GetCallerIdentity", role, client.get_caller_identity, secrets=_key_secrets(keys)
        )
        return CallerIdentity(
            account=AccountId(response["Account"]),
            arn=response["Arn"],
            user_id=response["UserId"],
        )

    def _call(
        self, operation: str, role: str, call: Callable[[], Any], *, secrets: tuple[str, ...]
    ) -> Any:
        """``call()`` with full-jitter exponential backoff on transient failures only.

        No attempt starts and no sleep ends after ``total_seconds`` from the first attempt.
        """
        policy = self._retry
        deadline = self._clock() + policy.total_seconds
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except failures() as exc:
                reason = retry_reason(exc)
                if reason is None or attempt >= policy.max_attempts:
                    raise convert(
                        exc, operation=operation, role=role, attempts=attempt, secrets=secrets
                    ) from _no_secrets(exc)
                ceiling = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
                delay = self._random() * ceiling
                if self._clock() + delay > deadline:
                    raise convert(
                        exc, operation=operation, role=role, attempts=attempt, secrets=secrets
                    ) from _no_secrets(exc)
                self._notify(
                    f"STS {operation} for {role}: {reason} (attempt {attempt} of"
                    f" {policy.max_attempts}); retrying in {delay:.2f} s"
                )
                self._sleep(delay)


def _optional(
    duration_seconds: int | None, session_policy: str | None, session_policy_arns: tuple[str, ...]
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if duration_seconds is not None:
        params["DurationSeconds"] = duration_seconds
    if session_policy is not None:
        params["Policy"] = session_policy
    if session_policy_arns:
        params["PolicyArns"] = [{"arn": arn} for arn in session_policy_arns]
    return params


def _key_secrets(keys: SigningKeys) -> tuple[str, ...]:
    return (keys.secret_access_key, keys.session_token or "")


def _no_secrets(exc: Exception) -> Exception | None:
    # An STS error answer or connection failure names codes and endpoints only: it is chained.
    # Any other botocore error (e.g. ParamValidationError) may quote a parameter, so it is not.
    if isinstance(exc, StsAnswerError | StsTransportError):
        return exc
    exceptions = sys.modules.get("botocore.exceptions")
    if exceptions is None:
        return None
    chained = (exceptions.ClientError, exceptions.ConnectionError, exceptions.HTTPClientError)
    return exc if isinstance(exc, chained) else None


def _credentials(raw: CredentialsTypeDef) -> TemporaryCredentials:
    expiration = raw["Expiration"]
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)
    return TemporaryCredentials(
        access_key_id=raw["AccessKeyId"],
        secret_access_key=raw["SecretAccessKey"],
        session_token=raw["SessionToken"],
        expiration=expiration,
    )


# --- the exchange ---------------------------------------------------------------------------------


def check_token_usable(
    token: RawToken, *, source: str, clock: Callable[[], float] = time.time
) -> UnverifiedToken:
    """Refuse, before any STS call, a token that is malformed or already expired: STS would only
    answer InvalidIdentityToken or ExpiredTokenException (docs/aws-sts-iam.md#sts-retry).
    Unverified: this decides which message to show, never whom to trust."""
    try:
        peeked = peek(token)
    except TokenError as exc:
        raise TokenError(f"the token from {source} is malformed: {exc.message}") from None
    expires = peeked.time_claim("exp")
    if expires is not None and expires + TOKEN_LEEWAY_SECONDS < clock():
        at = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise TokenVerificationError(
            f"the token from {source} expired at {at}",
            check="expired",
            remedy="Tokens live minutes: get a fresh one right before the exchange (re-run the"
            " step; Bitbucket's step token cannot be renewed within the step).",
        )
    return peeked


def exchange(token: RawToken, request: ExchangeRequest, *, sts: Sts) -> Assumed:
    """The token for the role's credentials, the optional second hop, then GetCallerIdentity and
    the account check. Raises ``AccessDeniedError``, ``AwsError``, ``NetworkError`` or
    ``AccountMismatchError``; never returns unverified credentials."""
    chained = request.chain_role_arn is not None
    credentials, assumed_arn, subject = sts.assume_role_with_web_identity(
        token,
        role_arn=request.role_arn,
        session_name=request.session_name,
        duration_seconds=None if chained else request.duration_seconds,
        session_policy=None if chained else request.session_policy,
        session_policy_arns=() if chained else request.session_policy_arns,
    )
    return _finish(credentials, assumed_arn, subject, request, sts=sts, source="web-identity")


def exchange_with_keys(keys: SigningKeys, request: ExchangeRequest, *, sts: Sts) -> Assumed:
    """The explicit static-key fallback: ``AssumeRole`` into the role with ``keys``."""
    chained = request.chain_role_arn is not None
    credentials, assumed_arn = sts.assume_role(
        keys,
        role_arn=request.role_arn,
        session_name=request.session_name,
        duration_seconds=None if chained else request.duration_seconds,
        session_policy=None if chained else request.session_policy,
        session_policy_arns=() if chained else request.session_policy_arns,
    )
    return _finish(credentials, assumed_arn, None, request, sts=sts, source="static-keys")


def static_keys(env: Mapping[str, str]) -> SigningKeys | None:
    """The static keys in ``env``, if both halves are there."""
    key, secret = (env.get(name, "") for name in STATIC_KEY_VARIABLES)
    if not (key and secret):
        return None
    return SigningKeys(
        access_key_id=key,
        secret_access_key=secret,
        session_token=env.get("AWS_SESSION_TOKEN") or None,
    )


def _finish(
    credentials: TemporaryCredentials,
    assumed_arn: str,
    subject: str | None,
    request: ExchangeRequest,
    *,
    sts: Sts,
    source: str,
) -> Assumed:
    hops = [request.role_arn]
    if request.chain_role_arn is not None:
        credentials, assumed_arn = sts.assume_role(
            credentials.signing_keys(),
            role_arn=request.chain_role_arn,
            session_name=request.session_name,
            duration_seconds=request.duration_seconds,
            session_policy=request.session_policy,
            session_policy_arns=request.session_policy_arns,
        )
        hops.append(request.chain_role_arn)
    final = request.final_role_arn
    identity = sts.caller_identity(credentials.signing_keys(), role=final)
    if request.expect_account is not None and identity.account != request.expect_account:
        raise AccountMismatchError(
            f"the credentials of {final} are in account {identity.account}, not the expected"
            f" {request.expect_account}",
            remedy="Check --role-arn (and --chain-role-arn) and --expect-account; no credentials"
            " were handed on.",
        )
    return Assumed(
        credentials=TemporaryCredentials(
            access_key_id=credentials.access_key_id,
            secret_access_key=credentials.secret_access_key,
            session_token=credentials.session_token,
            expiration=credentials.expiration,
            account_id=identity.account,
        ),
        role_arn=final,
        session_name=request.session_name,
        assumed_role_arn=assumed_arn,
        subject=subject,
        identity=identity,
        hops=tuple(hops),
        source=source,
    )
