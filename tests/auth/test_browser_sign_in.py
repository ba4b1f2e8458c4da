"""In Chromium: enrolment at sign-in, then sign-in with TOTP, all under the CSP."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pyotp
import pytest
from playwright.sync_api import expect

from tests.auth.helpers import NEW_USER_PASSWORD, age_session, create_user
from tests.support.database import PASSWORD


@pytest.mark.browser
def test_enrol_then_sign_in_with_totp_in_chromium(app, page, watch):
    create_user(app, "drpatel", "Anita Patel", ["prescriber"])
    page.goto("/")
    assert page.url.endswith("/auth/sign-in")
    page.get_by_label("Username").fill("drpatel")
    page.get_by_label("Password").fill(NEW_USER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/auth/enrol-mfa$"))
    expect(page.locator("svg.qr-code")).to_be_visible()
    secret = page.locator("#totp-key").inner_text().replace(" ", "")
    page.get_by_label("6-digit code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    # The answer comes back to the same address: wait for its content, not the URL.
    expect(page.locator(".recovery-codes li")).to_have_count(10)
    page.get_by_role("link", name="I have saved my codes").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/auth/sign-in$"))

    # Next time: password, then a code from the app (the next step: no replay).
    page.get_by_label("Username").fill("drpatel")
    page.get_by_label("Password").fill(NEW_USER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/auth/second-factor$"))
    next_code = pyotp.TOTP(secret).at(time.time() + 30)
    page.get_by_label("6-digit code").fill(next_code)
    page.get_by_role("button", name="Verify and sign in").click()
    expect(page.get_by_text("Good to see you, Anita Patel")).to_be_visible()
    watch.assert_clean(page)


@pytest.mark.browser
def test_htmx_request_after_idle_time_out_lands_on_sign_in_and_comes_back(
    app, page, sign_in, watch
):
    """htmx follows HX-Redirect from the 401; what was typed is offered back after sign-in,
    and the user can return to the page they were on."""
    watch.expect_http_error(401, "/patients/search")  # the search sent after the time-out
    sign_in("nurse", through_the_form=True)
    page.goto("/auth/account")
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "portal_session")
    age_session(app, token, last_seen_at=timedelta(minutes=20))
    page.get_by_label("Find a patient").fill("smi")  # htmx POST after the time-out
    page.wait_for_url("**/auth/sign-in")
    expect(page.get_by_text("Your session timed out")).to_be_visible()
    page.get_by_label("Username").fill("nurse")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/auth/resume")
    assert page.locator('input[type=hidden][name=q][value="smi"]').count() == 1
    page.get_by_role("link", name="Go to the page without sending it").click()
    page.wait_for_url("**/auth/account")
