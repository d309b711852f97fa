"""The audit as a table, worst role first, then providers no role uses and errors.

Every value comes from the audited input (role names, subjects, file names), so each is escaped
(``keyless.textsafe``): no control character reaches the terminal, no value splits a row, and no
line reads as a CI log command.
"""

from __future__ import annotations

from keyless.audit.report import AuditReport, counts
from keyless.textsafe import escape, safe_lines

__all__ = ["render_text"]

_WHO_WIDTH = 60


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_text(report: AuditReport) -> str:
    header = ["SEVERITY", "ROLE", "WHO CAN ASSUME", "BLAST RADIUS", "FINDINGS"]
    rows = []
    for role in report.roles:
        worst = role.severity
        who = "; ".join(f"{i.ci_name}: {i.words}" for i in role.who_can_assume) or "(unknown)"
        rows.append(
            [
                escape(cell)
                for cell in (
                    worst.value if worst else "ok",
                    role.role_name
                    if role.account_id is None
                    else f"{role.account_id}/{role.role_name}",
                    _clip(who, _WHO_WIDTH),
                    role.blast_radius.text,
                    ", ".join(dict.fromkeys(f.rule for f in role.findings)) or "-",
                )
            ]
        )
    lines = []
    if rows:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    else:
        lines.append(
            "No role trusts an OIDC provider" + (" newly" if report.baseline else "") + "."
        )
    if report.roles_with_missing_provider:
        lines.append("")
        lines.append("Roles trusting an OIDC provider that does not exist:")
        lines.extend(f"  {escape(arn)}" for arn in report.roles_with_missing_provider)
    if report.orphan_providers:
        lines.append("")
        lines.append("OIDC providers no role trusts:")
        lines.extend(f"  {escape(p.arn or p.url)}" for p in report.orphan_providers)
    for error in report.errors:
        lines.append(f"not audited: {escape(error)}")
    tally = ", ".join(f"{n} {s}" for s, n in counts(report.roles).items() if n)
    lines.append("")
    lines.append(
        f"{len(report.roles)} OIDC role(s) of {report.roles_scanned} read"
        + (f": {tally}" if tally else "")
        + (f" (new since {escape(report.baseline)})" if report.baseline else "")
    )
    return safe_lines("\n".join(lines) + "\n")
