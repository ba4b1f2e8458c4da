"""In Chromium: the password of an account with no second factor is reset
by two administrators (issue 14, security finding 2): one proposes on the reset page, a
different one, coming from the users' list, approves by setting the temporary password."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.auth.helpers import add_second_admin, get_user
from tests.support.browser import sign_in_by_cookie

TEMPORARY = "violet tugboat saffron 2211"


@pytest.mark.browser
def test_one_admin_proposes_a_password_reset_another_sets_it(app, new_page, watch):
    add_second_admin(app)
    nurse = get_user(app, "nurse")
    first = new_page()
    sign_in_by_cookie(first, app, "admin")
    first.goto(f"/admin/users/{nurse.id}")
    first.get_by_role("link", name="Reset password…").click()
    expect(first.get_by_text("It takes two administrators")).to_be_visible()
    expect(first.get_by_label(re.compile(r"^Password(?! again)"))).to_have_count(0)
    first.get_by_role("button", name="Propose the password reset").click()
    expect(first.get_by_text("Password reset proposed for nurse")).to_be_visible()
    assert get_user(app, "nurse").password_hash == nurse.password_hash

    second = new_page()
    sign_in_by_cookie(second, app, "admin2")
    second.goto("/admin/users")
    waiting = second.get_by_role("region", name="Waiting for a second administrator")
    expect(waiting).to_contain_text("Password reset for Sam Okafor, proposed by Pat Kim")
    waiting.get_by_role("link", name="Sam Okafor").click()
    expect(second.get_by_text("Proposed by Pat Kim")).to_be_visible()
    second.get_by_label(re.compile(r"^Password(?! again)")).fill(TEMPORARY)
    second.get_by_label(re.compile(r"^Password again")).fill(TEMPORARY)
    second.get_by_role("button", name="Approve and set the temporary password").click()
    expect(second.get_by_text("Temporary password set for nurse")).to_be_visible()
    assert get_user(app, "nurse").must_change_password
    watch.assert_clean(first)
    watch.assert_clean(second)
