"""The audit as ONE self-contained HTML file: inline CSS and JS, no external asset. A roles x CI
matrix (each cell: who of that CI can assume the role), rows coloured by the worst finding,
filters by severity, by CI and by text, and each role expandable to its trust, findings and fixes.

Every value is HTML-escaped where it is written; the report JSON embedded for the script has
``<``, ``>``, ``&`` and U+2028/9 escaped, so no value can close the ``<script>`` element.
"""

from __future__ import annotations

import json
from html import escape

from keyless.audit.report import AuditReport, RoleReport, counts
from keyless.trust.lint import Severity

__all__ = ["embedded_json", "render_html"]

_CSS = """
:root{--critical:#7f1d1d;--high:#c2410c;--medium:#b45309;--low:#1d4ed8;--info:#475569;--ok:#15803d}
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#111}
h1{font-size:1.3rem;margin:0 0 .3rem}
.summary span{display:inline-block;margin-right:.8rem}
.filters{margin:1rem 0;display:flex;gap:.8rem;align-items:center;flex-wrap:wrap}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f4f6;position:sticky;top:0}
tr.role{cursor:pointer}
tr.role:hover{background:#f9fafb}
.sev{color:#fff;border-radius:3px;padding:0 .4rem;font-weight:600;font-size:.8rem}
.sev-critical{background:var(--critical)}.sev-high{background:var(--high)}
.sev-medium{background:var(--medium)}.sev-low{background:var(--low)}
.sev-info{background:var(--info)}.sev-ok{background:var(--ok)}
tr.role.sev-row-critical td:first-child{border-left:6px solid var(--critical)}
tr.role.sev-row-high td:first-child{border-left:6px solid var(--high)}
tr.role.sev-row-medium td:first-child{border-left:6px solid var(--medium)}
tr.role.sev-row-low td:first-child{border-left:6px solid var(--low)}
tr.role.sev-row-info td:first-child{border-left:6px solid var(--info)}
tr.role.sev-row-ok td:first-child{border-left:6px solid var(--ok)}
td.cell ul{margin:0;padding-left:1rem}
td.cell.empty{color:#9ca3af}
li.wide{color:var(--critical);font-weight:600}
tr.detail td{background:#fafafa}
tr.detail pre{white-space:pre-wrap;font-size:12px;max-height:20rem;overflow:auto}
.hidden{display:none}
.muted{color:#6b7280}
"""

_JS = """
(function(){
  var data = JSON.parse(document.getElementById('audit-data').textContent);
  var rank = {info:0, low:1, medium:2, high:3, critical:4};
  var sev = document.getElementById('filter-severity');
  var ci = document.getElementById('filter-ci');
  var text = document.getElementById('filter-text');
  var rows = Array.prototype.slice.call(document.querySelectorAll('tr.role'));
  function apply(){
    var min = sev.value, want = ci.value, needle = text.value.trim().toLowerCase();
    var shown = 0;
    rows.forEach(function(row){
      var s = row.getAttribute('data-severity');
      var ok = true;
      if (min !== 'all') ok = s !== 'ok' && rank[s] >= rank[min];
      var cis = ' ' + row.getAttribute('data-ci') + ' ';
      if (ok && want !== 'all') ok = cis.indexOf(' ' + want + ' ') >= 0;
      if (ok && needle) ok = row.getAttribute('data-text').indexOf(needle) >= 0;
      row.classList.toggle('hidden', !ok);
      var detail = document.getElementById(row.getAttribute('data-detail'));
      if (!ok) detail.classList.add('hidden');
      if (ok) shown++;
    });
    document.getElementById('shown').textContent = String(shown);
  }
  rows.forEach(function(row){
    row.addEventListener('click', function(){
      var detail = document.getElementById(row.getAttribute('data-detail'));
      var open = detail.classList.toggle('hidden');
      row.setAttribute('aria-expanded', String(!open));
    });
  });
  sev.addEventListener('change', apply);
  ci.addEventListener('change', apply);
  text.addEventListener('input', apply);
  document.getElementById('roles-total').textContent = String(data.roles.length);
  apply();
})();
"""

#: Nothing from elsewhere may load: the report works offline and leaks nothing when opened.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

#: Breadths that admit more than one repository or project (keyless.trust.lint.Breadth).
_WIDE = frozenset({"all", "cross-tenant", "org-wide"})


def embedded_json(value: object) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``</script>``, ``<!--`` or line
    separators that end a JavaScript string."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _columns(report: AuditReport) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for role in report.roles:
        for identity in role.who_can_assume:
            seen.setdefault(identity.ci, identity.ci_name if identity.ci != "other" else "Other")
    return sorted(seen.items(), key=lambda item: (item[0] == "other", item[1]))


def _row(number: int, role: RoleReport, columns: list[tuple[str, str]]) -> str:
    worst = role.severity
    level = worst.value if worst else "ok"
    cis = sorted({i.ci for i in role.who_can_assume})
    search = " ".join(
        [role.role_name, role.arn, *(i.words for i in role.who_can_assume), role.blast_radius.text]
        + [f.rule for f in role.findings]
    ).lower()
    cells = []
    for ci, _ in columns:
        items = [i for i in role.who_can_assume if i.ci == ci]
        if not items:
            cells.append('<td class="cell empty" data-ci="' + escape(ci) + '">—</td>')
            continue
        entries = "".join(
            f'<li class="{"wide" if i.breadth in _WIDE else "narrow"}"'
            f' title="{escape(i.pattern or "no condition on sub")}">{escape(i.words)}</li>'
            for i in items
        )
        cells.append(f'<td class="cell" data-ci="{escape(ci)}"><ul>{entries}</ul></td>')
    detail_id = f"detail-{number}"
    findings = "".join(
        f'<li><span class="sev sev-{f.severity.value}">{escape(f.severity.value)}</span>'
        f" <code>{escape(f.rule)}</code> {escape(f.message)}<br>"
        f'<span class="muted">Fix: {escape(f.fix)}</span></li>'
        for f in role.findings
    )
    providers = "".join(
        f"<li>{escape(p.url)}: "
        + {True: "exists", False: "<b>does not exist</b>", None: "existence not known"}[p.exists]
        + (f", client IDs {escape(', '.join(p.client_ids))}" if p.client_ids else "")
        + "</li>"
        for p in role.providers
    )
    source = ""
    if role.source is not None and role.source.file:
        where = role.source.file + (f":{role.source.line}" if role.source.line else "")
        source = f"<p>Source: <code>{escape(where)}</code></p>"
    trust = escape(json.dumps(role.trust, indent=2, sort_keys=True))
    span = len(columns) + 3
    return (
        f'<tr class="role sev-row-{level}" data-severity="{level}"'
        f' data-ci="{escape(" ".join(cis))}"'
        f' data-text="{escape(search)}" data-detail="{detail_id}" data-arn="{escape(role.arn)}"'
        f' aria-expanded="false">'
        f'<td><span class="sev sev-{level}">{escape(level)}</span></td>'
        f"<td><b>{escape(role.role_name)}</b><br>"
        f'<span class="muted">{escape(role.arn)}</span></td>'
        + "".join(cells)
        + f"<td>{escape(role.blast_radius.text)}</td></tr>"
        f'<tr class="detail hidden" id="{detail_id}"><td colspan="{span}">'
        f"<h3>Findings</h3><ul>{findings or '<li>none</li>'}</ul>"
        f"<h3>Providers</h3><ul>{providers or '<li>none</li>'}</ul>{source}"
        f"<h3>Trust policy</h3><pre>{trust}</pre></td></tr>"
    )


def render_html(report: AuditReport, *, tool_version: str) -> str:
    columns = _columns(report)
    tally = counts(report.roles)
    summary = "".join(
        f'<span><span class="sev sev-{escape(s)}">{escape(s)}</span> {n}</span>'
        for s, n in tally.items()
    )
    options = "".join(
        f'<option value="{s.value}">{s.value} and worse</option>' for s in reversed(Severity)
    )
    ci_options = "".join(
        f'<option value="{escape(ci)}">{escape(name)}</option>' for ci, name in columns
    )
    head = "".join(f"<th>{escape(name)}</th>" for _, name in columns)
    body = "".join(_row(n, role, columns) for n, role in enumerate(report.roles))
    extras = ""
    if report.roles_with_missing_provider:
        extras += (
            "<h2>Roles trusting a provider that does not exist</h2><ul>"
            + "".join(f"<li>{escape(a)}</li>" for a in report.roles_with_missing_provider)
            + "</ul>"
        )
    if report.orphan_providers:
        extras += (
            "<h2>OIDC providers no role trusts</h2><ul>"
            + "".join(f"<li>{escape(p.arn or p.url)}</li>" for p in report.orphan_providers)
            + "</ul>"
        )
    if report.errors:
        extras += (
            "<h2>Not audited</h2><ul>"
            + "".join(f"<li>{escape(e)}</li>" for e in report.errors)
            + "</ul>"
        )
    baseline = f" — new since {escape(report.baseline)}" if report.baseline else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<title>keyless audit</title><style>{_CSS}</style></head>
<body>
<h1>keyless audit: who can assume which role{baseline}</h1>
<p class="muted">{len(report.roles)} OIDC-trusting role(s) of {report.roles_scanned} read;
keyless {escape(tool_version)}. Click a role for its trust, findings and fixes.</p>
<div class="summary">{summary}</div>
<div class="filters">
<label>Severity <select id="filter-severity">
<option value="all">all</option>{options}</select></label>
<label>CI <select id="filter-ci"><option value="all">all</option>{ci_options}</select></label>
<label>Search <input id="filter-text" type="search" placeholder="role, repository, rule"></label>
<span><span id="shown">0</span> of <span id="roles-total">0</span> shown</span>
</div>
<table id="matrix"><thead><tr><th>Severity</th><th>Role</th>{head}<th>Blast radius</th></tr></thead>
<tbody>{body}</tbody></table>
{extras}
<script type="application/json" id="audit-data">{embedded_json(report.to_json())}</script>
<script>{_JS}</script>
</body></html>
"""
