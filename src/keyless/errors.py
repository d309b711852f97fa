"""The error root of keyless and its families.

Every failure a user can act on is a ``KeylessError``: ``str(e)`` is one line that names the value
involved, ``remedy`` says what to do, and ``diagnostics()`` joins the two for the CLI's ``-v`` and
for callers who want the whole story. Third-party exceptions are converted where they cross into
keyless (``raise TokenError(...) from exc``) so that the CLI catches exactly one type.

Messages never contain secrets (tokens, secret keys, session tokens); tests assert it.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "AwsError",
    "CredentialError",
    "IssuerError",
    "KeylessError",
    "NetworkError",
    "OutputError",
    "PolicyError",
    "TokenError",
    "TokenVerificationError",
    "UsageError",
]


def _one_line(text: str) -> str:
    """Collapse whitespace so that a message always prints as exactly one line."""
    return " ".join(text.split())


class KeylessError(Exception):
    """Root of every error keyless raises on purpose.

    ``message`` is one line naming the value involved; ``remedy`` (optional, may span lines, e.g.
    a YAML snippet) says what to do about it.
    """

    #: Process exit code the CLI uses for this error (2 = usage or runtime error).
    exit_code: int = 2
    #: A short family name for ``--json`` output and logs.
    kind: str = "error"

    def __init__(self, message: str, *, remedy: str | None = None) -> None:
        self.message = _one_line(message)
        self.remedy = remedy.strip("\n") if remedy else None
        super().__init__(self.message)

    def diagnostics(self) -> str:
        """What happened and what to do, for a person reading a terminal."""
        if self.remedy:
            return f"{self.message}\n\n{self.remedy}"
        return self.message

    def to_json(self) -> dict[str, str | None]:
        return {"error": self.kind, "message": self.message, "remedy": self.remedy}


class UsageError(KeylessError):
    """Bad command-line input: a missing file, an invalid flag value, a contradiction."""

    kind = "usage"


class OutputError(KeylessError):
    """keyless refused to write somewhere (unsafe path, symlink, terminal for a secret)."""

    kind = "output"


class CredentialError(KeylessError):
    """The CI job's identity token cannot be had (e.g. Bitbucket step without ``oidc: true``)."""

    kind = "credential"


class TokenError(KeylessError):
    """A token is malformed: not a JWT, not JSON, too long."""

    kind = "token"


class TokenVerificationError(TokenError):
    """A well-formed token failed one verification check; ``check`` names it."""

    kind = "token-verification"

    def __init__(self, message: str, *, check: str, remedy: str | None = None) -> None:
        super().__init__(message, remedy=remedy)
        #: Machine-readable name of the failed check: "signature", "algorithm", "kid",
        #: "issuer", "audience", "expired", "not-yet-valid", "issued-at", "size", "format", ...
        self.check = check

    def to_json(self) -> dict[str, str | None]:
        data = super().to_json()
        data["check"] = self.check
        return data


class IssuerError(KeylessError):
    """The OIDC issuer's discovery document or key set cannot be fetched or is invalid."""

    kind = "issuer"


class PolicyError(KeylessError):
    """An IAM policy document is malformed or uses something keyless cannot evaluate."""

    kind = "policy"


class AccessDeniedError(KeylessError):
    """AWS (or the local stack) refused: the trust policy or permissions do not allow it."""

    kind = "access-denied"


class AwsError(KeylessError):
    """Any other AWS API failure, converted from botocore's exceptions."""

    kind = "aws"


class NetworkError(KeylessError):
    """A connection failed or timed out after the retries keyless allows."""

    kind = "network"
