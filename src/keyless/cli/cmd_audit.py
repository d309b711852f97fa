"""``keyless audit``: every OIDC-trusting role of an account, an Organization or IaC files, who
can assume it (per CI, in words), what it may do, and what is wrong with its trust.

The audit machinery (boto3, python-hcl2, the renderers) is imported inside ``run`` only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyless.cli.console import Console
from keyless.cli.main import EXIT_NEGATIVE, EXIT_OK, Subparsers
from keyless.errors import OutputError, UsageError

if TYPE_CHECKING:
    pass

_FORMATS = ("text", "json", "sarif", "html")
_SEVERITIES = ("info", "low", "medium", "high", "critical")

_EPILOG = """\
Without FILE, audits the account of the standard AWS credential chain (environment, profile,
SSO, instance role; AWS_ENDPOINT_URL is honoured). --org --role-name NAME audits every active
account of the Organization by assuming NAME in each (run it with the management account's or
a delegated administrator's credentials).

FILE... are offline inputs, their format detected: `aws iam get-account-authorization-details`,
`aws iam list-roles` pages, `aws iam get-role`, `aws iam list-open-id-connect-providers` (without
it, whether a provider exists is unknown), CloudFormation templates (JSON or YAML), Terraform .tf
files and `terraform show -json` plans; '-' reads standard input.

--format text prints a table, worst role first; json the report (schema: docs/audit-schema.json);
sarif one SARIF 2.1.0 result per role; html one self-contained page (matrix, filters, details).
--baseline FILE (a previous --format json report) keeps only findings that are new since it.

--check-thumbprints contacts each provider's issuer that is not a hosted CI's: a key host the
system trusts is publicly trusted (AWS then ignores thumbprints); for others, give their CA with
--ca-bundle PEM, and a thumbprint IAM holds that the host no longer presents is a finding.

Exit codes: 0 reported (no finding at or above --fail-on); 1 a finding at or above --fail-on;
2 unreadable input or AWS refused a read.
"""


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="report every OIDC-trusting role: who can assume it, what it may do, what is wrong",
        description="Audit the roles that trust OIDC providers, in an account, an Organization"
        " or IaC files: who can assume each (per CI, in words), its blast radius, lint findings.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="offline inputs ('-': stdin)")
    parser.add_argument("--org", action="store_true", help="every account of the AWS Organization")
    parser.add_argument(
        "--role-name", metavar="NAME", help="with --org: the role to assume in each account"
    )
    parser.add_argument("--format", choices=_FORMATS, default="text", help="output format")
    parser.add_argument("--output", metavar="PATH", help="write the report here (default: stdout)")
    parser.add_argument(
        "--fail-on",
        choices=_SEVERITIES,
        help="exit 1 when a finding is at least this severe (default: never)",
    )
    parser.add_argument(
        "--baseline", metavar="FILE", help="a previous --format json report: show only what is new"
    )
    parser.add_argument(
        "--check-thumbprints",
        action="store_true",
        help="contact each self-hosted issuer: is IAM's thumbprint the one its key host presents?",
    )
    parser.add_argument(
        "--ca-bundle",
        metavar="PEM",
        type=Path,
        help="with --check-thumbprints: the CA of issuers whose certificates are private",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from keyless import __version__
    from keyless.audit import report as model
    from keyless.audit.offline import load_inputs, read_input
    from keyless.trust.lint import Severity

    if args.org and args.files:
        raise UsageError("--org audits live accounts; it cannot be combined with FILE inputs")
    if args.org and not args.role_name:
        raise UsageError(
            "--org needs --role-name NAME: the role keyless assumes in each member account"
        )
    if args.role_name and not args.org:
        raise UsageError("--role-name applies to --org only")
    if args.ca_bundle and not args.check_thumbprints:
        raise UsageError("--ca-bundle applies to --check-thumbprints only")
    if args.ca_bundle and not args.ca_bundle.is_file():
        raise UsageError(f"--ca-bundle {args.ca_bundle} is not a file (a PEM of CA certificates)")
    baseline = None
    if args.baseline:
        from keyless.jsonlimits import JsonLimitError, loads_bounded
        from keyless.limits import AUDIT_INPUT_MAX_CHARS

        label, text = read_input(args.baseline, None)
        try:
            document: Any = loads_bounded(text, max_chars=AUDIT_INPUT_MAX_CHARS)
        except JsonLimitError as exc:
            raise UsageError(f"baseline {label} {exc}") from None
        except ValueError:
            raise UsageError(f"baseline {label} is not valid JSON") from None
        baseline = (label, model.baseline_keys(document, label))

    if args.files:
        inventory = load_inputs(args.files, console.stdin)
    else:
        # boto3 is imported for a live audit only: offline inputs start without the AWS SDK.
        from keyless.audit.live import live_inventory, org_inventory
        from keyless.aws.clients import region_from

        session = console.seams.admin_session(region_from(console.env))
        inventory = org_inventory(session, args.role_name) if args.org else live_inventory(session)
    if args.check_thumbprints:
        from keyless.audit.thumbprints import check_thumbprints

        inventory = check_thumbprints(inventory, ca_bundle=args.ca_bundle)
    report = model.build_report(inventory)
    if baseline is not None:
        report = model.new_since(report, baseline[1], baseline[0])

    text = _render(report, args.format, __version__)
    if args.output:
        _write_atomically(Path(args.output), text)
        console.info(f"report written to {args.output}")
    else:
        console.stdout.write(text)
    for error in report.errors:
        console.info(f"not audited: {error}")
    if args.fail_on:
        threshold = Severity(args.fail_on)
        worst = report.worst()
        if worst is not None and worst.rank >= threshold.rank:
            return EXIT_NEGATIVE
    return EXIT_OK


def _render(report: Any, output: str, version: str) -> str:
    import json

    if output == "json":
        # Compact: the C encoder only serves indent=None, and an account's report is large.
        return json.dumps(report.to_json(), sort_keys=True, separators=(",", ":")) + "\n"
    if output == "sarif":
        from keyless.audit.render_sarif import render_sarif

        return json.dumps(render_sarif(report, tool_version=version), indent=2) + "\n"
    if output == "html":
        from keyless.audit.render_html import render_html

        return render_html(report, tool_version=version)
    from keyless.audit.render_text import render_text

    return str(render_text(report))


def _write_atomically(path: Path, text: str) -> None:
    # A reader never sees half a report. 0644: reports hold trust policies and findings, no secret.
    from keyless.fsutil import write_public_file

    try:
        write_public_file(path, text.encode("utf-8"), mode=0o644)
    except OutputError as exc:
        raise OutputError(f"--output: {exc.message}", remedy=exc.remedy) from None
