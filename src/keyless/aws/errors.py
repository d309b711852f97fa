"""Reading an AWS error answer: the one place that knows the shape of ``ClientError.response``.

botocore puts the parsed error in ``response["Error"]`` (``Code``, ``Message``) and the HTTP
status in ``response["ResponseMetadata"]["HTTPStatusCode"]``; any of them can be missing when the
answer was not the service's own (a proxy's page, an empty body).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.exceptions import ClientError


def error_code(exc: ClientError) -> str | None:
    """The service's error code (``AccessDenied``, ``NoSuchEntity``), or None if it gave none."""
    return str(exc.response.get("Error", {}).get("Code", "")) or None


def error_message(exc: ClientError) -> str:
    """The service's error message on one line (whitespace collapsed); empty if it gave none."""
    return " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())


def http_status(exc: ClientError) -> int | None:
    """The HTTP status of the answer, or None if botocore recorded none."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None
