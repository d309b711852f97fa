"""The HTML report in a real headless Chromium (Debian's chromium, driven by playwright): it
renders, the matrix has the right cells, filters hide rows, a role expands, and the console stays
clean. `make test` installs chromium first (`make system-deps`); under CI a missing chromium fails
the run, and only outside CI is the test skipped, saying what to install."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from keyless.audit.offline import load_text
from keyless.audit.render_html import render_html
from keyless.audit.report import build_report
from tests.unit.audit.dumps import KINDS, authorization_details

FOUND = shutil.which("chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path(__file__).parents[3] / "docs" / "audit-report.png"
# Read at import: the suite's autouse fixture strips KEYLESS_* and CI before each test.
UPDATE_SCREENSHOT = os.environ.get("KEYLESS_UPDATE_SCREENSHOT") == "1"

if FOUND is None:
    if os.environ.get("CI"):
        pytest.fail("chromium is missing on CI: make system-deps (apt-get install -y chromium)")
    pytest.skip(
        "chromium is not on PATH (make system-deps, or apt-get install -y chromium)",
        allow_module_level=True,
    )
CHROMIUM = Path(FOUND)


def test_report_renders_filters_and_expands_in_chromium(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    dump = authorization_details(per_kind=3, service_roles=2)
    report = build_report(load_text("dump.json", json.dumps(dump.document)))
    page_file = tmp_path / "audit.html"
    page_file.write_text(render_html(report, tool_version="test"))
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri())
            rows = page.locator("tr.role")
            assert rows.count() == 3 * len(KINDS)
            assert page.locator("#shown").text_content() == str(3 * len(KINDS))
            headers = page.locator("#matrix thead th").all_text_contents()
            assert "GitHub Actions" in headers
            assert "GitLab CI" in headers
            column = headers.index("GitHub Actions")
            row = page.locator('tr.role[data-arn$=":role/gh-pr-org-000"]')
            cell = row.locator("td").nth(column)
            assert cell.text_content() == "pull requests of any repository in org acme"
            gitlab = row.locator("td").nth(headers.index("GitLab CI"))
            assert gitlab.text_content() == "—"

            page.select_option("#filter-severity", "critical")
            visible = page.locator("tr.role:not(.hidden)")
            assert visible.count() == 3
            assert set(visible.evaluate_all("rs => rs.map(r => r.dataset.severity)")) == {
                "critical"
            }
            page.select_option("#filter-severity", "all")
            page.select_option("#filter-ci", "gitlab")
            assert page.locator("tr.role:not(.hidden)").count() == 3
            page.select_option("#filter-ci", "all")
            page.fill("#filter-text", "gh-branch-001")
            assert page.locator("tr.role:not(.hidden)").count() == 1
            page.fill("#filter-text", "")
            assert page.locator("tr.role:not(.hidden)").count() == 3 * len(KINDS)

            detail = page.locator("#" + str(row.get_attribute("data-detail")))
            assert not detail.is_visible()
            row.click()
            assert detail.is_visible()
            assert "subject-org-wide" in (detail.text_content() or "")
            assert "Fix:" in (detail.text_content() or "")
            shot = tmp_path / "audit.png"
            page.screenshot(path=str(shot), full_page=False)
            assert shot.stat().st_size > 0
            if UPDATE_SCREENSHOT:
                shutil.copyfile(shot, SCREENSHOT)
        finally:
            browser.close()
    assert errors == []
    assert [u for u in requests if not u.startswith("file://")] == []
