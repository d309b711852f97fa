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
from keyless.limits import IAM_OUTPUT_MAX_CHARS

if TYPE_CHECKING:
    from keyless.arn import RoleArn
    from keyless.doctor import IamFactory, Report
    from keyless.http import HttpClient
    from keyless.trust.model import Policy


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

Named causes: no-ci, several-cis, oidc-not-enabled, token-unavailable, token-malformed,
token-expired, issuer-unreachable, signature, provider-missing, audience; for a `sub` the role
does not admit, its first component that differs: organization (owner, workspace, group,
organization), repository (repository, project, pipeline), ref (branch
or tag), deployment-environment (a Bitbucket deployment or a GitHub `environment:` changes `sub`),
pull-request; immutable-subject (GitHub's repo:OWNER@ID/REPO@ID form against a name-only
pattern), custom-subject (a custom `sub` template), subject, trust-policy; exchange (STS refused
for another reason). The README's troubleshooting table has each one's symptom and fix.

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
        "--policy",
        metavar="FILE",
        type=Path,
        help="the role's trust policy to evaluate: the JSON document, or `aws iam get-role` output",
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
    policy = _read_policy(args.policy, role_arn) if args.policy is not None else None
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


def _read_policy(path: Path, role_arn: RoleArn | None) -> Policy:
    """The trust policy in ``path``: a policy document, or ``aws iam`` output as ``trust lint``
    and ``trust check`` read it (``get-role``; of a list of roles, the one ``--role-arn`` names)."""
    from keyless.arn import role_name
    from keyless.trust.role_output import read_trusts

    try:
        with path.open(encoding="utf-8") as file:
            text = file.read(IAM_OUTPUT_MAX_CHARS + 1)
    except OSError as exc:
        raise UsageError(f"--policy {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--policy {path} is not UTF-8 text") from None
    if len(text) > IAM_OUTPUT_MAX_CHARS:
        raise UsageError(f"--policy {path} is larger than {IAM_OUTPUT_MAX_CHARS} characters")
    try:
        trusts = read_trusts(text)
    except ValueError as exc:
        raise UsageError(f"--policy {path} is not a JSON policy: {exc}") from None
    except KeylessError as exc:
        raise UsageError(f"--policy {path}: {exc.message}") from exc
    if len(trusts) == 1:
        return trusts[0].policy
    wanted = role_name(role_arn) if role_arn is not None else None
    chosen = [trust for trust in trusts if wanted is not None and trust.role == wanted]
    if len(chosen) == 1:
        return chosen[0].policy
    roles = ", ".join(str(trust.role) for trust in trusts[:5]) + (
        ", ..." if len(trusts) > 5 else ""
    )
    raise UsageError(
        f"--policy {path} holds the trust policies of {len(trusts)} roles ({roles}) and"
        + (f" none is {wanted}" if wanted else " no --role-arn names one"),
        remedy="Pass `aws iam get-role --role-name NAME` output, the policy document, or the"
        " --role-arn of one of its roles.",
    )


def _human(report: Report) -> list[str]:
    from keyless.doctor import Status

    marks = {Status.OK: "ok", Status.PROBLEM: "PROBLEM", Status.SKIPPED: "skipped"}

    lines: list[str] = []
    fixed: dict[str, str] = {}  # fix text -> the step that printed it: each fix is said once
    for step in report.steps:
        lines.append(f"[{marks[step.status]:<7}] {step.name:<9}  {step.summary}")
        lines.extend(f"{'':21}{detail}" for detail in step.details)
        if step.status is Status.PROBLEM and step.cause:
            lines.append(f"{'':21}cause: {step.cause.value}")
        if step.status is Status.PROBLEM and step.fix:
            if step.fix in fixed:
                lines.append(f"{'':21}fix:   as for {fixed[step.fix]} above")
                continue
            fixed[step.fix] = step.name
            fix_lines = step.fix.splitlines() or [""]
            lines.append(f"{'':21}fix:   {fix_lines[0]}")
            lines.extend(f"{'':28}{line}" for line in fix_lines[1:])
    causes = report.causes
    if report.ok:
        lines.append("No problem found.")
    else:
        lines.append(f"Problem found: {', '.join(cause.value for cause in causes) or 'see above'}.")
    return lines
