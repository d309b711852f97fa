"""``keyless pipe``: run as the Atlassian AWS pipes do, from the same variables, with OIDC only."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from keyless.cli.console import Console
from keyless.cli.main import EXIT_OK, Subparsers

if TYPE_CHECKING:
    import boto3

    from keyless.deploy.pipe import PipeSettings

_S3_EPILOG = """\
Variables (as atlassian/aws-s3-deploy): S3_BUCKET (BUCKET or BUCKET/PREFIX) and LOCAL_PATH
(required); AWS_OIDC_ROLE_ARN, AWS_DEFAULT_REGION, ACL, CACHE_CONTROL, CONTENT_ENCODING, EXPIRES,
STORAGE_CLASS, DELETE_FLAG (true: --delete, with keyless' delete guard), DEBUG (true/false),
PRE_EXECUTION_SCRIPT (run with bash before the deploy; its failure fails the pipe), and EXTRA_ARGS
with these aws s3 sync options: --exclude, --include, --acl, --cache-control, --content-encoding,
--content-type, --expires, --storage-class, --metadata, --delete, --dryrun (and --follow-symlinks,
--no-progress, --only-show-errors, --quiet, which change nothing). Any other option is refused.
keyless only: MAX_DELETE_PERCENT (the delete guard, default 50) and FORCE_DELETE (true: past it).
Without AWS_OIDC_ROLE_ARN, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are read as the AWS CLI
reads them.

With AWS_OIDC_ROLE_ARN the step's OIDC token is exchanged for the role as `keyless assume` does
it (same retries, errors and session name; Bitbucket: the step needs `oidc: true`); without a
token that is an error, never a fall-back to stored keys.

Exit codes: 0 deployed; 2 refused or failed.
"""

_CF_EPILOG = """\
Variables (as atlassian/aws-cloudfront-invalidate): DISTRIBUTION_ID (required), PATHS
(space-separated, default /*), AWS_OIDC_ROLE_ARN, AWS_DEFAULT_REGION, DEBUG.

Exit codes: 0 invalidation created; 2 refused or failed.
"""


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "pipe",
        help="run as an Atlassian AWS pipe, from its variables (OIDC only)",
        description="Run as an Atlassian AWS pipe, reading its variables from the environment.",
    )
    pipes = parser.add_subparsers(dest="pipe", metavar="PIPE", parser_class=type(parser))
    pipes.required = True
    s3 = pipes.add_parser(
        "aws-s3-deploy",
        help="keyless deploy from the atlassian/aws-s3-deploy variables",
        description="keyless deploy, configured by the atlassian/aws-s3-deploy variables.",
        epilog=_S3_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s3.set_defaults(handler=run_s3_deploy)
    cf = pipes.add_parser(
        "aws-cloudfront-invalidate",
        help="a CloudFront invalidation from the atlassian/aws-cloudfront-invalidate variables",
        description="Invalidate CloudFront paths from the aws-cloudfront-invalidate variables.",
        epilog=_CF_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cf.set_defaults(handler=run_cloudfront_invalidate)


def run_s3_deploy(args: argparse.Namespace, console: Console) -> int:
    from keyless.cli import cmd_deploy
    from keyless.deploy import pipe
    from keyless.deploy.apply import InvalidationFailedError
    from keyless.deploy.plan import DeleteRefusedError

    # Every variable is read (and a bad one refused) before anything runs.
    settings = pipe.settings(console.env, pipe.S3_PIPE)
    console.verbose = console.verbose or settings.debug
    request = pipe.s3_deploy_request(console.env)
    script = pipe.pre_execution_script(console.env)
    if script is not None:
        console.info(f"keyless: running PRE_EXECUTION_SCRIPT {script}")
        pipe.run_pre_execution_script(script, console.env)
    notice = pipe.unused_keys_notice(console.env, settings)
    if notice:
        console.info(notice)
    session = _session(settings, console, pipe.S3_PIPE)
    progress = cmd_deploy.progress_for(console, json=False)
    try:
        try:
            result = console.seams.deploy(request, session=session, progress=progress)
        finally:
            progress.close()
    except DeleteRefusedError as exc:
        raise pipe.delete_refused(exc) from None
    except InvalidationFailedError as failed:
        # The upload summary first: the deploy itself succeeded, and the error says so.
        cmd_deploy.report(failed.result, console, json=False)
        raise
    cmd_deploy.report(result, console, json=False)
    return EXIT_OK


def run_cloudfront_invalidate(args: argparse.Namespace, console: Console) -> int:
    from keyless.aws import clients
    from keyless.deploy import pipe
    from keyless.deploy.apply import invalidate

    settings = pipe.settings(console.env, pipe.CLOUDFRONT_PIPE)
    console.verbose = console.verbose or settings.debug
    wanted = pipe.invalidation(console.env)
    session = _session(settings, console, pipe.CLOUDFRONT_PIPE)
    # keyless' timeouts and bounded retries, not botocore's defaults (60 s reads, legacy retries).
    cloudfront = clients.client(session, "cloudfront")
    ident = invalidate(cloudfront, wanted.distribution_id, list(wanted.paths))
    console.info(
        f"CloudFront invalidation {ident} created for {wanted.distribution_id}: "
        + " ".join(wanted.paths)
    )
    return EXIT_OK


def _session(settings: PipeSettings, console: Console, name: str) -> boto3.Session:
    """``AWS_OIDC_ROLE_ARN``: the role's credentials from the step's token, through the exchange
    of ``keyless assume`` (token detection, retries, session name, no fall-back to stored keys);
    else the standard AWS configuration."""
    from keyless.arn import parse_role_arn
    from keyless.aws.clients import region_from, temporary_session
    from keyless.cli import cmd_assume
    from keyless.deploy import pipe
    from keyless.errors import CredentialError
    from keyless.exchange import CredentialRequest, assumed_line

    if settings.role_arn is None:
        ambient = pipe.ambient_session(settings)
        if ambient.get_credentials() is None:
            raise pipe.no_credentials_error(name)
        return ambient
    request = CredentialRequest(
        role_arn=parse_role_arn(settings.role_arn, flag="AWS_OIDC_ROLE_ARN"),
        region=region_from(console.env, settings.region),
    )
    try:
        exchanged = cmd_assume.obtain(request, console)
    except CredentialError as exc:
        raise pipe.token_error(exc, name) from None
    console.info(assumed_line(exchanged))
    return temporary_session(exchanged.assumed.credentials, region=exchanged.region)
