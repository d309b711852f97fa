"""``keyless assume``, ``keyless exec`` and ``keyless credential-process``: the CI token for a
role's temporary credentials, handed on as exports, a profile, a child's environment or JSON.

The three commands share their options (``add_exchange_options``) and one exchange (``exchange``).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from keyless.cli.console import Console
from keyless.cli.main import EXIT_OK, Subparsers
from keyless.cli.token_args import add_token_source_arguments
from keyless.errors import OutputError, UsageError
from keyless.exchange import (
    CredentialRequest,
    Obtained,
    SessionOptions,
    TokenSource,
    assumed_line,
    load_session_policy,
    obtain_credentials,
    resolve_role_arn,
)

_SHARED_EPILOG = """\
The role: --role-arn, else $KEYLESS_ROLE_ARN, else $AWS_OIDC_ROLE_ARN (the Atlassian pipes' name).
The token: the CI is detected as for `keyless token` (--ci, --audience, --token-file, --token-env).
The session name: --session-name, else CI, repository and run, e.g. bitbucket-site-42-3f2a9c1d or
github-acme-site-9876543210-1 (STS allows 2-64 characters of letters, digits and +=,.@_-).

STS is called on the regional endpoint of --region (else AWS_REGION, AWS_DEFAULT_REGION,
us-east-1), or on AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL when set. Throttling, 5xx answers,
IDPCommunicationError and connection failures are retried with jittered backoff (at most 6
attempts, 45 seconds); AccessDenied, InvalidIdentityToken, ExpiredTokenException, malformed
policies and validation errors fail at once. GetCallerIdentity then checks the credentials, and
--expect-account refuses any other account.

No OIDC token is an error (exit 2) with the CI's fix, even when static keys (AWS_ACCESS_KEY_ID)
are set: only --allow-static-fallback uses them, to sts:AssumeRole the same role, with a warning.
"""

_ASSUME_EPILOG = (
    _SHARED_EPILOG
    + """
Output (stdout, never a terminal):
  --format env     export lines:  creds="$(keyless assume --role-arn ARN)" && eval "$creds"
                   (assigned first: eval "$(...)" alone succeeds when the exchange fails)
  --format dotenv  NAME=value lines (docker --env-file, dotenv loaders)
  --format json    the credential_process document (Version 1, ..., Expiration)
  --format github  appends to $GITHUB_ENV for later steps; ::add-mask:: lines mask the values
  --profile NAME   no credentials: writes the token to a 0600 file and sets role_arn,
                   web_identity_token_file, role_session_name and region in profile NAME of the
                   AWS config file (other profiles untouched; `default` only if named), so the
                   SDKs assume the role themselves and re-read the file on refresh. They cannot
                   renew the token: a profile lasts as long as the token (GitHub: 5 minutes;
                   Bitbucket: the step). Not with --duration, session policies or a chained role.
  --json           a summary without secrets instead (with --profile, or to check the exchange)

Exit codes: 0 done; 2 no token, STS refused, wrong account, or a usage error.
"""
)

_EXEC_EPILOG = (
    _SHARED_EPILOG
    + """
COMMAND runs with the credentials in its environment (never in its argv), without any outer
AWS_ACCESS_KEY_ID/SECRET/SESSION_TOKEN, AWS_PROFILE or web identity variables. Signals are
passed on to it. keyless exits with its exit status (128+N when signal N ended it; 127 when
it does not exist).
"""
)

_PROCESS_EPILOG = (
    _SHARED_EPILOG
    + """
For `credential_process` in an AWS config file:

  [profile deploy]
  credential_process = keyless credential-process --role-arn arn:aws:iam::123456789012:role/deploy

Prints the credential_process document (Version 1, AccessKeyId, SecretAccessKey, SessionToken,
Expiration, AccountId); the SDK runs the command again when the credentials expire. Each run
fetches a fresh token where the CI can mint one (GitHub, CircleCI with --audience, Buildkite),
so long jobs keep working past the first session. Bitbucket's and GitLab's tokens are fixed for
the step: once the step's token has expired, a refresh fails with the token's expiry time.
"""
)


def add_exchange_options(
    parser: argparse.ArgumentParser,
    *,
    role_help: str = "the role to assume (default: $KEYLESS_ROLE_ARN)",
    region_help: str = "STS region (default: from environment)",
    session_options: bool = True,
) -> None:
    """The options of every command that exchanges a token (the one place). Without
    ``session_options`` (``deploy``) there are no session policies, second hop or static-key
    fallback; ``exchange`` then reads their defaults."""
    role = parser.add_argument_group("role and session")
    role.add_argument("--role-arn", metavar="ARN", help=role_help)
    role.add_argument("--session-name", metavar="NAME", help="role session name (default: derived)")
    role.add_argument(
        "--duration", metavar="SECONDS", type=int, help="session length, 900-43200 (default 3600)"
    )
    if session_options:
        _add_session_options(role)
    else:
        parser.set_defaults(
            session_policy=None,
            session_policy_arn=[],
            chain_role_arn=None,
            allow_static_fallback=False,
        )
    role.add_argument(
        "--expect-account", metavar="ID", help="refuse credentials of any other account"
    )
    role.add_argument("--region", metavar="REGION", help=region_help)
    if session_options:
        role.add_argument(
            "--allow-static-fallback",
            action="store_true",
            help="without an OIDC token, assume the role with AWS_ACCESS_KEY_ID/SECRET instead",
        )
    token = parser.add_argument_group("token")
    add_token_source_arguments(token)


def _add_session_options(role: argparse._ArgumentGroup) -> None:
    role.add_argument(
        "--session-policy", metavar="FILE", type=Path, help="inline session policy (JSON file)"
    )
    role.add_argument(
        "--session-policy-arn",
        metavar="ARN",
        action="append",
        default=[],
        help="managed session policy (repeatable, at most 10)",
    )
    role.add_argument(
        "--chain-role-arn", metavar="ARN", help="then sts:AssumeRole into this role (second hop)"
    )


def register(subparsers: Subparsers) -> None:
    from keyless.credentials import OutputFormat

    assume = subparsers.add_parser(
        "assume",
        help="trade this job's OIDC token for a role's temporary credentials",
        description="Trade this CI job's OIDC token for a role's temporary AWS credentials.",
        epilog=_ASSUME_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_exchange_options(assume)
    output = assume.add_argument_group("output")
    output.add_argument(
        "--format",
        choices=[f.value for f in OutputFormat],
        help="how to print the credentials (default: env)",
    )
    output.add_argument(
        "--profile", metavar="NAME", help="write AWS config profile NAME instead (see below)"
    )
    output.add_argument(
        "--json", action="store_true", help="print a summary without secrets instead"
    )
    assume.set_defaults(handler=run_assume)

    execute = subparsers.add_parser(
        "exec",
        help="run a command with a role's temporary credentials in its environment",
        description="Run COMMAND with the role's temporary credentials in its environment.",
        usage="keyless exec [options] -- COMMAND [ARG...]",
        epilog=_EXEC_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_exchange_options(execute)
    execute.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    execute.set_defaults(handler=run_exec)

    process = subparsers.add_parser(
        "credential-process",
        help="print credentials for credential_process in an AWS config file",
        description="Print a role's temporary credentials as credential_process JSON.",
        epilog=_PROCESS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_exchange_options(process)
    process.set_defaults(handler=run_credential_process)


# --- the shared exchange -------------------------------------------------------------------------


def request_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> CredentialRequest:
    """The options of ``add_exchange_options`` as a request (the only mapping of them)."""
    from keyless.arn import parse_account_id, parse_role_arn
    from keyless.aws.regions import region_from

    role_arn = resolve_role_arn(args.role_arn, env)
    region = region_from(env, args.region)
    chain = (
        parse_role_arn(args.chain_role_arn, flag="--chain-role-arn")
        if args.chain_role_arn
        else None
    )
    expect = parse_account_id(args.expect_account) if args.expect_account else None
    return CredentialRequest(
        role_arn=role_arn,
        region=region,
        token=TokenSource(
            ci=args.ci, audience=args.audience, token_file=args.token_file, token_env=args.token_env
        ),
        session=SessionOptions(
            name=args.session_name,
            duration_seconds=args.duration,
            policy=load_session_policy(args.session_policy),
            policy_arns=tuple(args.session_policy_arn),
        ),
        expect_account=expect,
        chain_role_arn=chain,
        allow_static_fallback=args.allow_static_fallback,
    )


def obtain(request: CredentialRequest, console: Console) -> Obtained:
    """``obtain_credentials`` with the console's seams (STS, clock) and its stderr."""
    return obtain_credentials(
        request,
        env=console.env,
        sts_factory=console.seams.sts,
        notify=lambda line: console.info(f"keyless: {line}"),
        warn=console.info,
        clock=console.seams.clock,
    )


def exchange(args: argparse.Namespace, console: Console) -> Obtained:
    """Options -> request -> checked credentials; the one path of all three commands."""
    return obtain(request_from_args(args, console.env), console)


def _refuse_terminal(console: Console, what: str) -> None:
    # Checked before the token is fetched: a refusal costs no request and no STS call.
    if console.stdout_is_terminal():
        raise OutputError(
            f"refusing to print {what} to a terminal (they would stay in the scrollback)",
            remedy=(
                "Load them into the shell:\n"
                '  creds="$(keyless assume --role-arn ARN)" && eval "$creds"\n'
                "Run a command with them:   keyless exec --role-arn ARN -- aws s3 ls\n"
                "Write a profile:           keyless assume --role-arn ARN --profile deploy"
            ),
        )


# --- the commands --------------------------------------------------------------------------------


def run_assume(args: argparse.Namespace, console: Console) -> int:
    from keyless.credentials import OutputFormat, render, write_github_env, write_profile

    if args.profile is not None and args.format is not None:
        raise UsageError("--profile and --format exclude each other: a profile holds no keys")
    if args.json and args.format is not None:
        raise UsageError("--json and --format exclude each other: both would use stdout")
    if args.profile is not None:
        for flag, value in (
            ("--duration", args.duration),
            ("--session-policy", args.session_policy),
            ("--session-policy-arn", args.session_policy_arn),
            ("--chain-role-arn", args.chain_role_arn),
        ):
            if value:
                # botocore's web identity provider reads none of these from a profile
                # (docs/aws-sts-iam.md#botocore-web-identity).
                raise UsageError(
                    f"--profile cannot carry {flag}: the SDKs' web identity profiles do not"
                    " support it",
                    remedy="Use credential_process instead (keyless credential-process --help).",
                )
    fmt = OutputFormat(args.format or "env")
    prints_keys = args.profile is None and not args.json and fmt is not OutputFormat.GITHUB
    if prints_keys:
        _refuse_terminal(console, "credentials")

    exchanged = exchange(args, console)
    assumed = exchanged.assumed
    explicit_region = args.region
    written = None
    if args.profile is not None:
        if exchanged.token is None:
            raise UsageError("--profile needs an OIDC token; the static-key fallback has none")
        written = write_profile(
            profile=args.profile,
            role_arn=assumed.role_arn,
            session_name=assumed.session_name,
            region=exchanged.region,
            token=exchanged.token.token,
            env=console.env,
        )
        console.info(
            f"keyless: wrote profile {written.profile} in {written.config_file} (token in"
            f" {written.token_file}); use it with AWS_PROFILE={written.profile}"
        )
    elif args.json:
        pass
    elif fmt is OutputFormat.GITHUB:
        path = write_github_env(
            assumed.credentials, env=console.env, stdout=console.stdout, region=explicit_region
        )
        console.info(f"keyless: appended the credentials to {path} for the job's next steps")
    else:
        console.stdout.write(render(fmt, assumed.credentials, region=explicit_region))
        console.stdout.flush()
    console.info(assumed_line(exchanged))
    if args.json:
        document = assumed.to_json()
        document["profile"] = written.to_json() if written else None
        console.emit_json(document)
    return EXIT_OK


def run_exec(args: argparse.Namespace, console: Console) -> int:
    from keyless.credentials import child_environment, run_command

    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError("no command given: keyless exec [options] -- COMMAND [ARG...]")
    exchanged = exchange(args, console)
    if console.verbose:
        console.info(assumed_line(exchanged))
    env = child_environment(console.env, exchanged.assumed.credentials, region=args.region)
    return run_command(command, env)


def run_credential_process(args: argparse.Namespace, console: Console) -> int:
    from keyless.credentials import render_process_json

    _refuse_terminal(console, "credentials")
    exchanged = exchange(args, console)
    console.stdout.write(render_process_json(exchanged.assumed.credentials))
    console.stdout.flush()
    return EXIT_OK
