"""``keyless provision``: the IAM OIDC provider and a role pinned to one CI scope, planned and
applied idempotently, or emitted as Terraform or CloudFormation."""

from __future__ import annotations

import argparse
import dataclasses
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyless.ci import local_issuers
from keyless.ci.base import TrustSpec
from keyless.cli.console import Console
from keyless.cli.main import EXIT_OK, Subparsers
from keyless.cli.scope_args import SCOPE_HELP, add_scope_arguments, trust_spec_from_args
from keyless.errors import AwsError, NetworkError, UsageError

if TYPE_CHECKING:
    import boto3

    from keyless.aws.provision import Plan
    from keyless.aws.provision_state import Desired
    from keyless.aws.thumbprint import Thumbprint
    from keyless.cli.seams import ThumbprintReader


_EPILOG = f"""\
{SCOPE_HELP}

What it does, in order: the account's IAM OIDC provider for the CI's issuer (reused when it
exists, with any missing audience added to its client IDs; created otherwise, with the thumbprint
of the issuer's TLS chain); the role, created with the least-privilege trust of `keyless trust
build` for the scope or brought to it; and the role's inline policy keyless-permissions.

Safe to re-run: the plan compares what the account has with what is asked (create / update /
unchanged per item), prints it with a diff of every policy change, and applies exactly the write
calls it lists; a second run with the same arguments reports everything unchanged and writes
nothing. --dry-run prints the plan and writes nothing.

Refusals: a new trust that admits a token the current trust refuses (it widens who can assume the
role) needs --force; a trust with a lint finding of high severity or above needs --allow-risky.
A failure part-way names what now exists and what did not happen; running the same command again
finishes the job.

Permissions: --s3-deploy BUCKET[/PREFIX] grants what `keyless deploy` needs and no more:
s3:ListBucket limited to the prefix (s3:prefix condition), s3:PutObject, s3:GetObject and
s3:AbortMultipartUpload under it, s3:DeleteObject only with --allow-delete, and
cloudfront:CreateInvalidation on the one distribution given with --cloudfront-distribution.
--policy FILE writes a permission policy of your own instead (checked as IAM checks one).

--emit terraform|cloudformation prints the same provider, role, trust and permissions as a
template and touches no account, offline: variables/parameters hold the role name, whether the
provider already exists, thumbprints, session length, boundary and tags. It has no thumbprint
unless --thumbprint HEX is given (IAM retrieves one when it creates the provider); the Terraform
needs AWS provider 5.81.0 or later, where thumbprint_list is optional.

Applied, the provider is created with a thumbprint: the SHA-1 of the top certificate the host
of the issuer's keys presents (IAM User Guide); --thumbprint HEX gives it instead, --ca-bundle
PEM trusts a private CA while reading it. --issuer URL replaces the CI's public issuer (GitHub
Enterprise Server, the local stack).

Credentials and endpoint come from the standard AWS configuration; AWS_ENDPOINT_URL points it at
another IAM (e.g. the local stack). On success the role ARN is printed on standard output.

Exit codes: 0 applied, unchanged or planned; 2 refused, failed or invalid input.
"""


def register(subparsers: Subparsers) -> None:
    from keyless.aws.emit import EmitFormat

    parser = subparsers.add_parser(
        "provision",
        help="create or update the IAM OIDC provider and a role for one CI scope (idempotent)",
        description="Provision the AWS side of the trust: OIDC provider, role, trust, permissions.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_scope_arguments(parser)
    parser.add_argument("--role-name", metavar="NAME", required=True, help="the IAM role")
    permissions = parser.add_mutually_exclusive_group(required=True)
    permissions.add_argument(
        "--policy", metavar="FILE", type=Path, help="the role's permission policy (JSON)"
    )
    permissions.add_argument(
        "--s3-deploy", metavar="BUCKET[/PREFIX]", help="least-privilege preset for keyless deploy"
    )
    parser.add_argument(
        "--cloudfront-distribution",
        metavar="ID",
        help="with --s3-deploy: allow invalidations of this distribution",
    )
    parser.add_argument(
        "--allow-delete",
        action="store_true",
        help="with --s3-deploy: allow deleting objects under the prefix",
    )
    parser.add_argument(
        "--max-session-duration", metavar="S", help="longest session in seconds (3600-43200)"
    )
    parser.add_argument(
        "--permissions-boundary", metavar="ARN", help="managed policy that bounds the role"
    )
    parser.add_argument(
        "--tag", metavar="K=V", action="append", default=[], help="tag the role; repeatable"
    )
    parser.add_argument(
        "--thumbprint", metavar="HEX", help="the provider's thumbprint instead of reading it"
    )
    parser.add_argument(
        "--ca-bundle",
        metavar="PEM",
        type=Path,
        help="CA to trust when reading the thumbprint (default: the system's; for a loopback"
        " issuer, $KEYLESS_LOCAL_CA_BUNDLE)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    parser.add_argument(
        "--force", action="store_true", help="apply a trust change that widens who can assume"
    )
    parser.add_argument(
        "--allow-risky",
        action="store_true",
        help="apply a trust with lint findings of high severity or above",
    )
    parser.add_argument(
        "--emit",
        choices=[f.value for f in EmitFormat],
        help="print a Terraform or CloudFormation template instead of provisioning",
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON document")
    parser.set_defaults(handler=run)


# --- from arguments to the desired state ---------------------------------------------------------


def _check_combinations(args: argparse.Namespace) -> None:
    if args.s3_deploy is None:
        for flag, given in (
            ("--cloudfront-distribution", args.cloudfront_distribution is not None),
            ("--allow-delete", args.allow_delete),
        ):
            if given:
                raise UsageError(
                    f"{flag} belongs to --s3-deploy; with --policy FILE, grant it there"
                )
    if args.thumbprint is not None and args.ca_bundle is not None:
        raise UsageError("--ca-bundle only serves to read the thumbprint; --thumbprint gives it")
    if args.emit is not None:
        for flag, given in (
            ("--dry-run", args.dry_run),
            ("--force", args.force),
            ("--allow-risky", args.allow_risky),
            ("--json", args.json),
        ):
            if given:
                raise UsageError(f"--emit prints a template and touches no account; drop {flag}")
        if args.ca_bundle is not None:
            raise UsageError(
                "--emit reads no certificate (it works offline); drop --ca-bundle, or give"
                " --thumbprint HEX to put a thumbprint in the template"
            )


def _offline_issuer(spec: TrustSpec, console: Console) -> TrustSpec:
    """With --thumbprint no discovery document is read to compare --issuer with, so a trailing
    '/' is dropped, with a notice: no CI keyless knows has one in its issuer (``iss``), and IAM
    would register a second provider, matched by no token, for the URL with it."""
    issuer = spec.issuer
    stripped = issuer.rstrip("/")
    if stripped == issuer or not urllib.parse.urlsplit(stripped).hostname:
        return spec
    console.info(
        f"note: --issuer {issuer}: using {stripped} (the CI's tokens carry no trailing '/'"
        " in iss, and IAM matches the provider URL byte for byte)"
    )
    return dataclasses.replace(spec, issuer=stripped)


def thumbprints(
    args: argparse.Namespace, issuer: str, read: ThumbprintReader, env: Mapping[str, str]
) -> tuple[Thumbprint, ...]:
    """``--thumbprint``, else what ``read`` finds the issuer presenting (trusting
    ``--ca-bundle``, else for a loopback issuer the local stack's exported CA)."""
    from keyless.aws.thumbprint import parse_thumbprint
    from keyless.ci.local_issuers import local_ca_bundle
    from keyless.http import is_loopback

    if args.thumbprint is not None:
        return (parse_thumbprint(args.thumbprint),)
    ca_bundle = args.ca_bundle
    if ca_bundle is None and is_loopback(issuer):
        ca_bundle = local_ca_bundle(env)
    return (read(issuer, ca_bundle=ca_bundle),)


def desired_state(
    args: argparse.Namespace,
    *,
    spec: TrustSpec,
    account: str,
    partition: str,
    prints: tuple[Thumbprint, ...],
) -> Desired:
    """The command's options as ``ProvisionOptions`` for ``provision_request.desired_state``."""
    from keyless.aws import provision_request

    options = provision_request.ProvisionOptions(
        role_name=args.role_name,
        s3_deploy=args.s3_deploy,
        allow_delete=args.allow_delete,
        cloudfront_distribution=args.cloudfront_distribution,
        policy=args.policy,
        tags=tuple(args.tag),
        max_session_duration=args.max_session_duration,
        permissions_boundary=args.permissions_boundary,
    )
    return provision_request.desired_state(
        options, spec=spec, account=account, partition=partition, prints=prints
    )


# --- the command ---------------------------------------------------------------------------------


def run(args: argparse.Namespace, console: Console) -> int:
    from keyless.aws import clients
    from keyless.aws.emit import ACCOUNT_TOKEN, PARTITION_TOKEN, EmitFormat, emit
    from keyless.aws.provision import plan
    from keyless.aws.provision_apply import (
        ProvisionIncompleteError,
        ProvisionRefusedError,
        apply,
        read_current,
    )
    from keyless.aws.thumbprint import parse_thumbprint

    _check_combinations(args)
    spec = trust_spec_from_args(args)
    if args.thumbprint is not None and args.issuer is not None:
        spec = _offline_issuer(spec, console)
    # Everything that can be refused offline is refused before the network is touched.
    desired_state(args, spec=spec, account="000000000000", partition="aws", prints=())
    if args.emit is not None:
        # Offline: a template carries a thumbprint only when one is given. Without one, IAM
        # retrieves it when the provider is created (CreateOpenIDConnectProvider: ThumbprintList
        # is optional) and verifies the key-set endpoint against its own trusted CAs.
        prints: tuple[Thumbprint, ...] = (
            (parse_thumbprint(args.thumbprint),) if args.thumbprint is not None else ()
        )
        if not prints:
            console.info(
                "notice: the template has no thumbprint (IAM retrieves it when it creates the"
                " provider); --thumbprint HEX puts one in"
            )
        template = desired_state(
            args, spec=spec, account=ACCOUNT_TOKEN, partition=PARTITION_TOKEN, prints=prints
        )
        console.stdout.write(emit(template, EmitFormat(args.emit), notes=spec.notes))
        for note in spec.notes:
            console.info(f"Who can assume it: {note}")
        return EXIT_OK

    prints = thumbprints(args, spec.issuer, console.seams.thumbprint, console.env)
    session = console.seams.admin_session(clients.region_from(console.env))
    account, partition = _caller_account(session)
    desired = desired_state(args, spec=spec, account=account, partition=partition, prints=prints)
    iam = clients.client(session, "iam")
    local = local_issuers.from_environment(console.env)
    the_plan = plan(desired, read_current(iam, desired), local=local)
    if not args.json:
        _show_plan(the_plan, console, spec.notes)
    if args.dry_run:
        if args.json:
            console.emit_json(_document(the_plan, args, status="planned", calls=()))
        else:
            _show_refusals(the_plan, args, console)
            console.info(the_plan.dry_run_summary())
        return EXIT_OK
    try:
        applied = apply(the_plan, iam, force=args.force, allow_risky=args.allow_risky)
    except (ProvisionRefusedError, ProvisionIncompleteError) as exc:
        if args.json:
            status = "refused" if isinstance(exc, ProvisionRefusedError) else "incomplete"
            document = _document(the_plan, args, status=status, calls=())
            document["error"] = exc.to_json()
            console.emit_json(document)
        raise
    if args.json:
        status = "applied" if applied.calls else "unchanged"
        console.emit_json(_document(the_plan, args, status=status, calls=applied.calls))
    else:
        console.info(applied.summary())
        console.out(the_plan.role_arn)
    return EXIT_OK


def _caller_account(session: boto3.Session) -> tuple[str, str]:
    """The account and partition of the credentials in use (``sts:GetCallerIdentity`` needs no
    permission)."""
    import botocore.exceptions

    from keyless.aws import clients

    try:
        identity = clients.client(session, "sts").get_caller_identity()
    except botocore.exceptions.NoCredentialsError as exc:
        raise AwsError(
            "no AWS credentials found for the account to provision",
            remedy="Set AWS_PROFILE or the AWS_* variables of an identity allowed to manage IAM.",
        ) from exc
    except botocore.exceptions.EndpointConnectionError as exc:
        raise NetworkError(f"cannot reach AWS STS: {exc}") from exc
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise AwsError(
            f"sts:GetCallerIdentity failed: {error.get('Code')}: {error.get('Message')}"
        ) from exc
    return identity["Account"], identity["Arn"].split(":")[1]


def _document(
    the_plan: Plan, args: argparse.Namespace, *, status: str, calls: tuple[Any, ...]
) -> dict[str, Any]:
    return {
        "status": status,
        "dry_run": bool(args.dry_run),
        "plan": the_plan.to_json(force=args.force, allow_risky=args.allow_risky),
        "calls": [call.operation for call in calls],
    }


def _show_plan(the_plan: Plan, console: Console, notes: tuple[str, ...]) -> None:
    from keyless.aws.provision import Action

    desired = the_plan.desired
    console.info(f"Plan for role {desired.role_name} in account {desired.account_id}:")
    for change in the_plan.changes:
        console.info(f"  {change.action.value:<10} {change.item.value:<21} {change.summary}")
        if change.action is not Action.UNCHANGED:
            for line in change.diff:
                console.info(f"      {line}")
        if change.widening is not None:
            console.info(f"      widens: admits {change.widening.describe()}")
            console.info(f"      the current trust refuses it: {change.widening.current_reason}")
    for finding in the_plan.findings:
        console.info(f"Lint [{finding.severity.value}] {finding.rule}: {finding.message}")
    for note in the_plan.notes:
        console.info(f"Note: {note}")
    for note in notes:
        console.info(f"Who can assume it: {note}")


def _show_refusals(the_plan: Plan, args: argparse.Namespace, console: Console) -> None:
    for refusal in the_plan.refusals(force=args.force, allow_risky=args.allow_risky):
        console.info(f"Applying would be refused: {refusal.reason} (pass {refusal.flag})")
