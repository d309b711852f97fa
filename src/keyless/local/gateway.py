"""The local stack's AWS endpoint: ``AssumeRoleWithWebIdentity`` enforced as STS does it, in
front of moto; every other signed request is relayed to moto byte for byte.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit
from xml.sax.saxutils import escape

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from keyless.errors import (
    IssuerError,
    KeylessError,
    NetworkError,
    TokenError,
    TokenVerificationError,
)
from keyless.limits import HTTP_TIMEOUT_SECONDS, TOKEN_MAX_CHARS
from keyless.local.bounded_server import BoundedHTTPServer
from keyless.local.keysets import DeadlineHttpClient, GatewayKeyCache, deadline_fetcher
from keyless.local.moto_server import (
    GATE_HEADER,
    LOOPBACK,
    AdminCredentials,
    LocalStackError,
    admit,
    client_config,
    isolated_session,
)
from keyless.tokens import JwksCache, peek, thaw, verify
from keyless.trust.evaluate import Request as TrustRequest
from keyless.trust.evaluate import evaluate as evaluate_trust
from keyless.trust.model import loads_policy

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

__all__ = [
    "AllowedExchange",
    "Directory",
    "IamDirectory",
    "Identity",
    "OidcProvider",
    "Role",
    "StsError",
    "StsGateway",
    "TokenVerifier",
    "TrustAnswer",
    "TrustEvaluator",
    "TrustQuestion",
    "WebIdentityExchange",
    "trust_evaluator",
]

logger = logging.getLogger(__name__)

# --- STS rules (botocore's STS model and the API reference, docs/aws-sts-iam.md#sts-parameters) ---

STS_NAMESPACE: Final = "https://sts.amazonaws.com/doc/2011-06-15/"
STS_API_VERSION: Final = "2011-06-15"
TOKEN_MIN_CHARS: Final = 4
ROLE_ARN_MIN_CHARS: Final = 20
ROLE_ARN_MAX_CHARS: Final = 2048
SESSION_NAME_MIN_CHARS: Final = 2
SESSION_NAME_MAX_CHARS: Final = 64
#: Java's ``\w`` as STS applies it: ASCII letters, digits and underscore.
SESSION_NAME_PATTERN: Final = re.compile(r"[\w+=,.@-]*", re.ASCII)
DURATION_MIN_SECONDS: Final = 900
DURATION_MAX_SECONDS: Final = 43_200
DURATION_DEFAULT_SECONDS: Final = 3600
#: Session policy (``Policy``) length limits.
SESSION_POLICY_MAX_CHARS: Final = 2048
#: Clock skew allowed on ``exp``/``nbf``/``iat``. AWS does not publish the figure it applies to
#: web identity tokens; 5 minutes is the skew it documents for signed requests (SigV4), the
#: closest published number.
STS_CLOCK_SKEW_SECONDS: Final = 300
#: Signature algorithms STS accepts for web identity tokens.
STS_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"})
_ROLE_ARN: Final = re.compile(
    r"arn:aws:iam::(?P<account>\d{12}):role/(?:[\w+=,.@/-]*/)?(?P<name>[\w+=,.@-]{1,64})", re.ASCII
)

# --- the gateway's own limits ---------------------------------------------------------------------

#: Bodies of requests to "/" (the query-protocol APIs: STS, IAM) are read whole and inspected;
#: a real STS or IAM request is a few kilobytes.
QUERY_API_MAX_BODY_BYTES: Final = 1_048_576
#: A response whose length moto does not announce is read whole before it is relayed.
UNSIZED_RESPONSE_MAX_BYTES: Final = 64 * 1_048_576
#: Seconds an idle client connection is kept open.
GATEWAY_IDLE_TIMEOUT_SECONDS: Final = 60.0
#: Seconds ``stop()`` waits for the serving thread.
GATEWAY_STOP_TIMEOUT_SECONDS: Final = 10.0
#: Size of one relayed piece of a body.
RELAY_CHUNK_BYTES: Final = 65_536
#: Longest chunk-size or trailer line accepted in a chunked request body.
CHUNK_LINE_MAX_BYTES: Final = 4096

#: Connection-level headers that describe one hop, not the message (RFC 9110 §7.6.1).
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

_ACTION: Final = "AssumeRoleWithWebIdentity"
_T = TypeVar("_T")

_ACCESS_KEY_ID: Final = re.compile(rb"<AccessKeyId>([A-Z0-9]{16,128})</AccessKeyId>")
_EXPIRATION: Final = re.compile(rb"<Expiration>[^<]{1,64}</Expiration>")
#: The access key id in a SigV4 Authorization header: ``Credential=AKID/DATE/REGION/...``.
_CREDENTIAL_KEY: Final = re.compile(r"Credential=([A-Z0-9]{16,128})/")


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
            if _error_code(exc) == "NoSuchEntity":
                return None
            raise
        return OidcProvider(
            arn=arn, url=found.get("Url", ""), client_ids=tuple(found.get("ClientIDList", ()))
        )

    def role(self, name: str) -> Role | None:
        try:
            found = self._iam.get_role(RoleName=name)["Role"]
        except ClientError as exc:
            if _error_code(exc) == "NoSuchEntity":
                return None
            raise
        # boto3 decodes IAM's URL-encoded policy JSON into a dict; the evaluator takes JSON text.
        document: object = found.get("AssumeRolePolicyDocument", "")
        policy = document if isinstance(document, str) else json.dumps(document)
        return Role(
            arn=found["Arn"],
            trust_policy=policy,
            max_session_duration=int(found.get("MaxSessionDuration", DURATION_DEFAULT_SECONDS)),
        )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# --- the exchange, without HTTP -----------------------------------------------------------------


class StsError(Exception):
    """An STS error response: ``code``, HTTP ``status`` and ``message`` exactly as STS sends them.
    ``detail`` (not sent) says why, for the log."""

    def __init__(
        self, code: str, status: int, message: str, *, detail: str = "", sender: bool = True
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status
        self.message = message
        self.detail = detail or message
        self.fault_type = "Sender" if sender else "Receiver"


def _invalid_token(message: str, detail: str = "") -> StsError:
    return StsError("InvalidIdentityToken", 400, message, detail=detail)


def _access_denied(detail: str) -> StsError:
    return StsError(
        "AccessDenied",
        403,
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        detail=detail,
    )


#: STS's messages for the checks a verifier reports (``TokenVerificationError.check``).
_CHECK_MESSAGES: Final = {
    "audience": "Incorrect token audience",
    "signature": "Signature validation failed",
    "algorithm": "Unsupported signing algorithm",
    "kid": "Couldn't retrieve verification key from your identity provider,  please reference "
    "AssumeRoleWithWebIdentity documentation for requirements",
    "issuer": "Issuer in the token does not match the provider",
    "not-yet-valid": "Token is not valid yet",
    "issued-at": "Token issued in the future",
    "missing-claim": "Token is missing a required claim",
}
_UNPARSABLE: Final = "Couldn't parse the token"
_IDP_UNREACHABLE: Final = (
    "The identity provider could not be reached to verify the token; retry the request"
)


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


@dataclass(frozen=True, slots=True, kw_only=True)
class _Request:
    role_arn: str
    session_name: str
    token: str
    duration_seconds: int | None
    session_policy: str | None
    policy_arns: tuple[tuple[str, str], ...]


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
        request = _parse_request(params)
        claims, algorithm = _peek(request.token)
        issuer = claims.get("iss")
        subject = claims.get("sub")
        facts["issuer"] = issuer if isinstance(issuer, str) else ""
        facts["subject"] = f"{subject} (unverified)" if isinstance(subject, str) else ""
        if algorithm not in STS_ALGORITHMS:
            raise _invalid_token(
                _CHECK_MESSAGES["algorithm"], f"algorithm {algorithm[:20]!r} is not accepted"
            )
        if not isinstance(issuer, str) or not issuer:
            raise _invalid_token(_UNPARSABLE, "the token has no 'iss' claim")

        # STS looks the provider up in the role's account by the issuer minus its scheme; an
        # issuer that is not https cannot be registered, so it never matches.
        account = _ROLE_ARN.fullmatch(request.role_arn)
        assert account is not None  # noqa: S101 - _parse_request checked the ARN
        provider = None
        if issuer.startswith("https://"):
            provider_arn = (
                f"arn:aws:iam::{account['account']}:oidc-provider/{issuer.removeprefix('https://')}"
            )
            provider = self._lookup(lambda: self._directory.provider(provider_arn))
        if provider is None:
            raise _invalid_token(f"No OpenIDConnect provider found in your account for {issuer}")

        audiences = _audiences(claims.get("aud"))
        audience = next((aud for aud in audiences if aud in provider.client_ids), None)
        if audience is None:
            raise _invalid_token(
                _CHECK_MESSAGES["audience"],
                f"aud {list(audiences)!r} is not among the client IDs"
                f" {list(provider.client_ids)!r}",
            )

        identity = self._verified(request.token, issuer=issuer, audience=audience, claims=claims)
        facts["subject"] = identity.subject
        # Belt and braces: the verified audience must still be one the provider lists.
        if audience not in identity.audience:
            raise _invalid_token(_CHECK_MESSAGES["audience"], "verified aud lacks the audience")

        role = None
        if account["account"] == self._account_id:
            role = self._lookup(lambda: self._directory.role(account["name"]))
        if role is None or role.arn != request.role_arn:
            raise _access_denied("no such role in the account")
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
            raise _access_denied(f"trust policy not evaluable: {exc.message}") from exc
        if not answer.allowed:
            raise _access_denied(answer.reason)

        duration = request.duration_seconds or DURATION_DEFAULT_SECONDS
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
            message = _CHECK_MESSAGES.get(exc.check, _UNPARSABLE)
            raise _invalid_token(message, f"{exc.check}: {exc.message}") from exc
        except IssuerError as exc:
            if isinstance(exc.__cause__, NetworkError):
                # Transient by STS's definition: botocore retries IDPCommunicationError itself.
                raise StsError(
                    "IDPCommunicationError", 400, _IDP_UNREACHABLE, detail=exc.message
                ) from exc
            raise _invalid_token(_CHECK_MESSAGES["kid"], exc.message) from exc
        except NetworkError as exc:
            raise StsError(
                "IDPCommunicationError", 400, _IDP_UNREACHABLE, detail=exc.message
            ) from exc
        except TokenError as exc:
            raise _invalid_token(_UNPARSABLE, exc.message) from exc

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


def _parse_request(params: Mapping[str, str]) -> _Request:
    """STS's parameter validation, all violations at once, in STS's wording."""
    problems: list[str] = []
    role_arn = params.get("RoleArn")
    session_name = params.get("RoleSessionName")
    # botocore sends a token file verbatim, and STS accepts the trailing newline `echo` adds.
    token = params.get("WebIdentityToken")
    token = token.strip() if token is not None else None
    duration_text = params.get("DurationSeconds")
    policy = params.get("Policy")

    if role_arn is None:
        problems.append(_null("roleArn"))
    else:
        problems += _length("roleArn", role_arn, ROLE_ARN_MIN_CHARS, ROLE_ARN_MAX_CHARS)
    if session_name is None:
        problems.append(_null("roleSessionName"))
    else:
        problems += _length(
            "roleSessionName", session_name, SESSION_NAME_MIN_CHARS, SESSION_NAME_MAX_CHARS
        )
        if not SESSION_NAME_PATTERN.fullmatch(session_name):
            problems.append(
                f"Value '{_show(session_name)}' at 'roleSessionName' failed to satisfy constraint:"
                r" Member must satisfy regular expression pattern: [\w+=,.@-]*"
            )
    if token is None:
        problems.append(_null("webIdentityToken"))
    else:
        # The token is sensitive: STS names the member, never its value.
        problems += _length(
            "webIdentityToken", token, TOKEN_MIN_CHARS, TOKEN_MAX_CHARS, show_value=False
        )
    duration: int | None = None
    if duration_text is not None:
        try:
            duration = int(duration_text)
        except ValueError:
            problems.append(
                f"Value '{_show(duration_text)}' at 'durationSeconds' failed to satisfy"
                " constraint: Member must be an integer"
            )
        else:
            if duration < DURATION_MIN_SECONDS:
                problems.append(
                    f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint:"
                    f" Member must have value greater than or equal to {DURATION_MIN_SECONDS}"
                )
            elif duration > DURATION_MAX_SECONDS:
                problems.append(
                    f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint:"
                    f" Member must have value less than or equal to {DURATION_MAX_SECONDS}"
                )
    if policy is not None:
        problems += _length("policy", policy, 1, SESSION_POLICY_MAX_CHARS, show_value=False)
    if problems:
        count = len(problems)
        raise StsError(
            "ValidationError",
            400,
            f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems),
        )
    assert role_arn is not None  # noqa: S101 - each None was reported above
    assert session_name is not None  # noqa: S101
    assert token is not None  # noqa: S101
    if not _ROLE_ARN.fullmatch(role_arn):
        raise StsError("ValidationError", 400, "Request ARN is invalid")
    policy_arns = tuple(
        sorted((k, v) for k, v in params.items() if k.startswith("PolicyArns.member."))
    )
    return _Request(
        role_arn=role_arn,
        session_name=session_name,
        token=token,
        duration_seconds=duration,
        session_policy=policy,
        policy_arns=policy_arns,
    )


def _null(member: str) -> str:
    return f"Value null at '{member}' failed to satisfy constraint: Member must not be null"


def _length(member: str, value: str, low: int, high: int, *, show_value: bool = True) -> list[str]:
    shown = f"Value '{_show(value)}' at" if show_value else "Value at"
    if len(value) < low:
        return [
            f"{shown} '{member}' failed to satisfy constraint: Member must have length greater"
            f" than or equal to {low}"
        ]
    if len(value) > high:
        return [
            f"{shown} '{member}' failed to satisfy constraint: Member must have length less"
            f" than or equal to {high}"
        ]
    return []


def _show(value: str, limit: int = 100) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


def _peek(token: str) -> tuple[Mapping[str, object], str]:
    """The token's claims and header ``alg``, UNVERIFIED: enough to find the provider."""
    try:
        peeked = peek(token)
    except KeylessError as exc:
        raise _invalid_token(_UNPARSABLE, exc.message) from exc
    return peeked.claims, peeked.algorithm


def _audiences(aud: object) -> tuple[str, ...]:
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, Sequence):
        return tuple(a for a in aud if isinstance(a, str))
    return ()


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


# --- HTTP --------------------------------------------------------------------------------------


class _ClientGone(Exception):
    """The client closed its connection mid-request; nothing more can be sent to it."""


class StsGateway:
    """The gateway server on 127.0.0.1: a context manager that starts it in a background thread
    and, on exit, stops accepting, wakes idle connections and joins every thread it started."""

    def __init__(
        self,
        *,
        upstream_url: str,
        account_id: str,
        region: str,
        admin: AdminCredentials,
        gate_secret: str,
        verify: TokenVerifier | None = None,
        evaluate: TrustEvaluator | None = None,
        ca_bundle: Path | None = None,
        directory: Directory | None = None,
        port: int = 0,
        clock: Callable[[], float] = time.time,
        test_only_session_seconds: float | None = None,
    ) -> None:
        """``verify`` defaults to ``keyless.tokens.verify`` fetching JWKS over HTTPS that trusts
        ``ca_bundle`` (the local CA; the system store when None), ``evaluate`` to keyless' trust
        evaluator, ``directory`` to moto's IAM with the administrator key. ``gate_secret`` is
        what moto requires in ``GATE_HEADER`` (``MotoEndpoint.gate_secret``).

        ``test_only_session_seconds`` (tests of expiring credentials only): the sessions this
        gateway issues expire after that many seconds instead of their DurationSeconds (STS never
        issues one under 900 s). Only a constructor sets it, never a request."""
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise LocalStackError(f"upstream {upstream_url!r} is not http://HOST:PORT")
        self._upstream = (parts.hostname, parts.port)
        self._region = region
        self._admin = admin
        self.gate = (GATE_HEADER, gate_secret)
        self._exchange = WebIdentityExchange(
            account_id=account_id,
            directory=directory
            or IamDirectory(
                endpoint_url=upstream_url, region=region, admin=admin, gate_secret=gate_secret
            ),
            verify=verify or TokensVerifier(ca_bundle=ca_bundle),
            evaluate=evaluate or trust_evaluator,
            clock=clock,
        )
        self._port = port
        self._clock = clock
        self._test_only_session_seconds = test_only_session_seconds
        #: When each session this gateway issued expires, by access key id: AWS refuses a request
        #: signed with expired session credentials (ExpiredToken); moto does not.
        self._session_expiry: dict[str, float] = {}
        self._session_lock = threading.Lock()
        self._server: _GatewayServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise LocalStackError("the gateway is not running: call start() first")
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def start(self) -> str:
        if self._server is not None:
            raise LocalStackError("the gateway is already running")
        try:
            server = _GatewayServer((LOOPBACK, self._port), gateway=self)
        except OSError as exc:
            raise LocalStackError(f"cannot listen on {LOOPBACK}:{self._port}: {exc}") from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"keyless-gateway:{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.wake_idle_connections()
        server.server_close()  # joins the connection threads
        if thread is not None:
            thread.join(GATEWAY_STOP_TIMEOUT_SECONDS)

    def __enter__(self) -> StsGateway:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- used by the handler ---------------------------------------------------------------------

    def decide(self, params: Mapping[str, str]) -> AllowedExchange:
        return self._exchange.decide(params)

    def issued(self, allowed: AllowedExchange, body: bytes) -> bytes:
        """Remember when the session in moto's answer ``body`` expires; with short test-only
        sessions, the answer's ``Expiration`` is rewritten to match."""
        key = _ACCESS_KEY_ID.search(body)
        if key is None:
            return body
        lifetime = self._test_only_session_seconds or float(allowed.duration_seconds)
        expires = self._clock() + lifetime
        with self._session_lock:
            self._session_expiry[key.group(1).decode("ascii")] = expires
        if self._test_only_session_seconds is None:
            return body
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(expires))
        stamp += f".{int(expires % 1 * 1000):03d}Z"
        return _EXPIRATION.sub(f"<Expiration>{stamp}</Expiration>".encode(), body, count=1)

    def expired(self, authorization: str) -> bool:
        """Whether a request's Authorization header is signed with a session this gateway issued
        that has expired."""
        match = _CREDENTIAL_KEY.search(authorization)
        if match is None:
            return False
        with self._session_lock:
            expires = self._session_expiry.get(match.group(1))
        return expires is not None and self._clock() >= expires

    def upstream(self) -> http.client.HTTPConnection:
        host, port = self._upstream
        return http.client.HTTPConnection(host, port, timeout=HTTP_TIMEOUT_SECONDS)

    def signed_mint_request(self, allowed: AllowedExchange) -> tuple[bytes, list[tuple[str, str]]]:
        """The body and headers of moto's ``AssumeRoleWithWebIdentity``, signed by the
        administrator (moto with IAM auth on refuses it unsigned). The token is not sent: moto
        does not read it, and it need not travel further than this process."""
        fields: list[tuple[str, str]] = [
            ("Action", _ACTION),
            ("Version", STS_API_VERSION),
            ("RoleArn", allowed.role_arn),
            ("RoleSessionName", allowed.session_name),
            ("DurationSeconds", str(allowed.duration_seconds)),
        ]
        if allowed.session_policy is not None:
            fields.append(("Policy", allowed.session_policy))
        fields.extend(allowed.policy_arns)
        body = urlencode(fields).encode("ascii")
        host, port = self._upstream
        request = AWSRequest(
            method="POST",
            url=f"http://{host}:{port}/",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        credentials = Credentials(self._admin.access_key_id, self._admin.secret_access_key)
        SigV4Auth(credentials, "sts", self._region).add_auth(request)
        headers = [("Host", f"{host}:{port}")]
        headers += [(name, str(value)) for name, value in request.headers.items()]
        headers.append(("Content-Length", str(len(body))))
        return body, headers


class _GatewayServer(BoundedHTTPServer):
    """A bounded server (see ``keyless.local.bounded_server``) that can also wake every idle
    connection at once, for ``stop()``."""

    def __init__(self, address: tuple[str, int], *, gateway: StsGateway) -> None:
        self.gateway = gateway
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def wake_idle_connections(self) -> None:
        """End the wait of threads parked on idle keep-alive connections; a request in progress
        still gets its response (only the reading side is shut)."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = GATEWAY_IDLE_TIMEOUT_SECONDS
    server: _GatewayServer
    _upstream_connection: http.client.HTTPConnection | None = None
    _answered = False

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._upstream_connection is not None:
                self._upstream_connection.close()

    # After a first request, the wait for the next one is idle time: the server may close the
    # connection then to make room. (A new connection has not been idle: it is not closed.)
    def handle_one_request(self) -> None:
        if self._answered:
            self.server.idle(self.connection)
        try:
            super().handle_one_request()
        finally:
            self.server.busy(self.connection)
            self._answered = True

    def parse_request(self) -> bool:
        self.server.busy(self.connection)
        return super().parse_request()

    # The default log line holds the query string, which can carry a token or a session token.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s -> %s", self.command, self.path.split("?", 1)[0], code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("gateway: %s", format)

    def _dispatch(self) -> None:
        try:
            self._route()
        except _ClientGone:
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch

    def _route(self) -> None:
        target = self.path
        if not target.startswith("/"):
            self._send_error_xml(400, "InvalidRequest", "Only origin-form request targets")
            return
        raw_path, _, query = target.partition("?")
        path = unquote(raw_path)
        # moto's control API could switch authentication off or reset the account.
        if path.lstrip("/").startswith("moto-api"):
            logger.info("refused %s %s: moto's control API is not exposed", self.command, path)
            self._send_error_xml(
                403, "AccessDenied", "moto's control API is not reachable through the gateway"
            )
            return
        signed = "Authorization" in self.headers
        if signed and self.server.gateway.expired(self.headers["Authorization"]):
            self.close_connection = True  # its body stays unread
            # As AWS answers it: S3 (any path) 400, the query protocol (STS, IAM) 403.
            logger.info("refused %s %s: expired session credentials", self.command, path)
            if path.strip("/"):
                self._send_error_xml(400, "ExpiredToken", "The provided token has expired.")
            else:
                self._send_error_xml(
                    403, "ExpiredToken", "The security token included in the request is expired"
                )
            return
        if path.strip("/"):
            # Not a query-protocol request (those all go to "/"): relay, streaming the body.
            if not signed:
                self.close_connection = True  # its body stays unread
                self._refuse_unsigned(presigned=_presigned(query))
                return
            self._relay(body=None)
            return
        body = self._read_query_body()
        if body is None:
            return
        params = _params(query, body)
        guarded = _guarded_action(params.get("Action", []), self.headers.get("X-Amz-Target"))
        if guarded is None:
            if not signed:
                self._send_error_xml(
                    403, "MissingAuthenticationToken", "Request is missing Authentication Token"
                )
                return
            self._relay(body=body)
        elif guarded == _ACTION and set(params.get("Action", [])) == {_ACTION}:
            self._assume_role_with_web_identity(params)
        else:
            logger.info("refused %s: only the query protocol's %s is served", guarded, _ACTION)
            self._send_sts_error(
                StsError(
                    "InvalidAction",
                    400,
                    f"{guarded} is not available through the local stack's gateway",
                )
            )

    def _refuse_unsigned(self, *, presigned: bool) -> None:
        """Answer a request without an Authorization header as S3 does. moto with authentication
        on fails them with HTTP 500 (it reads the missing header); that includes presigned URLs,
        whose query-string signature it cannot check, so those are declared unsupported."""
        logger.info("refused unsigned %s %s", self.command, self.path.split("?", 1)[0])
        if presigned:
            status, code, message = (
                501,
                "NotImplemented",
                "Presigned URLs (query-string authentication) are not supported by the local stack",
            )
        else:
            status, code, message = 403, "AccessDenied", "Access Denied"
        request_id = str(uuid.uuid4())
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers = [("x-amz-request-id", request_id), ("Content-Type", "application/xml")]
        self._send(status, http.client.responses[status], headers, body)

    # --- AssumeRoleWithWebIdentity -----------------------------------------------------------

    def _assume_role_with_web_identity(self, params: Mapping[str, list[str]]) -> None:
        single: dict[str, str] = {}
        for name, values in params.items():
            if len(set(values)) > 1:
                self._send_sts_error(
                    StsError("ValidationError", 400, f"Parameter {name} is given more than once")
                )
                return
            single[name] = values[0]
        try:
            allowed = self.server.gateway.decide(single)
        except StsError as refusal:
            self._send_sts_error(refusal)
            return
        body, headers = self.server.gateway.signed_mint_request(allowed)
        try:
            status, reason, moto_headers, moto_body = self._exchange_upstream(
                "POST", "/", headers, body
            )
        except OSError as exc:
            logger.error("moto did not answer the mint request: %s", exc)
            self._send_sts_error(
                StsError("ServiceUnavailable", 503, "Service unavailable", sender=False)
            )
            return
        if status != 200:
            logger.error("moto refused to mint credentials (HTTP %d)", status)
            self._send(status, reason, _end_to_end(moto_headers), moto_body)
            return
        closing = f"</{_ACTION}Result>".encode()
        if moto_body.count(closing) != 1:
            logger.error("moto's %s response has an unexpected shape", _ACTION)
            self._send_sts_error(
                StsError("InternalFailure", 500, "The request processing has failed.", sender=False)
            )
            return
        extra = (
            f"<SubjectFromWebIdentityToken>{escape(allowed.identity.subject)}"
            "</SubjectFromWebIdentityToken>"
            f"<Provider>{escape(allowed.provider_arn)}</Provider>"
            f"<Audience>{escape(allowed.audience)}</Audience>"
        ).encode()
        enriched = self.server.gateway.issued(allowed, moto_body).replace(closing, extra + closing)
        headers_out = [
            (k, v) for k, v in _end_to_end(moto_headers) if k.lower() != "content-length"
        ]
        self._send(200, reason, headers_out, enriched)

    def _exchange_upstream(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """A buffered request to moto; retried once on a fresh connection if a kept-alive one
        turns out to be closed (nothing was processed then)."""
        for attempt in (1, 2):
            connection, reused = self._connection()
            try:
                _send_head(connection, method, target, headers, self.server.gateway.gate)
                connection.send(body)
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop_connection()
                if reused and attempt == 1:
                    continue
                raise
            except (OSError, http.client.HTTPException):
                self._drop_connection()
                raise
            if response.will_close:
                self._drop_connection()
            return response.status, response.reason, response.getheaders(), data
        raise AssertionError("unreachable")  # pragma: no cover

    # --- relaying ---------------------------------------------------------------------------------

    def _relay(self, *, body: bytes | None) -> None:
        """Send the client's request to moto as it came (method, raw target, headers in order,
        body), then its response back. ``body`` is the already-read body, or None to stream it."""
        headers = list(self.headers.items())
        try:
            if body is not None:
                status, reason, moto_headers, data = self._exchange_upstream(
                    self.command, self.path, headers, body
                )
                self._send(status, reason, _end_to_end(moto_headers), data)
                return
            connection, _ = self._connection()
            _send_head(connection, self.command, self.path, headers, self.server.gateway.gate)
            self._stream_request_body(connection)
            response = connection.getresponse()
        except _ClientGone:
            self._drop_connection()  # moto holds half a request on it
            raise
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            logger.error(
                "relay of %s %s to moto failed: %s", self.command, self.path.split("?")[0], exc
            )
            self._send_error_xml(502, "BadGateway", "moto did not answer")
            return
        self._stream_response(response)

    def _stream_request_body(self, connection: http.client.HTTPConnection) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            # Relay the chunked framing as it came: the client's signature may cover it.
            while True:
                line = self._read_line()
                connection.send(line)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, up to the empty line
                        trailer = self._read_line()
                        connection.send(trailer)
                        if trailer in (b"\r\n", b"\n"):
                            return
                self._copy(connection, size + 2)  # the data and its CRLF
        length = self._content_length()
        if length:
            self._copy(connection, length)

    def _stream_response(self, response: http.client.HTTPResponse) -> None:
        headers = _end_to_end(response.getheaders())
        bodiless = self.command == "HEAD" or response.status in (204, 304)
        try:
            if bodiless or (response.length is not None and not response.chunked):
                self._start_response(response.status, response.reason, headers)
                while not bodiless:
                    piece = response.read(RELAY_CHUNK_BYTES)
                    if not piece:
                        break
                    self._write(piece)
            else:
                data = response.read(UNSIZED_RESPONSE_MAX_BYTES + 1)
                if len(data) > UNSIZED_RESPONSE_MAX_BYTES:
                    raise http.client.HTTPException("unsized response too large to relay")
                self._send(response.status, response.reason, headers, data)
        except (OSError, http.client.HTTPException):
            self._drop_connection()
            self.close_connection = True
            return
        if response.will_close:
            self._drop_connection()

    # --- small I/O helpers ------------------------------------------------------------------------

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        if self._upstream_connection is not None:
            return self._upstream_connection, True
        self._upstream_connection = self.server.gateway.upstream()
        return self._upstream_connection, False

    def _drop_connection(self) -> None:
        if self._upstream_connection is not None:
            self._upstream_connection.close()
            self._upstream_connection = None

    def _content_length(self) -> int:
        value = self.headers.get("Content-Length", "0")
        try:
            length = int(value)
        except ValueError:
            length = -1
        if length < 0:
            self._send_error_xml(400, "InvalidRequest", "Content-Length is not a number")
            raise _ClientGone
        return length

    def _read_query_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding"):
            self._send_error_xml(411, "MissingContentLength", "Requests to / need a Content-Length")
            self.close_connection = True
            return None
        length = self._content_length()
        if length > QUERY_API_MAX_BODY_BYTES:
            self._send_error_xml(
                413, "RequestEntityTooLarge", f"Body larger than {QUERY_API_MAX_BODY_BYTES} bytes"
            )
            self.close_connection = True
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise _ClientGone
        return body

    def _read_line(self) -> bytes:
        line = self.rfile.readline(CHUNK_LINE_MAX_BYTES + 1)
        if not line or len(line) > CHUNK_LINE_MAX_BYTES:
            raise _ClientGone
        return line

    def _copy(self, connection: http.client.HTTPConnection, length: int) -> None:
        remaining = length
        while remaining:
            piece = self.rfile.read(min(RELAY_CHUNK_BYTES, remaining))
            if not piece:
                raise _ClientGone
            connection.send(piece)
            remaining -= len(piece)

    def _start_response(self, status: int, reason: str, headers: Iterable[tuple[str, str]]) -> None:
        try:
            self.send_response_only(status, reason)
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
        except OSError as exc:
            raise _ClientGone from exc
        self.log_request(status)

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except OSError as exc:
            raise _ClientGone from exc

    def _send(
        self, status: int, reason: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> None:
        if self.command == "HEAD" or status in (204, 304):
            self._start_response(status, reason, headers)  # moto's Content-Length, no body
            return
        out = [(k, v) for k, v in headers if k.lower() != "content-length"]
        out.append(("Content-Length", str(len(body))))
        self._start_response(status, reason, out)
        if body:
            self._write(body)

    def _send_sts_error(self, error: StsError) -> None:
        request_id = str(uuid.uuid4())
        body = (
            f'<ErrorResponse xmlns="{STS_NAMESPACE}">\n'
            "  <Error>\n"
            f"    <Type>{error.fault_type}</Type>\n"
            f"    <Code>{escape(error.code)}</Code>\n"
            f"    <Message>{escape(error.message)}</Message>\n"
            "  </Error>\n"
            f"  <RequestId>{request_id}</RequestId>\n"
            "</ErrorResponse>\n"
        ).encode()
        headers = [("x-amzn-RequestId", request_id), ("Content-Type", "text/xml")]
        self._send(error.status, http.client.responses.get(error.status, ""), headers, body)

    def _send_error_xml(self, status: int, code: str, message: str) -> None:
        self._send_sts_error(StsError(code, status, message, sender=status < 500))


def _send_head(
    connection: http.client.HTTPConnection,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    gate: tuple[str, str],
) -> None:
    # Host and Accept-Encoding come from the client's own headers, unchanged: SigV4 signs Host.
    connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    for name, value in headers:
        # A client's own copy of the gate header (in any spelling WSGI folds into the same
        # variable) is dropped: only the gateway's value reaches moto.
        if _header_key(name) != _header_key(gate[0]):
            connection.putheader(name, value)
    connection.putheader(*gate)
    connection.endheaders()


def _header_key(name: str) -> str:
    """The WSGI environ spelling of a header name: case and ``-``/``_`` folded together."""
    return name.strip().upper().replace("-", "_")


def _end_to_end(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]


def _presigned(query: str) -> bool:
    """Whether the query string carries a signature (a presigned URL, SigV4 or SigV2)."""
    return any(
        name in ("X-Amz-Signature", "Signature")
        for name, _ in parse_qsl(query, keep_blank_values=True)
    )


def _params(query: str, body: bytes) -> dict[str, list[str]]:
    """Parameters from the query string and a form body, as moto would merge them."""
    params: dict[str, list[str]] = {}
    sources = [query]
    if body:
        sources.append(body.decode("utf-8", errors="replace"))
    for source in sources:
        for name, value in parse_qsl(source, keep_blank_values=True):
            params.setdefault(name, []).append(value)
    return params


def _guarded_action(actions: Sequence[str], target: str | None) -> str | None:
    """The STS federation action a request names in any spelling moto would dispatch, or None.

    moto turns ``Action`` (or an ``X-Amz-Target`` suffix) into a method name case-insensitively,
    and its ``AssumeRoleWithWebIdentity``/``AssumeRoleWithSAML`` mint credentials for any role
    without checking a token or an assertion, so every spelling must stop here.
    """
    names = list(actions)
    if target:
        names.append(target.rsplit(".", 1)[-1])
    for name in names:
        letters = re.sub(r"[^a-z]", "", name.lower())
        if letters == "assumerolewithwebidentity":
            return name if name == _ACTION else f"{_ACTION} (spelled {_show(name, 40)!r})"
        if letters == "assumerolewithsaml":
            return "AssumeRoleWithSAML"
    return None
