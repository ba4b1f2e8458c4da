"""Admin pages in Chromium with JavaScript turned off: confirmations still work."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.browser import sign_in_by_cookie


@pytest.mark.browser
def test_disable_and_enable_a_user_without_javascript(app, new_page):
    page = new_page(java_script_enabled=False)
    sign_in_by_cookie(page, app, "admin")

    page.goto("/admin/users")
    page.get_by_role("link", name="nurse", exact=True).click()
    page.get_by_role("link", name="Disable account…").click()
    expect(page.get_by_role("heading", name="Disable Sam Okafor?")).to_be_visible()
    page.get_by_role("button", name="Disable nurse").click()
    expect(page.get_by_text("nurse is disabled; their sessions ended.")).to_be_visible()
    page.get_by_role("button", name="Enable account").click()
    expect(page.get_by_text("nurse is enabled and can sign in again.")).to_be_visible()
