"""The audit report in Chromium: htmx filters and sorting work under the CSP."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD, fresh_totp

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def page(app, live_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        tab = browser.new_page()
        problems = []
        tab.on("pageerror", lambda e: problems.append(str(e)))
        tab.on(
            "console",
            lambda m: (
                problems.append(m.text)
                if m.type == "error" and "Failed to load resource" not in m.text
                else None
            ),
        )
        # Failed loads are judged by URL: the browser asks for a favicon nobody serves.
        tab.on(
            "response",
            lambda r: (
                problems.append(f"{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico")
                else None
            ),
        )
        tab.goto(f"{live_server}/auth/sign-in")
        tab.get_by_label("Username").fill("admin")
        tab.get_by_label("Password").fill(PASSWORD)
        tab.get_by_role("button", name="Sign in").click()
        tab.get_by_label("Code from your authenticator app").fill(fresh_totp(app, "admin"))
        tab.get_by_role("button", name="Verify").click()
        tab.wait_for_url(f"{live_server}/")
        tab.problems = problems
        yield tab
        browser.close()


@pytest.mark.browser
def test_filters_and_sorting_update_the_table_without_a_reload(page, live_server):
    page.goto(f"{live_server}/admin/audit/")
    marker = page.evaluate("() => (window.fullLoadMarker = Math.random())")
    # Sort by action through the column header (an htmx swap of the table only).
    page.get_by_role("link", name="Action").click()
    page.wait_for_url("**sort=action**")
    assert page.locator("th[aria-sort='ascending']").inner_text().startswith("Action")
    # Then narrow to one action: the sort chosen above is kept.
    page.get_by_label("Action").select_option("auth.sign_in")
    page.wait_for_url("**action=auth.sign_in**")
    assert "sort=action" in page.url
    rows = page.locator("table.audit-table tbody tr")
    assert rows.count() >= 1
    for text in rows.locator("td:nth-child(3)").all_inner_texts():
        assert text == "auth.sign_in"
    assert page.evaluate("() => window.fullLoadMarker") == marker  # never reloaded
    assert page.problems == []
