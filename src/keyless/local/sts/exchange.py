"""The gateway's decision, without HTTP: STS's checks in STS's order (the provider registered for
the issuer, the audience, the signature and times, the role's trust policy) end in an
``AllowedExchange`` or an ``StsError``; with the seams it decides through and their production
implementations (moto's IAM, ``keyless.tokens.verify``, ``keyless.trust.evaluate``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from keyless import arn as arns
from keyless.aws.errors import error_code
from keyless.errors import (
    IssuerError,
    KeylessError,
    NetworkError,
    TokenError,
    TokenVerificationError,
)
from keyless.limits import (
    GATEWAY_DIRECTORY_CACHE_MAX_ENTRIES,
    STS_CLOCK_SKEW_SECONDS,
    STS_DURATION_DEFAULT_SECONDS,
)
from keyless.local.keysets import DeadlineHttpClient, GatewayKeyCache, deadline_fetcher
from keyless.local.moto_server import AdminCredentials, admit, client_config, isolated_session
from keyless.local.sts.rules import (
    CHECK_MESSAGES,
    IDP_UNREACHABLE,
    UNPARSABLE,
    StsError,
    access_denied,
    invalid_token,
    parse_request,
)
from keyless.tokens import ALLOWED_ALGORITHMS, JwksCache, peek, thaw, verify
from keyless.tokens.values import audiences as token_audiences
from keyless.trust.evaluate import evaluate as evaluate_trust
from keyless.trust.model import loads_policy
from keyless.trust.verdict import Request as TrustRequest

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


# --- seams: what verification and trust evaluation take and give ------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """What a verified token establishes. ``evidence`` is the verifier's own result (for the
    production verifier: ``keyless.tokens.VerifiedClaims``), handed on to the trust evaluator."""

    issuer: str
    subject: str
    audience: tuple[str, ...]
    expires_at: int
    claims: Mapping[str, object]
    evidence: object = field(default=None, repr=False, compare=False)


class TokenVerifier(Protocol):
    """Verify ``token`` as issued by ``issuer`` for ``audience``; return its identity.

    Raise ``keyless.errors.TokenVerificationError`` (its ``check`` names the failed check),
    ``TokenError`` for a malformed token, or ``IssuerError`` when the issuer's keys cannot be had.
    """

    def __call__(self, token: str, *, issuer: str, audience: str) -> Identity: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustQuestion:
    """May this verified identity assume this role? (the role's trust policy decides)"""

    role_arn: str
    #: The role's trust policy, JSON text.
    policy: str
    #: ARN of the IAM OIDC provider that matched the token's issuer.
    provider_arn: str
    identity: Identity


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustAnswer:
    allowed: bool
    #: One line for the log: the statement or condition that decided.
    reason: str


class TrustEvaluator(Protocol):
    def __call__(self, question: TrustQuestion) -> TrustAnswer: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class OidcProvider:
    arn: str
    url: str
    client_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Role:
    arn: str
    trust_policy: str
    max_session_duration: int


class Directory(Protocol):
    """The account's IAM state the exchange reads: OIDC providers and roles."""

    def provider(self, arn: str) -> OidcProvider | None: ...

    def role(self, name: str) -> Role | None: ...


class IamDirectory:
    """``Directory`` over moto's IAM API, signed with the administrator key."""

    def __init__(
        self, *, endpoint_url: str, region: str, admin: AdminCredentials, gate_secret: str
    ) -> None:
        session = isolated_session(
            region=region,
            access_key_id=admin.access_key_id,
            secret_access_key=admin.secret_access_key,
        )
        self._iam: IAMClient = admit(
            session.client("iam", endpoint_url=endpoint_url, config=client_config()), gate_secret
        )

    def provider(self, arn: str) -> OidcProvider | None:
        try:
            found = self._iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return None
            raise
        return OidcProvider(
            arn=arn, url=found.get("Url", ""), client_ids=tuple(found.get("ClientIDList", ()))
        )

    def role(self, name: str) -> Role | None:
        try:
            found = self._iam.get_role(RoleName=name)["Role"]
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return None
            raise
        # boto3 decodes IAM's URL-encoded policy JSON into a dict; the evaluator takes JSON text.
        document: object = found.get("AssumeRolePolicyDocument", "")
        policy = document if isinstance(document, str) else json.dumps(document)
        return Role(
            arn=found["Arn"],
            trust_policy=policy,
            max_session_duration=int(found.get("MaxSessionDuration", STS_DURATION_DEFAULT_SECONDS)),
        )


_V = TypeVar("_V")


class CachedDirectory:
    """A ``Directory`` that remembers its answers (absent entities included) until ``changed()``.

    Every change to IAM reaches moto through the gateway, which calls ``changed()`` once moto
    has answered such a request and before the client sees that answer: an exchange that starts
    after a client saw its change reads the new state, as it would from moto directly. A lookup
    that overlaps a change is answered but not kept. Without it, every exchange cost two more
    signed requests to moto (most of moto's and much of the gateway's time per exchange).
    """

    def __init__(
        self, directory: Directory, *, max_entries: int = GATEWAY_DIRECTORY_CACHE_MAX_ENTRIES
    ) -> None:
        self._directory = directory
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._generation = 0
        self._providers: dict[str, OidcProvider | None] = {}
        self._roles: dict[str, Role | None] = {}

    def changed(self) -> None:
        with self._lock:
            self._generation += 1
            self._providers.clear()
            self._roles.clear()

    def provider(self, arn: str) -> OidcProvider | None:
        return self._cached(self._providers, arn, self._directory.provider)

    def role(self, name: str) -> Role | None:
        return self._cached(self._roles, name, self._directory.role)

    def _cached(
        self, table: dict[str, _V | None], key: str, load: Callable[[str], _V | None]
    ) -> _V | None:
        with self._lock:
            if key in table:
                return table[key]
            generation = self._generation
        value = load(key)
        with self._lock:
            if generation == self._generation and len(table) < self._max_entries:
                table[key] = value
        return value


# --- the exchange, without HTTP -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AllowedExchange:
    """An exchange that passed every check; what moto is asked to mint and what is added."""

    role_arn: str
    session_name: str
    duration_seconds: int
    session_policy: str | None
    policy_arns: tuple[tuple[str, str], ...]
    provider_arn: str
    audience: str
    identity: Identity


class WebIdentityExchange:
    """The decision half of the gateway: STS's checks in STS's order, HTTP-free.

    ``decide`` returns an ``AllowedExchange`` or raises ``StsError``; it logs each decision with
    role, issuer, subject and the failing condition, never the token.
    """

    def __init__(
        self,
        *,
        account_id: str,
        directory: Directory,
        verify: TokenVerifier,
        evaluate: TrustEvaluator,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._account_id = account_id
        self._directory = directory
        self._verify = verify
        self._evaluate = evaluate
        self._clock = clock

    def decide(self, params: Mapping[str, str]) -> AllowedExchange:
        facts: dict[str, str] = {"role": params.get("RoleArn", "")}
        try:
            allowed = self._decide(params, facts)
        except StsError as refusal:
            logger.info(
                "deny AssumeRoleWithWebIdentity role=%r issuer=%r subject=%r error=%s reason=%r",
                facts.get("role"),
                facts.get("issuer"),
                facts.get("subject"),
                refusal.code,
                refusal.detail,
            )
            raise
        logger.info(
            "allow AssumeRoleWithWebIdentity role=%r issuer=%r subject=%r audience=%r session=%r",
            allowed.role_arn,
            allowed.identity.issuer,
            allowed.identity.subject,
            allowed.audience,
            allowed.session_name,
        )
        return allowed

    def _decide(self, params: Mapping[str, str], facts: dict[str, str]) -> AllowedExchange:
        request = parse_request(params)
        claims, algorithm = _peek(request.token)
        issuer = claims.get("iss")
        subject = claims.get("sub")
        facts["issuer"] = issuer if isinstance(issuer, str) else ""
        facts["subject"] = f"{subject} (unverified)" if isinstance(subject, str) else ""
        # The algorithms STS accepts are the ones keyless accepts (keyless.tokens.jwks).
        if algorithm not in ALLOWED_ALGORITHMS:
            raise invalid_token(
                CHECK_MESSAGES["algorithm"], f"algorithm {algorithm[:20]!r} is not accepted"
            )
        if not isinstance(issuer, str) or not issuer:
            raise invalid_token(UNPARSABLE, "the token has no 'iss' claim")

        target = arns.role(request.role_arn)
        assert target is not None  # noqa: S101 - parse_request checked the ARN
        provider = self._provider(issuer, target)

        audiences = token_audiences(claims.get("aud"))
        audience = next((aud for aud in audiences if aud in provider.client_ids), None)
        if audience is None:
            raise invalid_token(
                CHECK_MESSAGES["audience"],
                f"aud {list(audiences)!r} is not among the client IDs"
                f" {list(provider.client_ids)!r}",
            )

        identity = self._verified(request.token, issuer=issuer, audience=audience, claims=claims)
        facts["subject"] = identity.subject
        # Belt and braces: the verified audience must still be one the provider lists.
        if audience not in identity.audience:
            raise invalid_token(CHECK_MESSAGES["audience"], "verified aud lacks the audience")

        role = None
        if target.account == self._account_id:
            role = self._lookup(lambda: self._directory.role(target.name))
        if role is None or role.arn != request.role_arn:
            raise access_denied("no such role in the account")
        try:
            answer = self._evaluate(
                TrustQuestion(
                    role_arn=role.arn,
                    policy=role.trust_policy,
                    provider_arn=provider.arn,
                    identity=identity,
                )
            )
        except KeylessError as exc:
            # A policy keyless cannot evaluate grants nothing.
            raise access_denied(f"trust policy not evaluable: {exc.message}") from exc
        if not answer.allowed:
            raise access_denied(answer.reason)

        duration = request.duration_seconds or STS_DURATION_DEFAULT_SECONDS
        if duration > role.max_session_duration:
            raise StsError(
                "ValidationError",
                400,
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
                detail=f"{duration} s > MaxSessionDuration {role.max_session_duration} s",
            )
        return AllowedExchange(
            role_arn=role.arn,
            session_name=request.session_name,
            duration_seconds=duration,
            session_policy=request.session_policy,
            policy_arns=request.policy_arns,
            provider_arn=provider.arn,
            audience=audience,
            identity=identity,
        )

    def _provider(self, issuer: str, target: arns.Role) -> OidcProvider:
        """The IAM OIDC provider of ``issuer`` in the role's account. STS looks it up by the
        issuer minus its scheme; an issuer that is not https cannot be registered, so it never
        matches."""
        provider = None
        if issuer.startswith("https://"):
            provider_arn = (
                f"arn:{target.partition}:iam::{target.account}:oidc-provider/"
                f"{issuer.removeprefix('https://')}"
            )
            provider = self._lookup(lambda: self._directory.provider(provider_arn))
        if provider is None:
            raise invalid_token(f"No OpenIDConnect provider found in your account for {issuer}")
        return provider

    def _verified(
        self, token: str, *, issuer: str, audience: str, claims: Mapping[str, object]
    ) -> Identity:
        try:
            return self._verify(token, issuer=issuer, audience=audience)
        except TokenVerificationError as exc:
            if exc.check == "expired":
                exp = claims.get("exp")
                raise StsError(
                    "ExpiredTokenException",
                    400,
                    f"Token expired: current date/time {int(self._clock())} must be before the"
                    f" expiration date/time {exp}",
                    detail=exc.message,
                ) from exc
            message = CHECK_MESSAGES.get(exc.check, UNPARSABLE)
            raise invalid_token(message, f"{exc.check}: {exc.message}") from exc
        except IssuerError as exc:
            if isinstance(exc.__cause__, NetworkError):
                # Transient by STS's definition: botocore retries IDPCommunicationError itself.
                raise StsError(
                    "IDPCommunicationError", 400, IDP_UNREACHABLE, detail=exc.message
                ) from exc
            raise invalid_token(CHECK_MESSAGES["kid"], exc.message) from exc
        except NetworkError as exc:
            raise StsError(
                "IDPCommunicationError", 400, IDP_UNREACHABLE, detail=exc.message
            ) from exc
        except TokenError as exc:
            raise invalid_token(UNPARSABLE, exc.message) from exc

    @staticmethod
    def _lookup(call: Callable[[], _T]) -> _T:
        try:
            return call()
        except (ClientError, BotoCoreError) as exc:
            raise StsError(
                "InternalFailure",
                500,
                "The request processing has failed.",
                detail=str(exc),
                sender=False,
            ) from exc


def _peek(token: str) -> tuple[Mapping[str, object], str]:
    """The token's claims and header ``alg``, UNVERIFIED: enough to find the provider."""
    try:
        peeked = peek(token)
    except KeylessError as exc:
        raise invalid_token(UNPARSABLE, exc.message) from exc
    return peeked.claims, peeked.algorithm


# --- the production seams -------------------------------------------------------------------------


class TokensVerifier:
    """``TokenVerifier`` on ``keyless.tokens.verify``, with one key cache per gateway.

    The local issuers are on loopback and ours, so an unknown ``kid`` refetches the key set at
    once (a rotation shows on the next exchange), but at most once per issuer per
    ``GATEWAY_JWKS_REFRESH_MIN_INTERVAL_SECONDS``, one fetch in flight per issuer, and each fetch
    (discovery and key set) ends by one deadline (``keyless.local.keysets``).
    """

    def __init__(
        self,
        *,
        ca_bundle: Path | None,
        leeway: float = STS_CLOCK_SKEW_SECONDS,
        cache: JwksCache | None = None,
    ) -> None:
        self._http = DeadlineHttpClient(ca_bundle=ca_bundle)
        self._cache = cache or GatewayKeyCache(fetch=deadline_fetcher(self._http))
        self._leeway = leeway

    def __call__(self, token: str, *, issuer: str, audience: str) -> Identity:
        verified = verify(
            token,
            issuer=issuer,
            audience=audience,
            http=self._http,
            leeway=self._leeway,
            cache=self._cache,
        )
        return Identity(
            issuer=verified.issuer,
            subject=verified.subject,
            audience=verified.audience,
            expires_at=verified.expires_at,
            claims={name: thaw(value) for name, value in verified.claims.items()},
            evidence=verified,
        )


def trust_evaluator(question: TrustQuestion) -> TrustAnswer:
    """``TrustEvaluator`` on ``keyless.trust.evaluate``: the role's trust policy as IAM reads it,
    with the condition keys AWS exposes for the token's issuer. Anything short of an allow
    (implicit or explicit deny, an undecidable condition) refuses."""
    evaluation = evaluate_trust(
        loads_policy(question.policy),
        TrustRequest(
            issuer=question.identity.issuer,
            claims=question.identity.claims,
            provider_arn=question.provider_arn,
        ),
    )
    return TrustAnswer(allowed=evaluation.allowed, reason=evaluation.reason)
