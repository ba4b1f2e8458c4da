"""In Chromium: after an administrator reset the password, the owner chooses their own and
reads what was done before anything else opens (issue 14, security finding 2)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.auth.helpers import OWN_PASSWORD, reset_password_by_two_admins

TEMPORARY = "violet tugboat saffron 2211"


@pytest.mark.browser
def test_a_reset_password_is_replaced_and_the_notice_read_at_sign_in(app, page, watch):
    # The nurse has no second factor: another administrator proposed the reset first.
    reset_password_by_two_admins(app, "nurse", TEMPORARY)
    page.goto("/auth/sign-in")
    page.get_by_label("Username").fill("nurse")
    page.get_by_label("Password").fill(TEMPORARY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Choose your own password")).to_be_visible()

    # The address bar does not get round it.
    page.goto("/schedule/")
    expect(page.get_by_role("heading", name="Choose your own password")).to_be_visible()

    # Keeping the administrator's password is refused beside the field.
    new_password = page.get_by_label(re.compile(r"^New password(?! again)"))
    again = page.get_by_label(re.compile(r"^New password again"))
    new_password.fill(TEMPORARY)
    again.fill(TEMPORARY)
    watch.expect_http_error(422, "/auth/new-password")
    page.get_by_role("button", name="Save my new password").click()
    expect(page.locator("#new_password-error")).to_contain_text("not the temporary one")

    page.get_by_label(re.compile(r"^New password(?! again)")).fill(OWN_PASSWORD)
    page.get_by_label(re.compile(r"^New password again")).fill(OWN_PASSWORD)
    page.get_by_role("button", name="Save my new password").click()
    expect(page.get_by_role("heading", name="Changes to your account")).to_be_visible()
    notice = page.get_by_role("listitem").filter(has_text="Password reset")
    expect(notice).to_contain_text("by Pat Kim")
    page.get_by_role("button", name="I have read this — continue").click()
    expect(page.get_by_role("heading", name="Changes to your account")).to_have_count(0)
    assert "/auth/" not in page.url
    watch.assert_clean(page)
