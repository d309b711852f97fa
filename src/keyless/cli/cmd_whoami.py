"""``keyless whoami``: who the AWS credentials of this environment are (GetCallerIdentity), and for
an assumed role, the role and the session.
"""

from __future__ import annotations

import argparse

from keyless.cli.console import Console
from keyless.cli.main import EXIT_OK, Subparsers
from keyless.errors import CredentialError

_EPILOG = """\
Credentials come from where every AWS SDK finds them: AWS_ACCESS_KEY_ID/SECRET/SESSION_TOKEN,
else the profile AWS_PROFILE names (web identity, credential_process, SSO, keys), else the
default profile, container or instance credentials. The endpoint follows AWS_ENDPOINT_URL_STS /
AWS_ENDPOINT_URL. GetCallerIdentity needs no IAM permission.

Exit codes: 0 shown; 2 no credentials, or STS refused them.
"""


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "whoami",
        help="show who this environment's AWS credentials are",
        description="Show the account, ARN and user id of this environment's AWS credentials.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--region", metavar="REGION", help="STS region (default: from environment)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from botocore.exceptions import BotoCoreError

    from keyless.aws.clients import region_from
    from keyless.aws.sts import STATIC_KEY_VARIABLES, SigningKeys

    region = region_from(console.env, args.region)
    session = console.seams.ambient_session(console.env, region)
    try:
        found = session.get_credentials()
        frozen = found.get_frozen_credentials() if found is not None else None
    except BotoCoreError as exc:
        raise CredentialError(
            f"the AWS credentials of this environment cannot be loaded: {type(exc).__name__}"
        ) from exc
    if found is None or frozen is None or not frozen.access_key or not frozen.secret_key:
        raise CredentialError(
            "no AWS credentials in this environment",
            remedy=(
                "Get a role's credentials first, e.g.\n"
                '  creds="$(keyless assume --role-arn ARN)" && eval "$creds"\n'
                "  keyless exec --role-arn ARN -- keyless whoami"
            ),
        )
    keys = SigningKeys(
        access_key_id=frozen.access_key,
        secret_access_key=frozen.secret_key,
        session_token=frozen.token,
    )
    sts = console.seams.sts(console.env, region, lambda line: console.info(f"keyless: {line}"))
    identity = sts.caller_identity(keys, role="this environment's credentials")
    # ambient_session passes the environment's keys explicitly: name where they came from.
    from_env = all(console.env.get(name) for name in STATIC_KEY_VARIABLES)
    source = "env" if from_env else getattr(found, "method", None) or "unknown"
    if args.json:
        console.emit_json({**identity.to_json(), "credential_source": source})
        return EXIT_OK
    assumed = identity.assumed_role
    lines = [
        ("account", identity.account),
        ("arn", identity.arn),
        ("user id", identity.user_id),
    ]
    if assumed is not None:
        lines += [("role", assumed[0]), ("session", assumed[1])]
    lines.append(("from", source))
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        console.out(f"{name + ':':<{width + 1}} {value}")
    return EXIT_OK
