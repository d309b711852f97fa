"""STS's Query API over the standard library, without botocore: the three calls keyless makes
(AssumeRoleWithWebIdentity, unsigned; AssumeRole and GetCallerIdentity, signed with SigV4),
answered in the same shape boto3's STS client returns, so ``keyless.aws.sts.Sts`` drives either.

Loading botocore and its service models costs about as long as the exchange itself; a pipeline
pays it on every job. The wire format is the documented Query protocol: a form-encoded POST with
``Action`` and ``Version=2011-06-15``, an XML answer, an ``ErrorResponse`` on failure (AWS STS API
Reference, "Common Parameters" and "Common Errors"). Requests are signed as in the IAM User
Guide, "Create a signed AWS API request" (Signature Version 4).

Bounds: one deadline per request (``keyless.http``), answers of at most ``HTTP_MAX_BODY_BYTES``,
and an answer that declares a DTD or entities is refused before it is parsed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ssl
import time
import urllib.error
import urllib.parse
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from keyless.compat import UTC
from keyless.errors import NetworkError
from keyless.http import HttpPoster, HttpResponse, TransportError

__all__ = [
    "QueryStsClient",
    "StsAnswerError",
    "StsTransportError",
    "StsUnreadableError",
    "regional_endpoint",
    "sign_v4",
]

API_VERSION = "2011-06-15"
_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"


class StsAnswerError(Exception):
    """STS answered with an error: its ``Code`` and ``Message`` and the HTTP status. The message
    is STS's own; the caller scrubs it before showing it."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code} (HTTP {status})")
        self.code = code
        self.message = message
        self.status = status


class StsUnreadableError(NetworkError):
    """STS's answer could not be read: cut short, garbled, or without what the call returns."""


class StsTransportError(NetworkError):
    """The request failed in transit. ``name`` and ``detail`` are what botocore names the same
    failure (``EndpointConnectionError``, ``ConnectionClosedError``, ...), so that a user reads
    the same line whichever client made the call; neither quotes anything that was sent."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail


def transport_error(failure: BaseException, endpoint: str) -> StsTransportError:
    """``failure`` (from ``UrllibClient``) as botocore would name it, for ``endpoint``.

    urllib wraps what fails while connecting and sending in ``URLError``; what fails while the
    answer is awaited or read comes unwrapped (``RemoteDisconnected``, a reset, the deadline)."""
    url = f'endpoint URL: "{endpoint}"'
    reason = failure.reason if isinstance(failure, urllib.error.URLError) else failure
    if isinstance(reason, ssl.SSLError):  # the handshake may come before or with the answer
        return StsTransportError("SSLError", f"SSL validation failed for {endpoint} {reason}")
    if isinstance(failure, urllib.error.URLError):
        if isinstance(reason, TimeoutError):
            return StsTransportError("ConnectTimeoutError", f"Connect timeout on {url}")
        if not isinstance(reason, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            return StsTransportError("EndpointConnectionError", f"Could not connect to the {url}")
    elif isinstance(failure, TimeoutError):
        return StsTransportError("ReadTimeoutError", f"Read timeout on {url}")
    elif not isinstance(failure, OSError | http.client.HTTPException):
        return StsTransportError("EndpointConnectionError", f"Could not connect to the {url}")
    return StsTransportError(
        "ConnectionClosedError",
        f"Connection was closed before we received a valid response from {url}.",
    )


def regional_endpoint(region: str) -> str | None:
    """STS's regional endpoint for ``region`` in the commercial partition; ``None`` for regions of
    other partitions (China, GovCloud, ISO), whose domains the caller leaves to botocore."""
    if region.startswith(("cn-", "us-gov-", "us-iso", "eu-isoe-")):
        return None
    return f"https://sts.{region}.amazonaws.com"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def sign_v4(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    region: str,
    service: str,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None,
    now: datetime,
) -> dict[str, str]:
    """``headers`` plus ``X-Amz-Date``, the session token and ``Authorization`` (SigV4) for a
    request without a query string. Every header given is signed."""
    parts = urllib.parse.urlsplit(url)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    signed = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
    signed["host"] = parts.netloc
    signed["x-amz-date"] = amz_date
    if session_token:
        signed["x-amz-security-token"] = session_token
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            urllib.parse.quote(parts.path or "/", safe="/-_.~"),
            "",
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(("AWS4" + secret_access_key).encode("utf-8"), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    result = dict(headers)
    result["X-Amz-Date"] = amz_date
    if session_token:
        result["X-Amz-Security-Token"] = session_token
    result["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key_id}/{scope},"
        f" SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return result


def _members(prefix: str, values: Sequence[object]) -> dict[str, str]:
    return {f"{prefix}.member.{index}": str(value) for index, value in enumerate(values, 1)}


def _form(action: str, params: Mapping[str, Any]) -> dict[str, str]:
    """The Query parameters of ``action`` from boto3-style ``params``."""
    form = {"Action": action, "Version": API_VERSION}
    for name, value in params.items():
        if name == "PolicyArns":
            form.update(
                {f"PolicyArns.member.{i}.arn": item["arn"] for i, item in enumerate(value, 1)}
            )
        elif name == "Tags":
            for index, tag in enumerate(value, 1):
                form[f"Tags.member.{index}.Key"] = tag["Key"]
                form[f"Tags.member.{index}.Value"] = tag["Value"]
        elif name == "TransitiveTagKeys":
            form.update(_members(name, value))
        else:
            form[name] = str(value)
    return form


def _parse(body: bytes, status: int) -> ElementTree.Element:
    # STS sends no DTD; refusing one keeps entity expansion out of the parser entirely.
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise StsUnreadableError(f"STS answered HTTP {status} with a document type declaration")
    try:
        return ElementTree.fromstring(body)  # noqa: S314 - no DTD (checked above), size bounded
    except ElementTree.ParseError:
        raise StsUnreadableError(
            f"STS answered HTTP {status} with an answer that could not be read (cut short or"
            " garbled in transit)"
        ) from None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _find(element: ElementTree.Element, *path: str) -> ElementTree.Element | None:
    """The descendant along ``path`` by local names, whatever the namespace."""
    current: ElementTree.Element | None = element
    for name in path:
        if current is None:
            return None
        current = next((child for child in current if _local(child.tag) == name), None)
    return current


def _text(element: ElementTree.Element, *path: str) -> str:
    found = _find(element, *path)
    if found is None or found.text is None:
        raise StsUnreadableError(f"STS's answer has no {'/'.join(path)}")
    return found.text.strip()


def _optional_text(element: ElementTree.Element, *path: str) -> str | None:
    found = _find(element, *path)
    return found.text.strip() if found is not None and found.text else None


def _expiration(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        unreadable = f"STS's answer has an unreadable Expiration {text[:40]!r}"
        raise StsUnreadableError(unreadable) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _credentials(result: ElementTree.Element) -> dict[str, Any]:
    return {
        "AccessKeyId": _text(result, "Credentials", "AccessKeyId"),
        "SecretAccessKey": _text(result, "Credentials", "SecretAccessKey"),
        "SessionToken": _text(result, "Credentials", "SessionToken"),
        "Expiration": _expiration(_text(result, "Credentials", "Expiration")),
    }


def _assumed_user(result: ElementTree.Element) -> dict[str, str]:
    return {
        "Arn": _text(result, "AssumedRoleUser", "Arn"),
        "AssumedRoleId": _text(result, "AssumedRoleUser", "AssumedRoleId"),
    }


class QueryStsClient:
    """The STS calls keyless makes, on one endpoint, as boto3's STS client answers them.
    Without ``keys`` only the unsigned call is possible."""

    def __init__(
        self,
        *,
        endpoint: str,
        region: str,
        http: HttpPoster,
        keys: tuple[str, str, str | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._endpoint = endpoint.rstrip("/") + "/"
        self._region = region
        self._http = http
        self._keys = keys
        self._clock = clock

    def assume_role_with_web_identity(self, **params: Any) -> dict[str, Any]:
        result = self._call("AssumeRoleWithWebIdentity", params, signed=False)
        answer: dict[str, Any] = {
            "Credentials": _credentials(result),
            "AssumedRoleUser": _assumed_user(result),
        }
        subject = _optional_text(result, "SubjectFromWebIdentityToken")
        if subject is not None:
            answer["SubjectFromWebIdentityToken"] = subject
        return answer

    def assume_role(self, **params: Any) -> dict[str, Any]:
        result = self._call("AssumeRole", params, signed=True)
        return {"Credentials": _credentials(result), "AssumedRoleUser": _assumed_user(result)}

    def get_caller_identity(self) -> dict[str, str]:
        result = self._call("GetCallerIdentity", {}, signed=True)
        return {
            "Account": _text(result, "Account"),
            "Arn": _text(result, "Arn"),
            "UserId": _text(result, "UserId"),
        }

    def _call(self, action: str, params: Mapping[str, Any], *, signed: bool) -> ElementTree.Element:
        body = urllib.parse.urlencode(_form(action, params)).encode("ascii")
        headers = {"Content-Type": _CONTENT_TYPE}
        if signed:
            if self._keys is None:
                raise NetworkError(f"STS {action} needs keys to sign it")  # a caller's mistake
            access_key_id, secret_access_key, session_token = self._keys
            headers = sign_v4(
                method="POST",
                url=self._endpoint,
                headers=headers,
                body=body,
                region=self._region,
                service="sts",
                access_key_id=access_key_id,
                secret_access_key=secret_access_key,
                session_token=session_token,
                now=datetime.fromtimestamp(self._clock(), UTC),
            )
        try:
            response: HttpResponse = self._http.post(self._endpoint, body=body, headers=headers)
        except TransportError as exc:
            raise transport_error(exc.failure, self._endpoint) from None
        try:
            document = _parse(response.body, response.status) if response.body.strip() else None
        except StsUnreadableError:
            if response.status < 300:
                raise
            document = None  # a proxy's or load balancer's page: only the status is known
        if response.status >= 300 or document is None or _local(document.tag) == "ErrorResponse":
            if document is None and response.status < 300:
                raise StsUnreadableError(f"STS answered HTTP {response.status} with no body")
            if document is None:
                # botocore names an answer without STS's error document by its status.
                raise StsAnswerError(str(response.status), "", response.status)
            error = _find(document, "Error")
            code = (_optional_text(error, "Code") if error is not None else None) or "Unknown"
            message = (_optional_text(error, "Message") if error is not None else None) or ""
            raise StsAnswerError(code, message, response.status)
        result = _find(document, f"{action}Result")
        if result is None:
            raise StsUnreadableError(f"STS's answer to {action} has no {action}Result")
        return result
