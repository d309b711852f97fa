"""``keyless doctor``: check the whole chain from the CI to the role, step by step, and name the
cause and the fix of each problem found.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.cli.console import Console
from keyless.cli.main import EXIT_NEGATIVE, EXIT_OK, Subparsers
from keyless.cli.token_args import add_token_source_arguments, issuer_http
from keyless.errors import KeylessError, UsageError
from keyless.exchange import ROLE_ARN_VARIABLES
from keyless.trust.model import loads_policy

if TYPE_CHECKING:
    from keyless.doctor import IamFactory, Report
    from keyless.http import HttpClient


def make_iam(env: Mapping[str, str], region: str) -> IamFactory:
    """The IAM seam: the environment's own credentials, if it has any."""
    from keyless.doctor import iam_client_for

    return iam_client_for(env, region=region)


def make_http(ca_bundle: Path | None, env: Mapping[str, str]) -> HttpClient:
    """``--ca-bundle`` for every host; else the local stack's exported CA, for loopback hosts."""
    return issuer_http(ca_bundle, env)


_EPILOG = """\
Steps, each ok, problem or skipped (with the reason):
  ci         which CI this is (from its variables)
  token      the job's OIDC token, or why there is none (e.g. no `oidc: true` / `id-token: write`)
  claims     the claims safe to show, and the IAM condition keys they become
  time       exp / nbf against this machine's clock
  signature  the token against its issuer's published keys (discovery + JWKS over HTTPS)
  provider   the IAM OIDC provider for the issuer exists and lists the token's audience
             (needs credentials that may read IAM; else from --policy, else skipped)
  trust      the role's trust policy (from IAM, or --policy FILE) evaluated condition by condition
  exchange   AssumeRoleWithWebIdentity itself (with --role-arn or $KEYLESS_ROLE_ARN)
  identity   GetCallerIdentity with the credentials STS issued (they are then discarded)

Named causes: oidc-not-enabled, token-expired, issuer-unreachable, signature, provider-missing,
audience; for a `sub` the role does not admit, its first component that differs: organization
(owner, workspace, group, organization), repository (repository, project, pipeline), ref (branch
or tag), deployment-environment (a Bitbucket deployment or a GitHub `environment:` changes `sub`),
pull-request; immutable-subject (GitHub's repo:OWNER@ID/REPO@ID form against a name-only
pattern), custom-subject (a custom `sub` template), subject, trust-policy.

Nothing secret is printed: no token, no keys. Exit codes: 0 every step ok or skipped; 1 a problem
was found; 2 a usage error (e.g. an unreadable --policy).
"""


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check CI, token, IAM provider, trust policy and the exchange, step by step",
        description="Diagnose why (or check that) this CI job can assume the role.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--role-arn", metavar="ARN", help="the role to check (default: $KEYLESS_ROLE_ARN)"
    )
    parser.add_argument(
        "--policy", metavar="FILE", type=Path, help="the role's trust policy (JSON) to evaluate"
    )
    parser.add_argument("--region", metavar="REGION", help="STS region (default: from environment)")
    add_token_source_arguments(parser)
    parser.add_argument(
        "--ca-bundle",
        metavar="PEM",
        type=Path,
        help="CA certificates to trust for the issuer instead of the system's (default:"
        " the system's, and for a loopback issuer also $KEYLESS_LOCAL_CA_BUNDLE)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console) -> int:

    from keyless.arn import parse_role_arn
    from keyless.aws.clients import region_from
    from keyless.doctor import DoctorRequest, diagnose

    env = console.env
    role_arn = None
    if args.role_arn:
        role_arn = parse_role_arn(args.role_arn)
    else:
        named = next((name for name in ROLE_ARN_VARIABLES if env.get(name)), None)
        if named is not None:
            role_arn = parse_role_arn(env[named], flag=named)
    policy = None
    if args.policy is not None:
        try:
            policy = loads_policy(args.policy.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"--policy {args.policy}: {exc.strerror or exc}") from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"--policy {args.policy} is not a JSON policy: {exc}") from None
        except KeylessError as exc:
            raise UsageError(f"--policy {args.policy}: {exc.message}") from exc
    if args.ca_bundle is not None and not args.ca_bundle.is_file():
        raise UsageError(f"--ca-bundle {args.ca_bundle} is not a readable file")
    http = make_http(args.ca_bundle, console.env)
    region = region_from(env, args.region)
    request = DoctorRequest(
        env=env,
        ci=args.ci,
        audience=args.audience,
        token_file=args.token_file,
        token_env=args.token_env,
        role_arn=role_arn,
        policy=policy,
        policy_source=f"--policy {args.policy}" if args.policy else None,
        region=args.region,
    )
    report = diagnose(
        request,
        http=http,
        sts=console.seams.sts(env, region, lambda line: console.info(f"keyless: {line}")),
        iam=make_iam(env, region),
        clock=console.seams.clock,
    )
    if args.json:
        console.emit_json(report.to_json())
    else:
        for line in _human(report):
            console.out(line)
    return EXIT_OK if report.ok else EXIT_NEGATIVE


def _human(report: Report) -> list[str]:
    from keyless.doctor import Status

    marks = {Status.OK: "ok", Status.PROBLEM: "PROBLEM", Status.SKIPPED: "skipped"}

    lines: list[str] = []
    for step in report.steps:
        lines.append(f"[{marks[step.status]:<7}] {step.name:<9}  {step.summary}")
        lines.extend(f"{'':21}{detail}" for detail in step.details)
        if step.status is Status.PROBLEM and step.cause:
            lines.append(f"{'':21}cause: {step.cause.value}")
        if step.status is Status.PROBLEM and step.fix:
            fix_lines = step.fix.splitlines() or [""]
            lines.append(f"{'':21}fix:   {fix_lines[0]}")
            lines.extend(f"{'':28}{line}" for line in fix_lines[1:])
    causes = report.causes
    if report.ok:
        lines.append("No problem found.")
    else:
        lines.append(f"Problem found: {', '.join(cause.value for cause in causes) or 'see above'}.")
    return lines
