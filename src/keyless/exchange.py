"""The application layer of every command that hands out AWS credentials: one typed request and
one ``obtain_credentials`` (``keyless assume``, ``exec``, ``credential-process``, ``deploy
--role-arn``, ``pipe aws-s3-deploy`` and ``doctor``'s exchange step).

The CLI maps its options (or a pipe's variables) to a ``CredentialRequest`` and renders the
``Obtained`` result; the token source, session naming, the static-key fallback policy, the second
hop and the account guard are decided here, once. STS itself is ``keyless.aws.sts``; the token is
``keyless.ci``. The exchange itself loads no boto3 where STS's Query client is equivalent
(``keyless.aws.sts_endpoint``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.errors import CredentialError, TokenError, UsageError

if TYPE_CHECKING:
    from keyless.arn import AccountId, RoleArn
    from keyless.aws.sts import Assumed, Sts
    from keyless.aws.sts_errors import StsApiError
    from keyless.ci import ObtainedToken
    from keyless.http import HttpClient

#: Where the role comes from when the command line does not name one, in this order.
ROLE_ARN_VARIABLES = ("KEYLESS_ROLE_ARN", "AWS_OIDC_ROLE_ARN")

#: Builds the STS seam for an environment and region; ``notify`` receives retry notices.
StsFactory = Callable[[Mapping[str, str], str, Callable[[str], None]], "Sts"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenSource:
    """Where the OIDC token comes from (``keyless.ci.detect`` decides with these)."""

    ci: str = "auto"
    audience: str | None = None
    token_file: str | None = None
    token_env: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionOptions:
    """The role session asked for; ``name=None`` derives one from the CI job."""

    name: str | None = None
    duration_seconds: int | None = None
    #: Compact JSON (STS counts every character against its limit).
    policy: str | None = None
    policy_arns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialRequest:
    """Everything ``obtain_credentials`` needs; built from a command line or a pipe's variables."""

    role_arn: RoleArn
    region: str
    token: TokenSource = field(default_factory=TokenSource)
    session: SessionOptions = field(default_factory=SessionOptions)
    #: The account guard: refuse credentials of any other account.
    expect_account: AccountId | None = None
    #: A second hop: ``sts:AssumeRole`` from the first role into this one.
    chain_role_arn: RoleArn | None = None
    #: Without a token, assume the role with the static keys in the environment (never implied).
    allow_static_fallback: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Obtained:
    """Checked credentials, the STS region, and the token (``None`` after the key fallback)."""

    assumed: Assumed
    region: str
    token: ObtainedToken | None


def resolve_role_arn(explicit: str | None, env: Mapping[str, str]) -> RoleArn:
    """``--role-arn``, else the first of ``ROLE_ARN_VARIABLES`` that is set."""
    from keyless.arn import parse_role_arn

    if explicit:
        return parse_role_arn(explicit)
    for name in ROLE_ARN_VARIABLES:
        if env.get(name):
            return parse_role_arn(env[name], flag=name)
    raise UsageError(
        "no role to assume: pass --role-arn ARN (or set KEYLESS_ROLE_ARN)",
        remedy="e.g. keyless assume --role-arn arn:aws:iam::123456789012:role/deploy",
    )


def load_session_policy(path: Path | None) -> str | None:
    """The inline session policy in ``path`` as compact JSON, or ``None`` without a file."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--session-policy {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--session-policy {path} is not UTF-8 text") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--session-policy {path} is not JSON: {exc}") from None
    # Compact JSON: STS counts every character against its 2048 limit.
    return json.dumps(document, separators=(",", ":"))


def obtain_credentials(
    request: CredentialRequest,
    *,
    env: Mapping[str, str],
    sts_factory: StsFactory,
    notify: Callable[[str], None],
    warn: Callable[[str], None],
    clock: Callable[[], float] = time.time,
    http: HttpClient | None = None,
    token: ObtainedToken | None = None,
) -> Obtained:
    """Token -> STS -> checked credentials. ``notify`` gets STS's retry notices, ``warn`` the
    static-key fallback's warning (one line each, no secret); ``clock`` dates the token check
    and the fallback session name. ``token``: one obtained already (doctor reads it before it
    exchanges it: a second request to the CI could mint a different one); ``None`` obtains it
    as ``request.token`` says."""
    from keyless.aws.sts import (
        ExchangeRequest,
        check_session_name,
        check_token_usable,
        derive_session_name,
        exchange_with_keys,
        static_keys,
    )
    from keyless.aws.sts import exchange as sts_exchange
    from keyless.aws.sts_errors import StsApiError
    from keyless.ci import PROVIDERS, detect

    session = request.session
    if session.name is not None:
        check_session_name(session.name)
    sts = sts_factory(env, request.region, notify)
    source = request.token
    obtained = token or _token_or_fallback(request, env, http=http, warn=warn)
    if obtained is not None:
        provider = PROVIDERS.get(obtained.provider)
    else:
        provider = detect(env, ci=source.ci, token_file=source.token_file).provider
    exchange = ExchangeRequest(
        role_arn=request.role_arn,
        session_name=session.name or derive_session_name(env, provider, clock=clock),
        duration_seconds=session.duration_seconds,
        session_policy=session.policy,
        session_policy_arns=session.policy_arns,
        chain_role_arn=request.chain_role_arn,
        expect_account=request.expect_account,
    )
    if obtained is None:
        keys = static_keys(env)
        assert keys is not None  # noqa: S101 - _token_or_fallback checked them
        assumed = exchange_with_keys(keys, exchange, sts=sts)
    else:
        check_token_usable(obtained.token, source=obtained.source, clock=clock)
        try:
            assumed = sts_exchange(obtained.token, exchange, sts=sts)
        except StsApiError as exc:
            raise _local_audience_hint(exc, obtained, env, path=source.token_file) from exc
    return Obtained(assumed=assumed, region=request.region, token=obtained)


def _token_or_fallback(
    request: CredentialRequest,
    env: Mapping[str, str],
    *,
    http: HttpClient | None,
    warn: Callable[[str], None],
) -> ObtainedToken | None:
    """The job's token; ``None`` only when it has none and the static-key fallback applies."""
    from keyless.aws.sts import static_keys
    from keyless.ci import obtain_token

    source = request.token
    try:
        return obtain_token(
            env,
            ci=source.ci,
            audience=source.audience,
            token_file=source.token_file,
            token_env=source.token_env,
            http=http,
        )
    except CredentialError as exc:
        keys = static_keys(env)
        if not request.allow_static_fallback:
            if keys is not None:
                raise CredentialError(
                    exc.message,
                    remedy=(exc.remedy + "\n\n" if exc.remedy else "")
                    + "Static keys are set (AWS_ACCESS_KEY_ID), but keyless never falls back to"
                    " them unless --allow-static-fallback is given.",
                ) from exc
            raise
        if keys is None:
            raise CredentialError(
                f"{exc.message}; --allow-static-fallback found no AWS_ACCESS_KEY_ID and"
                " AWS_SECRET_ACCESS_KEY either",
                remedy=exc.remedy,
            ) from exc
        warn(
            f"warning: {exc.message}; using the static keys in AWS_ACCESS_KEY_ID to assume"
            f" {request.role_arn} (--allow-static-fallback)"
        )
        return None


def _local_audience_hint(
    exc: StsApiError, obtained: ObtainedToken, env: Mapping[str, str], *, path: str | None
) -> StsApiError:
    """STS refused the audience of a token the local stack minted: its remedy names the command
    that mints it for the audience, so "--audience" and "mint it" do not send the user round."""
    if exc.code != "InvalidIdentityToken" or "audience" not in exc.sts_message.lower():
        return exc
    from keyless.aws.sts_errors import StsApiError
    from keyless.ci import local_issuers
    from keyless.tokens import peek

    try:
        issuer = peek(obtained.token).issuer
    except TokenError:
        return exc
    hint = local_issuers.from_environment(env).remint_hint(issuer, audience=None, path=path)
    if hint is None:
        return exc
    return StsApiError(
        exc.message,
        code=exc.code,
        sts_message=exc.sts_message,
        remedy=hint + ("\n" + exc.remedy if exc.remedy else ""),
    )


def assumed_line(obtained: Obtained) -> str:
    """The one line every command that exchanged a token prints on stderr."""
    assumed = obtained.assumed
    return (
        f"keyless: assumed {assumed.identity.arn} (account {assumed.identity.account}) until"
        f" {assumed.credentials.expiration_iso}"
    )
