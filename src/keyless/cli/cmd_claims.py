"""``keyless claims``: show what a token says, only the claims safe to show, and with ``--verify``
check it against its issuer's published keys, naming the check that failed.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from keyless import claims_view, tokens
from keyless.ci import local_issuers, provider_for_issuer
from keyless.ci.base import Provider
from keyless.cli.console import Console
from keyless.cli.main import EXIT_NEGATIVE, EXIT_OK, Subparsers
from keyless.cli.token_args import issuer_http
from keyless.errors import TokenError, TokenVerificationError, UsageError
from keyless.limits import (
    CLAIMS_READ_SLACK_CHARS,
    TOKEN_LEEWAY_SECONDS,
    TOKEN_MAX_CHARS,
)

if TYPE_CHECKING:
    pass

#: Header parameters shown: how the token is signed, never key material.
SAFE_HEADER = ("alg", "kid", "typ")
REDACTED = claims_view.REDACTED

_EPILOG = """\
The token is read from PATH, or from standard input when PATH is '-' or omitted. Surrounding
whitespace is removed. Neither the token nor its signature is ever printed; claims that are not
known to be safe to show (the CI's own claim list, else iss, sub, aud, exp, iat, nbf) print as
<redacted> unless --all is given.

--verify fetches the issuer's discovery document and JWKS over HTTPS and checks the signature,
algorithm, issuer, audience and times. The issuer is the token's own 'iss' unless --issuer pins
it; the audience must be given with --audience, because a token's own 'aud' proves nothing.

Exit codes: 0 decoded (and with --verify: verified); 1 with --verify: the token failed a check,
including a malformed token (a negative verdict; the output names the check); 2 a usage error,
an unreadable input, a malformed token without --verify, or an issuer that cannot be reached.
"""


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "claims",
        help="show a token's claims (safe ones only) and optionally verify it",
        description="Decode a CI's OIDC token and show its claims; --verify checks it.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "path", nargs="?", default="-", metavar="PATH|-", help="token file ('-': stdin)"
    )
    parser.add_argument(
        "--verify", action="store_true", help="verify the token against its issuer's JWKS"
    )
    parser.add_argument(
        "--issuer", metavar="URL", help="expected issuer (default: the token's iss)"
    )
    parser.add_argument(
        "--audience", metavar="AUD", help="expected audience (required with --verify)"
    )
    parser.add_argument(
        "--ca-bundle",
        metavar="PEM",
        type=Path,
        help="CA certificates to trust for the issuer instead of the system's (default:"
        " the system's, and for a loopback issuer also $KEYLESS_LOCAL_CA_BUNDLE)",
    )
    parser.add_argument("--all", action="store_true", help="show every claim, unredacted")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.set_defaults(handler=run)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Verdict:
    ok: bool
    check: str | None
    message: str
    issuer: str | None
    audience: str | None
    issuer_from_token: bool


def run(args: argparse.Namespace, console: Console) -> int:
    _check_flags(args)
    raw = _read_token(args.path, console)
    try:
        token = tokens.peek(raw)
    except TokenError as exc:
        if not args.verify:
            raise
        # Under --verify a malformed token is a negative verdict like any other failed check.
        failed = _failed(exc, issuer=args.issuer, audience=args.audience, from_token=False)
        _emit_verdict_only(failed, console, as_json=args.json)
        return EXIT_NEGATIVE
    verdict = _verify(raw, token, args, console.env) if args.verify else None
    provider = _provider_for(token.issuer, console.env)
    safe = claims_view.safe_claims(provider)
    document = _document(
        token,
        safe=safe,
        show_all=args.all,
        provider=provider,
        verdict=verdict,
        now=console.seams.clock(),
    )
    if args.json:
        console.emit_json(document)
    else:
        for line in _human(document, verdict):
            console.out(line)
    return EXIT_NEGATIVE if verdict is not None and not verdict.ok else EXIT_OK


# --- input -------------------------------------------------------------------------------------


def _check_flags(args: argparse.Namespace) -> None:
    if not args.verify:
        for flag, value in (
            ("--issuer", args.issuer),
            ("--audience", args.audience),
            ("--ca-bundle", args.ca_bundle),
        ):
            if value is not None:
                raise UsageError(f"{flag} is used only with --verify")
        return
    if not args.audience:
        raise UsageError(
            "--verify needs --audience AUD, the audience the token must be for",
            remedy="Name the audience you expect, e.g. --audience sts.amazonaws.com (the client "
            "ID of the IAM OIDC provider). keyless does not take it from the token: a token's "
            "own 'aud' proves nothing about whom it was meant for.",
        )
    if args.ca_bundle is not None and not args.ca_bundle.is_file():
        raise UsageError(f"CA bundle {args.ca_bundle} is not a readable file")


def _read_token(path: str, console: Console) -> str:
    limit = TOKEN_MAX_CHARS + CLAIMS_READ_SLACK_CHARS
    if path == "-":
        source = "standard input"
        isatty = getattr(console.stdin, "isatty", None)
        if isatty is not None and isatty():
            raise UsageError(
                "no token given: pass a token file, or pipe the token on standard input",
                remedy="e.g.  keyless claims token.jwt   or   keyless token | keyless claims -",
            )
        text = console.stdin.read(limit + 1)
    else:
        source = f"token file {path}"
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read(limit + 1)
        except FileNotFoundError:
            raise UsageError(f"token file {path} does not exist") from None
        except IsADirectoryError:
            raise UsageError(f"token file {path} is a folder, not a file") from None
        except UnicodeDecodeError:
            raise UsageError(f"token file {path} is not text") from None
        except OSError as exc:
            raise UsageError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    token = text.strip()
    if not token:
        raise UsageError(f"{source} is empty: there is no token to read")
    return token


# --- verification ------------------------------------------------------------------------------


def _verify(
    raw: str, token: tokens.UnverifiedToken, args: argparse.Namespace, env: Mapping[str, str]
) -> _Verdict:
    issuer: str | None = args.issuer
    from_token = issuer is None
    if issuer is None:
        issuer = token.issuer
        if issuer is None:
            return _Verdict(
                ok=False,
                check="missing-claim",
                message="token has no 'iss' claim; it cannot be verified",
                issuer=None,
                audience=args.audience,
                issuer_from_token=True,
            )
    http = issuer_http(args.ca_bundle, env)
    try:
        verified = tokens.verify(raw, issuer=issuer, audience=args.audience, http=http)
    except TokenVerificationError as exc:
        return _failed(exc, issuer=issuer, audience=args.audience, from_token=from_token)
    return _Verdict(
        ok=True,
        check=None,
        message=(
            f"signature by key {verified.kid} ({verified.algorithm}) of {verified.issuer};"
            f" audience {args.audience}; times valid (leeway {TOKEN_LEEWAY_SECONDS}s)"
        ),
        issuer=issuer,
        audience=args.audience,
        issuer_from_token=from_token,
    )


def _failed(
    exc: TokenError, *, issuer: str | None, audience: str | None, from_token: bool
) -> _Verdict:
    check = exc.check if isinstance(exc, TokenVerificationError) else "format"
    return _Verdict(
        ok=False,
        check=check,
        message=exc.message,
        issuer=issuer,
        audience=audience,
        issuer_from_token=from_token,
    )


def _verdict_json(verdict: _Verdict) -> dict[str, object]:
    return {
        "result": "ok" if verdict.ok else "failed",
        "check": verdict.check,
        "message": verdict.message,
        "issuer": verdict.issuer,
        "issuer_from_token": verdict.issuer_from_token,
        "audience": verdict.audience,
    }


def _verdict_line(verdict: _Verdict) -> str:
    if verdict.ok:
        return f"verification: OK ({verdict.message})"
    return f"verification: FAILED, check '{verdict.check}': {verdict.message}"


def _emit_verdict_only(verdict: _Verdict, console: Console, *, as_json: bool) -> None:
    if as_json:
        console.emit_json({"verified": False, "verification": _verdict_json(verdict)})
    else:
        console.out(_verdict_line(verdict))


# --- presentation ------------------------------------------------------------------------------


def _provider_for(issuer: str | None, env: Mapping[str, str]) -> Provider | None:
    """The CI provider that owns ``issuer`` (an unverified ``iss``: used only to choose which
    claims are safe to print), the local stack's issuers included, or ``None``."""
    if issuer is None:
        return None
    return provider_for_issuer(issuer, local_issuers.from_environment(env))


def _document(
    token: tokens.UnverifiedToken,
    *,
    safe: frozenset[str],
    show_all: bool,
    provider: Provider | None,
    verdict: _Verdict | None,
    now: float,
) -> dict[str, object]:
    claims: dict[str, object] = {}
    redacted: list[str] = []
    for name in claims_view.ordered(token.claims):
        if show_all or name in safe:
            claims[name] = tokens.thaw(token.claims[name])
        else:
            claims[name] = REDACTED
            redacted.append(name)
    header = {
        name: tokens.thaw(token.header[name]) if show_all or name in SAFE_HEADER else REDACTED
        for name in token.header
    }
    times: dict[str, object] = {}
    for name in ("iat", "nbf", "exp"):
        value = token.time_claim(name)
        if value is not None and name in claims and claims[name] != REDACTED:
            times[name] = {
                "at": claims_view.iso(value),
                "relative": claims_view.relative(name, value - now),
                "seconds_from_now": int(value - now),
            }
    return {
        "verified": bool(verdict and verdict.ok),
        "provider": provider.name if provider else None,
        "header": header,
        "claims": claims,
        "redacted": redacted,
        "times": times,
        "verification": _verdict_json(verdict) if verdict else None,
    }


def _human(document: Mapping[str, object], verdict: _Verdict | None) -> list[str]:
    header = cast("Mapping[str, object]", document["header"])
    claims = cast("Mapping[str, object]", document["claims"])
    times = cast("Mapping[str, Mapping[str, object]]", document["times"])
    redacted = cast("list[str]", document["redacted"])
    status = "verified" if document["verified"] else "NOT verified"
    if verdict is None:
        status += " (decoded only; --verify checks it)"
    lines = [f"token: {status}"]
    provider = document["provider"]
    if provider:
        lines.append(f"  provider  {provider}")
    lines.append(
        "  header    " + "  ".join(f"{k}={claims_view.display(v)}" for k, v in header.items())
    )
    width = min(max((len(name) for name in claims), default=0), 28)
    lines.append("claims:")
    for name, value in claims.items():
        text = value if value == REDACTED else claims_view.display(value)
        if name in times:
            text = f"{times[name]['at']} ({times[name]['relative']})"
        lines.append(f"  {name.ljust(width)}  {text}")
    if redacted:
        lines.append(
            f"{len(redacted)} claim(s) {claims_view.NOT_SAFE} are redacted; --all shows them"
        )
    if verdict is not None:
        if verdict.issuer_from_token and verdict.issuer:
            lines.append("note: issuer taken from the token's own 'iss'; --issuer pins it")
        lines.append(_verdict_line(verdict))
    return lines
