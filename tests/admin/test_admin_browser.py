"""Admin pages in Chromium with JavaScript turned off: confirmations still work."""

from __future__ import annotations

import pytest

from tests.audit.test_report_browser import CHROMIUM_ARGS
from tests.conftest import PASSWORD, fresh_totp


@pytest.mark.browser
def test_disable_and_enable_a_user_without_javascript(app, live_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        page.goto(f"{live_server}/auth/sign-in")
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_label("Code from your authenticator app").fill(fresh_totp(app, "admin"))
        page.get_by_role("button", name="Verify").click()

        page.goto(f"{live_server}/admin/users")
        page.get_by_role("link", name="nurse", exact=True).click()
        page.get_by_role("link", name="Disable account…").click()
        assert page.get_by_role("heading", name="Disable Sam Okafor?").is_visible()
        page.get_by_role("button", name="Disable nurse").click()
        assert page.get_by_text("nurse is disabled; their sessions ended.").is_visible()
        page.get_by_role("button", name="Enable account").click()
        assert page.get_by_text("nurse is enabled and can sign in again.").is_visible()
        browser.close()
