"""The audience of a token a CI handed over, read WITHOUT verification, to refuse early.

Nothing here verifies a signature: the result decides which message to show, never whom to trust.
"""

from __future__ import annotations

from keyless.ci.base import ObtainedToken
from keyless.errors import CredentialError, TokenError


def token_audiences(obtained: ObtainedToken, *, display_name: str) -> tuple[str, ...]:
    """``aud`` of ``obtained`` as a tuple (a string or a list in the token), unverified."""
    # Imported here: keyless.ci is loaded by commands that never read a token (trust lint).
    from keyless.tokens import peek

    try:
        return peek(obtained.token).audience
    except TokenError as exc:
        # peek()'s messages never quote the token; add where it came from.
        raise TokenError(
            f"{display_name}: the token from {obtained.source} is malformed: {exc.message}"
        ) from exc


def require_audience(
    obtained: ObtainedToken, audience: str | None, *, display_name: str, remedy: str
) -> ObtainedToken:
    """``obtained`` when it carries ``audience`` (or none was asked); else ``CredentialError``.

    For CIs whose audience is fixed by the pipeline's YAML: keyless cannot ask for another one at
    run time, and passing on a token whose ``aud`` STS will reject only delays the failure.
    """
    if audience is None:
        return obtained
    found = token_audiences(obtained, display_name=display_name)
    if audience in found:
        return obtained
    shown = ", ".join(repr(a) for a in found) or "none"
    raise CredentialError(
        f"{display_name}: the token from {obtained.source} has audience {shown}, not {audience!r};"
        f" this CI cannot issue another audience at run time",
        remedy=remedy,
    )
