"""GitHub's ID token request: the runner's endpoint URL, the request with retries, the answer.

Facts: docs/ci-tokens.md#github-delivery (GitHub's "OpenID Connect reference", actions/toolkit
oidc-utils).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from keyless.errors import CredentialError, NetworkError
from keyless.limits import (
    GITHUB_TOKEN_REQUEST_SECONDS,
    RETRY_BASE_DELAY_SECONDS,
    RETRY_MAX_DELAY_SECONDS,
    RETRY_TOTAL_BUDGET_SECONDS,
    TOKEN_REQUEST_MAX_ATTEMPTS,
)
from keyless.urls import has_userinfo, shown_url

if TYPE_CHECKING:
    from keyless.http import HttpClient, HttpResponse

DISPLAY_NAME = "GitHub Actions"
REQUEST_URL_VARIABLE = "ACTIONS_ID_TOKEN_REQUEST_URL"
REQUEST_BEARER_VARIABLE = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
#: The header GitHub's documented curl sends; the response then carries the token in `value`.
ACCEPT = "application/json; api-version=2.0"
# A bearer token may travel over plain HTTP only when it never leaves the machine.
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

PERMISSIONS_REMEDY = """\
GitHub gives a job the token request variables only with the `id-token: write` permission.
In the workflow (or the job):

  permissions:
    id-token: write
    contents: read

A reusable workflow called from another organization needs the caller to grant it explicitly,
and pull requests from forks never get it.
"""


def _refused_remedy(status: int) -> str:
    if status == 401:
        return (
            f"The runtime refused {REQUEST_BEARER_VARIABLE}. It is valid for about six hours from"
            " the start of the job: re-run the job, and fetch the token right before using it."
        )
    return PERMISSIONS_REMEDY


def jitter() -> float:
    import random

    return random.random()  # noqa: S311 (backoff jitter, not a secret)


def request_url(base: str, audience: str) -> str:
    """``base`` with ``audience`` added to its query (which GitHub's URL already has)."""
    parts = urllib.parse.urlsplit(base)
    local = parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
    if has_userinfo(base):
        raise CredentialError(
            f"{DISPLAY_NAME}: {REQUEST_URL_VARIABLE} has user info ({_origin(base)});"
            " refusing to send the request token with it"
        )
    if parts.scheme != "https" and not local:
        raise CredentialError(
            f"{DISPLAY_NAME}: {REQUEST_URL_VARIABLE} is not an https URL"
            f" ({_origin(base)}); refusing to send the request token over it"
        )
    extra = urllib.parse.urlencode({"audience": audience})
    query = parts.query.strip("&")
    return urllib.parse.urlunsplit(parts._replace(query=f"{query}&{extra}" if query else extra))


# --- keyless doctor: GitHub's subject forms (docs/ci-tokens.md#github-sub) ------------------


def fetch(
    http: HttpClient,
    url: str,
    headers: Mapping[str, str],
    *,
    sleep: Callable[[float], None],
    random: Callable[[], float],
    clock: Callable[[], float],
) -> HttpResponse:
    """GET with full-jitter exponential backoff on 5xx, 429 and transport failures only."""
    deadline = clock() + RETRY_TOTAL_BUDGET_SECONDS
    last = "no attempt"
    attempts = 0
    floor = 0.0  # from a 429's Retry-After
    while attempts < TOKEN_REQUEST_MAX_ATTEMPTS:
        if attempts:
            ceiling = min(RETRY_MAX_DELAY_SECONDS, RETRY_BASE_DELAY_SECONDS * 2 ** (attempts - 1))
            delay = max(random() * ceiling, floor)
            if clock() + delay > deadline:
                break
            sleep(delay)
        left = deadline - clock()
        if left <= 0:
            break
        attempts += 1
        try:
            # The attempt in flight is inside the budget too: its deadline is what is left.
            timeout = min(GITHUB_TOKEN_REQUEST_SECONDS, left)
            response = http.get(url, headers=headers, timeout=timeout)
        except NetworkError as exc:
            # UrllibClient's message names the URL without its query; never the headers.
            last = exc.message
            floor = 0.0
            continue
        if response.status == 200:
            return response
        if response.status == 429 or response.status >= 500:
            last = f"HTTP {response.status}"
            floor = _retry_after(response)
            continue
        raise CredentialError(
            f"{DISPLAY_NAME}: the ID token endpoint {_origin(url)} answered HTTP {response.status}",
            remedy=_refused_remedy(response.status),
        )
    raise NetworkError(
        f"{DISPLAY_NAME}: the ID token endpoint {_origin(url)} failed"
        f" {attempts} time(s); last: {last}",
        remedy="GitHub's token service may be degraded; re-run the job in a few minutes.",
    )


def token_value(response: HttpResponse, url: str) -> str:
    # The body carries the token: it never goes into a message.
    try:
        document = json.loads(response.body)
    except ValueError:
        document = None
    value = document.get("value") if isinstance(document, dict) else None
    if not isinstance(value, str):
        raise CredentialError(
            f"{DISPLAY_NAME}: the answer of {_origin(url)} is not JSON with a string `value`"
        )
    return value


def _retry_after(response: HttpResponse) -> float:
    """A 429's ``Retry-After`` in seconds (integer form only), capped like any other delay."""
    for key, value in response.headers.items():
        if key.lower() == "retry-after" and value.strip().isdigit():
            return min(float(value.strip()), RETRY_MAX_DELAY_SECONDS)
    return 0.0


def _origin(url: str) -> str:
    """``url`` for a message: no query, no user info (either might carry a secret)."""
    return shown_url(url)
