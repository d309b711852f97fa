"""STS's wire format for ``AssumeRoleWithWebIdentity``: its parameters and their validation in
STS's wording, its error codes and error document, what its answer holds beyond moto's, and the
spellings of the federation actions the gateway must stop.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from keyless import arn as arns
from keyless.limits import (
    STS_DURATION_MAX_SECONDS,
    STS_DURATION_MIN_SECONDS,
    STS_ROLE_ARN_MAX_CHARS,
    STS_ROLE_ARN_MIN_CHARS,
    STS_SESSION_NAME_MAX_CHARS,
    STS_SESSION_NAME_MIN_CHARS,
    STS_SESSION_POLICY_MAX_CHARS,
    STS_TOKEN_MIN_CHARS,
    TOKEN_MAX_CHARS,
)

# --- STS rules (botocore's STS model and the API reference, docs/aws-sts-iam.md#sts-parameters) ---

STS_NAMESPACE: Final = "https://sts.amazonaws.com/doc/2011-06-15/"
STS_API_VERSION: Final = "2011-06-15"
#: Java's ``\w`` as STS applies it: ASCII letters, digits and underscore.
SESSION_NAME_PATTERN: Final = re.compile(r"[\w+=,.@-]*", re.ASCII)

ACTION: Final = "AssumeRoleWithWebIdentity"


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


def invalid_token(message: str, detail: str = "") -> StsError:
    return StsError("InvalidIdentityToken", 400, message, detail=detail)


def access_denied(detail: str) -> StsError:
    return StsError(
        "AccessDenied",
        403,
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        detail=detail,
    )


#: STS's messages for the checks a verifier reports (``TokenVerificationError.check``).
CHECK_MESSAGES: Final = {
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
UNPARSABLE: Final = "Couldn't parse the token"
IDP_UNREACHABLE: Final = (
    "The identity provider could not be reached to verify the token; retry the request"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class WebIdentityRequest:
    role_arn: str
    session_name: str
    token: str
    duration_seconds: int | None
    session_policy: str | None
    policy_arns: tuple[tuple[str, str], ...]


def parse_request(params: Mapping[str, str]) -> WebIdentityRequest:
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
        problems += _length("roleArn", role_arn, STS_ROLE_ARN_MIN_CHARS, STS_ROLE_ARN_MAX_CHARS)
    if session_name is None:
        problems.append(_null("roleSessionName"))
    else:
        problems += _length(
            "roleSessionName", session_name, STS_SESSION_NAME_MIN_CHARS, STS_SESSION_NAME_MAX_CHARS
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
            "webIdentityToken", token, STS_TOKEN_MIN_CHARS, TOKEN_MAX_CHARS, show_value=False
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
            if duration < STS_DURATION_MIN_SECONDS:
                problems.append(
                    f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint:"
                    f" Member must have value greater than or equal to {STS_DURATION_MIN_SECONDS}"
                )
            elif duration > STS_DURATION_MAX_SECONDS:
                problems.append(
                    f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint:"
                    f" Member must have value less than or equal to {STS_DURATION_MAX_SECONDS}"
                )
    if policy is not None:
        problems += _length("policy", policy, 1, STS_SESSION_POLICY_MAX_CHARS, show_value=False)
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
    if arns.role(role_arn) is None:
        raise StsError("ValidationError", 400, "Request ARN is invalid")
    policy_arns = tuple(
        sorted((k, v) for k, v in params.items() if k.startswith("PolicyArns.member."))
    )
    return WebIdentityRequest(
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


def query_parameters(query: str, body: bytes) -> dict[str, list[str]]:
    """Parameters from the query string and a form body, as moto would merge them."""
    params: dict[str, list[str]] = {}
    sources = [query]
    if body:
        sources.append(body.decode("utf-8", errors="replace"))
    for source in sources:
        for name, value in parse_qsl(source, keep_blank_values=True):
            params.setdefault(name, []).append(value)
    return params


def guarded_action(actions: Sequence[str], target: str | None) -> str | None:
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
            return name if name == ACTION else f"{ACTION} (spelled {_show(name, 40)!r})"
        if letters == "assumerolewithsaml":
            return "AssumeRoleWithSAML"
    return None


#: Where the result element of moto's answer closes: what STS adds goes just before it.
RESULT_CLOSING: Final = f"</{ACTION}Result>".encode()


def answer_additions(*, subject: str, provider_arn: str, audience: str) -> bytes:
    """The elements of STS's answer that moto's lacks: the verified subject, the provider and
    the audience that matched."""
    return (
        f"<SubjectFromWebIdentityToken>{escape(subject)}"
        "</SubjectFromWebIdentityToken>"
        f"<Provider>{escape(provider_arn)}</Provider>"
        f"<Audience>{escape(audience)}</Audience>"
    ).encode()


def error_document(error: StsError, request_id: str) -> bytes:
    """STS's (query protocol) error response for ``error``."""
    return (
        f'<ErrorResponse xmlns="{STS_NAMESPACE}">\n'
        "  <Error>\n"
        f"    <Type>{error.fault_type}</Type>\n"
        f"    <Code>{escape(error.code)}</Code>\n"
        f"    <Message>{escape(error.message)}</Message>\n"
        "  </Error>\n"
        f"  <RequestId>{request_id}</RequestId>\n"
        "</ErrorResponse>\n"
    ).encode()


def s3_error_document(code: str, message: str, request_id: str) -> bytes:
    """S3's (REST) error response."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>"
        f"<RequestId>{request_id}</RequestId></Error>"
    ).encode()
