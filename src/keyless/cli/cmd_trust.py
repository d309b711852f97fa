"""``keyless trust build|check|lint``: least-privilege trust for a CI scope, a token checked
against a trust policy as IAM would, and trust policies linted for over-broad OIDC trust.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from keyless import __version__
from keyless.arn import oidc_provider
from keyless.ci import CI_PROVIDERS, local_issuers
from keyless.cli.console import Console
from keyless.cli.main import EXIT_NEGATIVE, EXIT_OK, Subparsers
from keyless.cli.scope_args import SCOPE_HELP, add_scope_arguments, trust_spec_from_args
from keyless.errors import PolicyError, UsageError
from keyless.jsonlimits import JsonLimitError, loads_bounded
from keyless.limits import DOCUMENT_MAX_CHARS, IAM_OUTPUT_MAX_CHARS, TOKEN_MAX_CHARS
from keyless.textsafe import escape
from keyless.trust.build_format import ACCOUNT_PLACEHOLDER, OutputFormat
from keyless.trust.evaluate import evaluate
from keyless.trust.lines import LineIndex
from keyless.trust.lint import (
    Finding,
    LintContext,
    LintedFile,
    Severity,
    lint,
    sarif,
)
from keyless.trust.model import Policy
from keyless.trust.permissions import writes
from keyless.trust.role_output import RoleTrust, read_trusts
from keyless.trust.verdict import ConditionRow, Evaluation, Outcome, Request

#: Lint exits 1 when a finding is at least this severe, unless --fail-on says otherwise.
DEFAULT_FAIL_ON = Severity.MEDIUM
#: Policy and claims files larger than this are refused before parsing.
MAX_DOCUMENT_BYTES = DOCUMENT_MAX_CHARS

_BUILD_EPILOG = f"""\
{SCOPE_HELP}

The policy has one Allow statement: the CI's OIDC provider as principal,
sts:AssumeRoleWithWebIdentity as action, StringEquals on `aud` and on `sub` where the subject is
exact, StringLike only where a segment changes per run (Bitbucket's step, CircleCI's user) or the
scope is a whole repository. Who can satisfy it is printed on standard error.

--format json prints the policy document (without --account-id the ARN holds {ACCOUNT_PLACEHOLDER});
terraform prints a `locals` value to use as `assume_role_policy`; cloudformation prints a template
with the role (the account comes from the stack when --account-id is not given).

Exit codes: 0 printed; 2 a missing or invalid scope flag.
"""

_CHECK_EPILOG = """\
The token (--token FILE, a compact JWT) is decoded WITHOUT verifying its signature: this command
answers "would this trust policy let this token in", not "is this token genuine". --claims FILE
takes the decoded claims as a JSON object instead. The issuer is the claims' `iss` unless
--issuer is given. With --provider-arn the principal is compared with it exactly; without it only
the issuer part of the principal's ARN is compared, and the output says the account was not
checked.

Only the claims AWS exposes as condition keys for the issuer are visible (sub and aud, plus a
fixed set for GitHub); conditions on others see an absent key, as on AWS. Where AWS documents no
outcome (e.g. an array `aud` under a plain StringEquals) the decision is indeterminate, which is
a denial.

Exit codes: 0 allowed; 1 denied (explicit, implicit or indeterminate); 2 unreadable input.
"""

_LINT_EPILOG = f"""\
Each FILE holds a trust policy document, or what `aws iam get-role`, `aws iam list-roles` (a
page, or a JSON list of pages) or `aws iam get-account-authorization-details` print: every
role's AssumeRolePolicyDocument is linted, decoded or URL-encoded as the IAM API returns it.
It also reads the IAM roles of a CloudFormation template (JSON or YAML, short-form intrinsics),
a Terraform configuration (.tf: jsonencode, aws_iam_policy_document) and a `terraform show
-json` plan; a value only the deployed stack knows (!Ref Param) is reported as unknown
(template-value-unresolved), never judged as literal text.
Findings name the role, the statement, the value and the fix.
Severities: info, low, medium, high, critical. --fail-on (default: {DEFAULT_FAIL_ON.value}) sets the
lowest severity that makes the exit code 1.

--format text prints one line per finding plus its fix; json prints a list of findings (rule,
severity, message, statement, location, fix, file, line); sarif prints SARIF 2.1.0 for GitHub
code scanning (github/codeql-action/upload-sarif).

Exit codes: 0 no finding at or above --fail-on; 1 findings at or above it; 2 unreadable input.
"""


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "trust",
        help="build, check and lint role trust policies",
        description="Build least-privilege trust, check a token against a policy, lint policies.",
    )
    commands = parser.add_subparsers(
        dest="trust_command", metavar="SUBCOMMAND", parser_class=type(parser)
    )
    commands.required = True
    _register_build(commands)
    _register_check(commands)
    _register_lint(commands)


def _register_build(commands: Subparsers) -> None:
    build_parser = commands.add_parser(
        "build",
        help="print a least-privilege trust policy for one CI scope",
        description="Print a least-privilege trust policy for one repository, branch or"
        " environment.",
        epilog=_BUILD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_scope_arguments(build_parser)
    build_parser.add_argument(
        "--account-id", metavar="ID", help="the AWS account of the OIDC provider"
    )
    build_parser.add_argument(
        "--format",
        choices=[f.value for f in OutputFormat],
        default=OutputFormat.JSON.value,
        help="output format (default: json)",
    )
    build_parser.set_defaults(handler=run_build)


def _register_check(commands: Subparsers) -> None:
    check = commands.add_parser(
        "check",
        help="check whether a trust policy lets a token in, as IAM would",
        description="Evaluate a trust policy for a token as IAM would, condition by condition.",
        epilog=_CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("--policy", metavar="FILE", required=True, help="trust policy JSON")
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--token", metavar="FILE", help="a JWT (decoded, not verified); '-' reads stdin"
    )
    source.add_argument(
        "--claims", metavar="FILE", help="the token's claims as a JSON object; '-' reads stdin"
    )
    check.add_argument("--issuer", metavar="URL", help="the issuer (default: the claims' iss)")
    check.add_argument(
        "--provider-arn", metavar="ARN", help="the IAM OIDC provider ARN the token arrives through"
    )
    check.add_argument("--json", action="store_true", help="one JSON document on stdout")
    check.set_defaults(handler=run_check)


def _register_lint(commands: Subparsers) -> None:
    lint_parser = commands.add_parser(
        "lint",
        help="lint trust policies for over-broad or broken OIDC trust",
        description="Lint role trust policies for over-broad or broken OIDC trust.",
        epilog=_LINT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lint_parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="trust policies, or aws iam role output (JSON); '-' reads stdin",
    )
    lint_parser.add_argument(
        "--format", choices=("text", "json", "sarif"), default="text", help="output format"
    )
    lint_parser.add_argument(
        "--fail-on",
        choices=[s.value for s in Severity],
        default=DEFAULT_FAIL_ON.value,
        help=f"lowest severity that fails (default: {DEFAULT_FAIL_ON.value})",
    )
    lint_parser.add_argument(
        "--permissions",
        metavar="FILE",
        help="the role's permissions policy JSON: read-only permissions grade repository-wide"
        " subjects low (default: the role may write)",
    )
    lint_parser.add_argument(
        "--client-id",
        action="append",
        dest="client_ids",
        metavar="ID",
        help="a client ID of the OIDC provider (repeat for each); grades aud-missing",
    )
    lint_parser.add_argument(
        "--ci",
        choices=[p.name for p in CI_PROVIDERS],
        help="the CI of an issuer whose URL does not name it (Terraform Enterprise, GitHub"
        " Enterprise Server, GitLab self-managed)",
    )
    lint_parser.set_defaults(handler=run_lint)


# --- input -------------------------------------------------------------------------------------


def _read_text(
    path: str, what: str, stdin: TextIO | None = None, *, max_chars: int = MAX_DOCUMENT_BYTES
) -> str:
    """The text of ``path``; ``-`` reads ``stdin`` when the caller allows it."""
    if path == "-" and stdin is not None:
        text = stdin.read(max_chars + 1)
        if len(text) > max_chars:
            raise UsageError(f"{what} on standard input is larger than {max_chars} characters")
        if not text.strip():
            raise UsageError(f"{what} on standard input is empty")
        return text
    file = Path(path)
    try:
        if file.is_dir():
            raise UsageError(f"{what} {path} is a folder, not a file")
        with file.open(encoding="utf-8") as handle:
            text = handle.read(max_chars + 1)
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(text) > max_chars:
        raise UsageError(f"{what} {path} is larger than {max_chars} characters")
    if not text.strip():
        raise UsageError(f"{what} {path} is empty")
    return text


def _read_trusts(path: str, stdin: TextIO | None = None) -> tuple[str, tuple[RoleTrust, ...]]:
    """The text of ``path`` and the trust policies in it: a policy, IAM output, or the roles of
    a CloudFormation template, Terraform configuration or plan; ``-`` reads ``stdin`` when the
    caller allows it."""
    text = _read_text(path, "policy file", stdin, max_chars=IAM_OUTPUT_MAX_CHARS)
    try:
        return text, read_trusts(text)
    except PolicyError as exc:
        # Templates are read by audit's readers, loaded only for a file that is no policy.
        from keyless.audit.lint_templates import template_trusts

        templated = template_trusts("<stdin>" if path == "-" else path, text)
        if templated is None:
            raise PolicyError(f"policy file {path}: {exc.message}", remedy=exc.remedy) from None
        return text, templated


def _read_policy(path: str) -> Policy:
    """The one trust policy of ``path`` (a policy, or the output of get-role)."""
    _, trusts = _read_trusts(path)
    if len(trusts) > 1:
        raise UsageError(
            f"policy file {path} holds the trust policies of {len(trusts)} roles; trust check"
            " evaluates one",
            remedy="Pass `aws iam get-role --role-name NAME` output or the policy document.",
        )
    return trusts[0].policy


def _read_claims(args: argparse.Namespace, stdin: TextIO) -> Mapping[str, Any]:
    from keyless import tokens  # only check reads claims: lint and build never load it

    if args.token is not None:
        raw = _read_text(args.token, "token file", stdin).strip()
        if len(raw) > TOKEN_MAX_CHARS:
            raise UsageError(
                f"token file {args.token} holds more than {TOKEN_MAX_CHARS} characters"
            )
        return tokens.peek(raw).claims
    text = _read_text(args.claims, "claims file", stdin)
    try:
        document = tokens.strict_json_loads(text)
    except JsonLimitError as exc:
        raise UsageError(f"claims file {args.claims} {exc}") from None
    except ValueError as exc:
        where = ""
        if isinstance(exc, json.JSONDecodeError):
            where = f" at line {exc.lineno}, column {exc.colno}"
        raise UsageError(f"claims file {args.claims} is not valid JSON{where}") from None
    if not isinstance(document, Mapping):
        raise UsageError(f"claims file {args.claims} must hold a JSON object of claims")
    return document


# --- build -------------------------------------------------------------------------------------


def run_build(args: argparse.Namespace, console: Console) -> int:
    from keyless.trust.build import account_id, build, render

    spec = trust_spec_from_args(args)
    account = account_id(args.account_id) if args.account_id is not None else None
    built = build(spec, account=account)
    output = OutputFormat(args.format)
    console.stdout.write(render(built, output))
    for note in built.notes:
        console.info(f"Who can assume it: {note}")
    if account is None and output is OutputFormat.JSON:
        console.info(f"Replace {ACCOUNT_PLACEHOLDER} with the account ID, or pass --account-id.")
    return EXIT_OK


# --- check -------------------------------------------------------------------------------------


def run_check(args: argparse.Namespace, console: Console) -> int:
    if args.provider_arn is not None and oidc_provider(args.provider_arn) is None:
        raise UsageError(
            f"--provider-arn {args.provider_arn!r} is not an IAM OIDC provider ARN",
            remedy="It looks like arn:aws:iam::123456789012:oidc-provider/"
            "token.actions.githubusercontent.com",
        )
    policy = _read_policy(args.policy)
    claims = _read_claims(args, console.stdin)
    request = Request.from_claims(claims, issuer=args.issuer, provider_arn=args.provider_arn)
    result = evaluate(policy, request)
    if args.json:
        console.emit_json({"policy": args.policy, **result.to_json()})
    else:
        for line in _check_text(result):
            console.out(line)
    return EXIT_OK if result.allowed else EXIT_NEGATIVE


def _show(value: object) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(str(item) for item in value) + "]"
    return str(value)


def _table(rows: Sequence[ConditionRow], several_actions: bool) -> list[str]:
    header = ["", "STMT", "OPERATOR", "KEY", "EXPECTED", "ACTUAL", "RESULT"]
    if several_actions:
        header.insert(2, "ACTION")
    body: list[list[str]] = []
    for row in rows:
        mark = ">" if row.result is not Outcome.PASS else ""
        result = row.result.value if row.result is Outcome.PASS else row.result.value.upper()
        cells = [
            mark,
            str(row.statement),
            row.operator,
            row.key,
            " | ".join(row.values),
            _show(row.actual),
            result,
        ]
        if several_actions:
            cells.insert(2, row.action)
        body.append(cells)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]


def _check_text(result: Evaluation) -> list[str]:
    # The verdict once; each line whole (never wrapped), so values copy and paste as they are.
    verdict = "allow" if result.allowed else f"deny ({result.decision.value})"
    lines = [f"Decision: {verdict}", f"Reason:   {result.reason}", ""]
    rows = result.conditions
    if rows:
        lines.extend(_table(rows, len(result.actions) > 1))
        notes = [(index, row.note) for index, row in enumerate(rows, 1) if row.note]
        if notes:
            lines.append("")
            lines.extend(
                f"  statement {rows[index - 1].statement}, {rows[index - 1].key}: {note}"
                for index, note in notes
            )
    else:
        lines.append("(no conditions evaluated)")
    for statement in result.statements:
        if statement.principal_note and statement.action == result.actions[0]:
            lines.append(f"  statement {statement.index}, principal: {statement.principal_note}")
    if result.notes:
        lines.append("")
        lines.extend(f"Note: {note}" for note in result.notes)
    return lines


# --- lint --------------------------------------------------------------------------------------


def run_lint(args: argparse.Namespace, console: Console) -> int:
    fail_on = Severity(args.fail_on)
    context = LintContext(
        writes=_permissions_write(args.permissions) if args.permissions else None,
        client_ids=tuple(args.client_ids) if args.client_ids else None,
        ci=args.ci,
        local=local_issuers.from_environment(console.env),
    )
    linted: list[LintedFile] = []
    for path in args.files:
        text, trusts = _read_trusts(path, console.stdin)
        lines = LineIndex(text)
        linted.extend(
            LintedFile(
                path=_uri(path),
                text=text,
                lines=lines,
                findings=tuple(lint(trust.policy, context=context)),
                role=trust.role,
                where=trust.where,
                start=trust.start,
                end=trust.end,
            )
            for trust in trusts
        )
    failing = [f for item in linted for f in item.findings if f.severity.rank >= fail_on.rank]
    if args.format == "sarif":
        console.emit_json(sarif(linted, tool_version=__version__))
    elif args.format == "json":
        console.emit_json(
            [_finding_json(item, finding) for item in linted for finding in item.findings]
        )
    else:
        for item in linted:
            # A role name comes from the file: escaped, so it cannot rewrite the terminal.
            who = f"role {escape(item.role)}: " if item.role else ""
            for finding in item.findings:
                console.out(
                    f"{item.path}:{item.line(finding)}: {finding.severity.value}"
                    f" [{finding.rule}] {who}{finding.message}"
                )
                console.out(f"    fix: {finding.fix}")
        total = sum(len(item.findings) for item in linted)
        roles = sum(1 for item in linted if item.role is not None)
        console.info(
            f"{total} finding(s) in {len(args.files)} file(s)"
            + (f" ({roles} role(s))" if roles else "")
            + f"; {len(failing)} at or above {fail_on.value}"
        )
    return EXIT_NEGATIVE if failing else EXIT_OK


def _permissions_write(path: str) -> bool:
    text = _read_text(path, "permissions file")
    try:
        document = loads_bounded(text)
    except ValueError:
        raise PolicyError(f"permissions file {path}: not a JSON policy document") from None
    if not isinstance(document, Mapping):
        raise PolicyError(f"permissions file {path}: not a JSON policy document")
    return writes(document)


def _uri(path: str) -> str:
    # SARIF wants a URI reference: forward slashes, no leading "./".
    posix = Path(path).as_posix()
    return posix.removeprefix("./")


def _finding_json(item: LintedFile, finding: Finding) -> dict[str, Any]:
    return {
        **finding.to_json(),
        "location": item.qualified(finding),
        "file": item.path,
        "line": item.line(finding),
        "role": item.role,
    }
