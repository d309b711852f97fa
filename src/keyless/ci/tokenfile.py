"""A token that something else already wrote to a file: ``--token-file PATH``,
``KEYLESS_TOKEN_FILE``, or the ``AWS_WEB_IDENTITY_TOKEN_FILE`` that botocore also reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.ci._claims import require_audience
from keyless.ci.base import (
    STANDARD_SAFE_CLAIMS,
    ObtainedToken,
    Runner,
    SubjectGrammar,
    checked_token,
)
from keyless.ci.local_issuers import LOCAL_ISSUERS_NONE, LocalIssuers, from_environment
from keyless.errors import CredentialError, TokenError
from keyless.limits import TOKEN_MAX_CHARS

if TYPE_CHECKING:
    from keyless.http import HttpClient

KEYLESS_VARIABLE = "KEYLESS_TOKEN_FILE"
#: botocore's web-identity setting (docs/aws-sts-iam.md#botocore-web-identity); read last, as a
#: fallback outside any CI.
AWS_VARIABLE = "AWS_WEB_IDENTITY_TOKEN_FILE"
DISPLAY_NAME = "Token file"

_AUDIENCE_REMEDY = """\
A token file's audience was chosen when the token was minted. Mint it for the audience the IAM
OIDC provider lists, or drop --audience.
"""


def read_token_file(
    path: str | Path,
    *,
    origin: str,
    audience: str | None = None,
    local: LocalIssuers = LOCAL_ISSUERS_NONE,
) -> ObtainedToken:
    """The token in ``path`` (named by ``origin``, e.g. ``--token-file``), checked for shape.

    Symlinks are followed on purpose: Kubernetes projects service-account tokens through them.
    """
    source = f"{origin} {path}"
    try:
        with open(path, "rb") as handle:
            # A little headroom for whitespace; anything longer is refused by checked_token.
            data = handle.read(TOKEN_MAX_CHARS + 1024)
    except FileNotFoundError:
        raise CredentialError(
            f"{DISPLAY_NAME}: {path} (from {origin}) does not exist",
            remedy=f"Write the token there first, e.g. `keyless token --write {path}`.",
        ) from None
    except OSError as exc:
        raise CredentialError(
            f"{DISPLAY_NAME}: cannot read {path} (from {origin}): {exc.strerror or exc}"
        ) from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise TokenError(f"{DISPLAY_NAME}: {path} (from {origin}) is not a JWT") from None
    obtained = checked_token(text, provider="file", display_name=DISPLAY_NAME, source=source)
    remedy = _AUDIENCE_REMEDY
    if audience is not None:
        # A local stack's token has one fix: the command that mints it (keyless.ci.local_issuers).
        hint = local.remint_hint(_issuer(obtained), audience=audience, path=str(path))
        remedy = f"{remedy}{hint}" if hint else remedy
    return require_audience(obtained, audience, display_name=DISPLAY_NAME, remedy=remedy)


def _issuer(obtained: ObtainedToken) -> str | None:
    from keyless.tokens import peek  # as in keyless.ci._claims: lint loads this module too

    try:
        return peek(obtained.token).issuer
    except TokenError:
        return None  # require_audience names the malformed token


class TokenFile:
    name = "file"
    display_name = DISPLAY_NAME
    markers: tuple[str, ...] = (KEYLESS_VARIABLE, AWS_VARIABLE)
    # Any issuer: the claims AWS exposes are the issuer's provider's business, not the file's.
    aws_condition_claims: frozenset[str] = frozenset()
    aws_unconfirmed_claims: frozenset[str] = frozenset()
    safe_claims: frozenset[str] = STANDARD_SAFE_CLAIMS

    shared_issuer = False
    # A file can hold any issuer's token: no subject shape to state.
    subject_grammar = SubjectGrammar()

    def in_ci(self, env: Mapping[str, str]) -> bool:
        return any(env.get(name) for name in self.markers)

    def obtain(
        self,
        env: Mapping[str, str],
        *,
        audience: str | None,
        http: HttpClient,
        runner: Runner | None = None,
    ) -> ObtainedToken | None:
        for name in self.markers:
            if env.get(name):
                return read_token_file(
                    env[name],
                    origin=name,
                    audience=audience,
                    local=from_environment(env),
                )
        return None

    def owns_issuer(self, issuer: str) -> bool:
        return False

    def session_name(self, env: Mapping[str, str]) -> str | None:
        # A file says nothing about the run that wrote it.
        return None

    def describe_subject(self, fields: Mapping[str, str], issuer: str) -> str | None:
        return None


PROVIDER = TokenFile()
