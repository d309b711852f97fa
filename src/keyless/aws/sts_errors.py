"""STS's answers as keyless errors: which error codes are worth a retry, and each failure turned
into one line naming the role and STS's code, with what to do about it. Nothing a request sent
(token, keys) is ever quoted.

The failures come from either client: the Query client's (``keyless.aws.sts_query``) or
botocore's. botocore's classes are looked at only once botocore is loaded; until then none of its
exceptions can exist, and the exchange starts without it.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any, Final, cast

from keyless.aws.errors import error_code, error_message, http_status
from keyless.aws.sts_query import StsAnswerError, StsTransportError, StsUnreadableError
from keyless.errors import AccessDeniedError, AwsError, KeylessError, NetworkError
from keyless.limits import STS_MESSAGE_MAX_CHARS

__all__ = [
    "RETRYABLE_CODES",
    "TERMINAL_CODES",
    "StsAccessDeniedError",
    "StsApiError",
    "convert",
    "failures",
    "retry_reason",
]

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

# Anything token-shaped: STS does not echo tokens, but a message must never carry one.
_JWT_ANYWHERE: Final = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*")


# Error codes a retry cannot fix: the token, the trust policy or the request must change first
# (docs/aws-sts-iam.md#sts-errors, #sts-retry). Everything not listed under retryable is terminal
# too.
TERMINAL_CODES: Final = frozenset(
    {
        "AccessDenied",
        "ExpiredTokenException",
        "IDPRejectedClaim",
        "InvalidIdentityToken",
        "InvalidParameterValue",
        "MalformedPolicyDocument",
        "PackedPolicyTooLarge",
        "RegionDisabledException",
        "ValidationError",
    }
)
# STS says IDPCommunicationError is transient ("retry the request", STS API reference); the
# throttling codes are botocore's standard-mode list (botocore/retries/standard.py).
RETRYABLE_CODES: Final = frozenset(
    {
        "IDPCommunicationError",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
    }
)


class StsAccessDeniedError(AccessDeniedError):
    """STS answered ``AccessDenied``; ``code`` and ``sts_message`` keep what it said."""

    def __init__(self, message: str, *, code: str, sts_message: str, remedy: str | None) -> None:
        super().__init__(message, remedy=remedy)
        self.code = code
        self.sts_message = sts_message


class StsApiError(AwsError):
    """STS answered another error code (``code``, ``sts_message``), after any retries."""

    def __init__(self, message: str, *, code: str, sts_message: str, remedy: str | None) -> None:
        super().__init__(message, remedy=remedy)
        self.code = code
        self.sts_message = sts_message


_QUERY_FAILURES: Final = (StsAnswerError, StsTransportError, StsUnreadableError)


def failures() -> tuple[type[Exception], ...]:
    """The exception classes an STS call can fail with that ``convert`` turns into keyless'."""
    botocore = _botocore()
    if botocore is None:
        return _QUERY_FAILURES
    exceptions, parsers = botocore
    return (
        *_QUERY_FAILURES,
        exceptions.ClientError,
        exceptions.BotoCoreError,
        parsers.ResponseParserError,
    )


def _botocore() -> tuple[Any, Any] | None:
    """``botocore.exceptions`` and ``botocore.parsers`` if botocore is loaded, else ``None``."""
    if "botocore.exceptions" not in sys.modules:
        return None
    from botocore import exceptions, parsers

    return exceptions, parsers


def _kind(exc: Exception) -> tuple[str, str | None, int]:
    """What ``exc`` is: ``("answer", code, status)``, ``("transport", name, 0)``,
    ``("unreadable", None, 0)``, ``("no-credentials", None, 0)`` or ``("other", None, 0)``."""
    if isinstance(exc, StsAnswerError):
        return "answer", exc.code or "Unknown", exc.status
    if isinstance(exc, StsTransportError):
        return "transport", exc.name, 0
    if isinstance(exc, StsUnreadableError):
        return "unreadable", None, 0
    botocore = _botocore()
    if botocore is None:
        return "other", None, 0
    exceptions, parsers = botocore
    if isinstance(exc, exceptions.ClientError):
        return "answer", error_code(exc) or "Unknown", http_status(exc) or 0
    if isinstance(exc, exceptions.ConnectionError | exceptions.HTTPClientError):
        return "transport", type(exc).__name__, 0
    if isinstance(exc, parsers.ResponseParserError):
        # An answer cut short or garbled in transit (not a botocore error class: it escaped).
        return "unreadable", None, 0
    if isinstance(exc, exceptions.NoCredentialsError):
        return "no-credentials", None, 0
    return "other", None, 0


def retry_reason(exc: Exception) -> str | None:
    """Why ``exc`` is worth another attempt, or ``None`` when it is terminal."""
    kind, name, status = _kind(exc)
    if kind == "answer":
        if name in TERMINAL_CODES:
            return None
        if name in RETRYABLE_CODES:
            return name
        return f"HTTP {status}" if status >= 500 else None
    if kind == "transport":
        return name
    if kind == "unreadable":
        return "unreadable answer"
    return None


def _message(exc: Exception, secrets: tuple[str, ...]) -> str:
    if isinstance(exc, StsAnswerError):
        text = " ".join(exc.message.split())
    else:
        text = error_message(cast("ClientError", exc))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return _JWT_ANYWHERE.sub("<redacted>", text)[:STS_MESSAGE_MAX_CHARS]


_DOCTOR = "Run `keyless doctor --role-arn {role}` in the same step for a claim-by-claim diagnosis."


def _remedy(code: str, message: str, *, operation: str, role: str) -> str:
    doctor = _DOCTOR.format(role=role)
    if code == "AccessDenied" and operation == "AssumeRoleWithWebIdentity":
        return (
            "The role's trust policy does not admit this token (its `sub` or `aud` does not match a"
            " condition, the Federated principal names another provider, or the role does not"
            f" exist).\n{doctor}"
        )
    if code == "AccessDenied":
        return (
            "The credentials may not sts:AssumeRole this role: its trust policy must name the"
            " first role (and allow sts:TagSession if tags pass), and the first role's"
            " permissions must allow sts:AssumeRole on it."
        )
    if code == "InvalidIdentityToken" and "provider" in message.lower():
        return (
            "Register the token's issuer as an IAM OIDC identity provider in the role's account,"
            f" with the token's audience as a client ID (keyless provision does both).\n{doctor}"
        )
    if code == "InvalidIdentityToken" and "audience" in message.lower():
        return (
            "The token's `aud` is not a client ID of the IAM OIDC provider. Add it to the"
            " provider, or request the audience the provider lists (--audience; Bitbucket and"
            f" GitLab set it in the pipeline's YAML).\n{doctor}"
        )
    if code == "InvalidIdentityToken":
        return f"STS could not validate the token.\n{doctor}"
    if code in ("ExpiredTokenException", "IDPRejectedClaim"):
        return (
            "The token expired or was refused before STS accepted it: get a fresh token right"
            " before the exchange (re-run the step; Bitbucket's token lives as long as its step)."
        )
    if code in ("MalformedPolicyDocument", "PackedPolicyTooLarge"):
        return (
            "Fix or shorten the session policy (--session-policy FILE), or pass fewer"
            " --session-policy-arn."
        )
    if code == "ValidationError":
        return (
            "Check --duration against the role's MaxSessionDuration (1 hour unless raised) and"
            " the other request values."
        )
    if code == "RegionDisabledException":
        return "Activate STS in this region (IAM account settings) or pass another --region."
    return "If this persists, check the AWS Health Dashboard and re-run the step."


def convert(
    exc: Exception,
    *,
    operation: str,
    role: str,
    attempts: int,
    secrets: tuple[str, ...],
) -> KeylessError:
    """``exc`` (from ``operation`` on ``role``, after ``attempts``) as keyless' error: STS's code
    and message with ``secrets`` and anything token-shaped redacted, and what to do about it."""
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    kind, name, _status = _kind(exc)
    if kind == "answer":
        code = name or "Unknown"
        message = _message(exc, secrets)
        text = f"STS {operation} for {role} failed{tries}: {code}: {message}"
        remedy = _remedy(code, message, operation=operation, role=role)
        if code == "AccessDenied":
            return StsAccessDeniedError(text, code=code, sts_message=message, remedy=remedy)
        return StsApiError(text, code=code, sts_message=message, remedy=remedy)
    if kind == "transport":
        # Both clients' messages for these name the endpoint URL and the failure, nothing sent.
        detail = exc.detail if isinstance(exc, StsTransportError) else str(exc)
        detail = " ".join(detail.split())[:STS_MESSAGE_MAX_CHARS]
        return NetworkError(
            f"STS {operation} for {role} failed{tries}: {name}: {detail}",
            remedy="Check the network, proxy settings (HTTPS_PROXY) and AWS_ENDPOINT_URL(_STS).",
        )
    if kind == "unreadable":
        # botocore's text quotes the raw answer; only the fact is kept (the same words for
        # either client, botocore's class name included: it is what users have been shown).
        return NetworkError(
            f"STS {operation} for {role} failed{tries}: the answer could not be read"
            " (ResponseParserError: cut short or garbled in transit)",
            remedy="Check the network, proxy settings (HTTPS_PROXY) and AWS_ENDPOINT_URL(_STS).",
        )
    if kind == "no-credentials":
        return AwsError(f"STS {operation} for {role}: no AWS credentials to sign it")
    # Other botocore errors (parameter validation, ...) can quote request values: name the type.
    return AwsError(f"STS {operation} for {role} failed: {type(exc).__name__}")
