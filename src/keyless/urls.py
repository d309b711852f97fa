"""How keyless shows a URL in a message: never its user info, never its query.

``https://user:secret@host/path?token=...`` carries secrets in two places: the user info (RFC 3986
§3.2.1 deprecates passwords there, yet they are still written) and the query (GitHub's
``ACTIONS_ID_TOKEN_REQUEST_URL`` carries a signed query). Every URL that reaches a message, an
exception or a log line goes through ``shown_url``.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["has_userinfo", "redact_urls", "shown_url"]

#: Stands in for a removed user info or query, so the reader sees that something was there.
REDACTED = "***"


def shown_url(url: str) -> str:
    """``url`` for a message: user info replaced by ``***@``, query and fragment dropped."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        # Not parseable (e.g. an unbalanced '[' in the host): show only what cannot be a secret.
        return _before_secrets(url)
    _userinfo, at, host = parts.netloc.rpartition("@")
    netloc = f"{REDACTED}@{host}" if at else host
    query = f"?{REDACTED}" if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")) + query


# scheme "://" then a user info without '/', whitespace, quotes or '@' itself, then '@'. No
# nested quantifier: linear in the text's length.
_USERINFO_IN_TEXT = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@\"'<>]+@")


def redact_urls(text: str) -> str:
    """``text`` with the user info of every URL in it replaced by ``***``: the last line of
    defence for what reaches the terminal (botocore and argparse quote URLs too)."""
    if "://" not in text:
        return text
    return _USERINFO_IN_TEXT.sub(rf"\1{REDACTED}@", text)


def has_userinfo(url: str) -> bool:
    """True when ``url`` has a ``user[:password]@`` part."""
    try:
        return "@" in urllib.parse.urlsplit(url).netloc
    except ValueError:
        return "@" in url


def _before_secrets(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return REDACTED
    host = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    return f"{scheme}://{host}/{REDACTED}"
