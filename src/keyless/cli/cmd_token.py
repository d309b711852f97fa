"""``keyless token``: get this CI job's OIDC token and pipe it, write it safely, or show its claims.

The token itself goes only to a pipe or to a 0600 file; everything printed for people is about it.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from keyless import claims_view, tokens
from keyless.ci import PROVIDERS, local_issuers, obtain_token
from keyless.ci.base import ObtainedToken
from keyless.cli.console import Console
from keyless.cli.main import EXIT_OK, Subparsers
from keyless.cli.token_args import add_token_source_arguments
from keyless.errors import OutputError, TokenError, TokenVerificationError
from keyless.fsutil import write_secret_file
from keyless.limits import TOKEN_LEEWAY_SECONDS

_EPILOG = """\
Where the token comes from (--ci auto, the first that applies; one that applies but is broken
is an error, never skipped):
  1. --token-file PATH, then the file named by KEYLESS_TOKEN_FILE
  2. the CI whose variables are set: Bitbucket (BITBUCKET_STEP_OIDC_TOKEN, needs `oidc: true`),
     GitHub (token request, needs `permissions: id-token: write`), GitLab (the `id_tokens:`
     variable: --token-env NAME or KEYLESS_TOKEN_ENV, else KEYLESS_OIDC_TOKEN, GITLAB_OIDC_TOKEN,
     AWS_OIDC_TOKEN, OIDC_TOKEN, ID_TOKEN), CircleCI (CIRCLE_OIDC_TOKEN_V2, CIRCLE_OIDC_TOKEN),
     Buildkite (buildkite-agent oidc request-token)
  3. the file named by AWS_WEB_IDENTITY_TOKEN_FILE
--ci NAME uses that source only; it is needed when the variables of two CIs are set.

--audience: GitHub, CircleCI and Buildkite mint a token for it (GitHub and Buildkite default to
sts.amazonaws.com). Bitbucket, GitLab and token files cannot: their audience is set in the
pipeline's YAML, so a token without it is refused.

Output: without --write, --show-claims or --json the raw token (no trailing newline) goes to
standard output, which must not be a terminal. --write replaces PATH atomically with mode 0600.
--show-claims and --json print only claims known to be safe to show, never the token.

Exit codes: 0 done; 2 no token, a refused output, or a usage error.
"""


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "token",
        help="get this CI job's OIDC token (the CI is detected)",
        description="Get this CI job's OIDC token: pipe it, write it to a file, or show claims.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_token_source_arguments(parser)
    parser.add_argument(
        "--write", metavar="PATH", type=Path, help="write the token to PATH (0600, atomic)"
    )
    parser.add_argument(
        "--show-claims", action="store_true", help="print the token's safe claims, not the token"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document about the token, not it"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console) -> int:
    to_stdout = not (args.write or args.show_claims or args.json)
    # Checked before the token is fetched: a refusal should cost no request to the CI.
    if to_stdout and console.stdout_is_terminal():
        raise OutputError(
            "refusing to print the token to a terminal (it would stay in the scrollback)",
            remedy=(
                "Write it to a file:   keyless token --write ~/.aws/web-identity-token\n"
                "Pipe it:              keyless token | some-command\n"
                "Look at its claims:   keyless token --show-claims"
            ),
        )
    obtained = obtain_token(
        console.env,
        ci=args.ci,
        audience=args.audience,
        token_file=args.token_file,
        token_env=args.token_env,
    )
    try:
        token = tokens.peek(obtained.token)
    except TokenError as exc:
        raise TokenError(f"the token from {obtained.source} is malformed: {exc.message}") from exc
    expires = token.time_claim("exp")
    now = console.seams.clock()
    expired = expires is not None and expires + TOKEN_LEEWAY_SECONDS < now
    if expires is not None and expired and (to_stdout or args.write):
        raise TokenVerificationError(
            f"the token from {obtained.source} expired at {claims_view.iso(expires)}",
            check="expired",
            remedy="Tokens live minutes; get a fresh one right before use (re-run the step).",
        )

    written: Path | None = None
    if args.write:
        written = write_secret_file(args.write, obtained.token)
        console.info(
            f"wrote the {PROVIDERS[obtained.provider].display_name} token from"
            f" {obtained.source} to {written}; {_expiry(expires, now)}"
        )
    if to_stdout:
        console.stdout.write(obtained.token)
        console.stdout.flush()
        return EXIT_OK

    claims = claims_view.view(
        token,
        claims_view.safe_claims(
            PROVIDERS[obtained.provider], token.issuer, local_issuers.from_environment(console.env)
        ),
    )
    shown, hidden = dict(claims.shown), list(claims.hidden)
    if args.json:
        console.emit_json(
            {
                "provider": obtained.provider,
                "source": obtained.source,
                "claims": shown,
                "claims_not_shown": hidden,
                "expires_at": claims_view.iso(expires) if expires is not None else None,
                "expired": expired,
                "written": str(written) if written else None,
            }
        )
    elif args.show_claims:
        for line in _human(obtained, shown, hidden, now):
            console.out(line)
    return EXIT_OK


def _human(
    obtained: ObtainedToken, shown: Mapping[str, object], hidden: list[str], now: float
) -> list[str]:
    lines = [
        f"provider: {obtained.provider} ({PROVIDERS[obtained.provider].display_name})",
        f"source:   {obtained.source}",
        "claims:",
    ]
    width = max((len(name) for name in shown), default=0)
    for name, value in shown.items():
        text = claims_view.display(value)
        if (
            name in claims_view.TIME_CLAIMS
            and isinstance(value, int)
            and not isinstance(value, bool)
        ):
            text = claims_view.time_text(name, value, now)
        lines.append(f"  {name.ljust(width)}  {text}")
    if hidden:
        lines.append(claims_view.hidden_line(hidden))
    return lines


def _expiry(expires: int | None, now: float) -> str:
    if expires is None:
        return "the token has no expiry (exp)"
    return claims_view.time_text("exp", expires, now)
