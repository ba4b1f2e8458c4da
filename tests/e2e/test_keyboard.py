"""The sign-in forms can be completed with the keyboard alone (Tab, typing, Enter)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.support.browser import totp_now
from tests.support.database import PASSWORD

pytestmark = pytest.mark.browser


def test_sign_in_with_password_and_totp_using_only_the_keyboard(page, app):
    page.goto("/auth/sign-in")
    # The username box has the focus as soon as the page opens.
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type("drlee")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    with page.expect_navigation():
        page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(r"/auth/second-factor$"))
    expect(page.get_by_label("6-digit code")).to_be_focused()
    page.keyboard.type(totp_now(app, "drlee"))
    with page.expect_navigation():
        page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name="Good to see you, Jordan Lee")).to_be_visible()


def test_enter_in_the_password_box_submits_the_form(page):
    page.goto("/auth/sign-in")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type("frontdesk")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Good to see you, Maria Alvarez")).to_be_visible()


def test_skip_link_is_the_first_tab_stop_and_moves_focus_to_the_main_content(page, sign_in):
    sign_in("frontdesk")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
