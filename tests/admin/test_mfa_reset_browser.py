"""In Chromium: resetting a prescriber's two-step sign-in takes two administrators (issue 14,
security finding 2): one proposes, a different one approves on the account's page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal.auth import services
from portal.auth.models import User
from portal.extensions import db
from tests.auth.helpers import add_second_admin
from tests.support.browser import sign_in_by_cookie


def _drlee(app) -> User:
    with app.app_context():
        user = db.session.scalars(select(User).filter_by(username="drlee")).one()
        db.session.expunge(user)
        return user


@pytest.mark.browser
def test_one_admin_proposes_another_approves(app, new_page, watch):
    add_second_admin(app)
    first = new_page()
    sign_in_by_cookie(first, app, "admin")
    first.goto(f"/admin/users/{_drlee(app).id}")
    first.get_by_role("link", name="Propose resetting two-step sign-in…").click()
    expect(
        first.get_by_role("heading", name="Propose resetting two-step sign-in for Jordan Lee?")
    ).to_be_visible()
    first.get_by_role("button", name="Propose the reset").click()
    expect(first.get_by_text("another administrator must approve it")).to_be_visible()
    waiting = first.get_by_role("group", name="Reset of two-step sign-in waiting for approval")
    expect(waiting).to_contain_text("Proposed by Pat Kim")
    expect(waiting.get_by_role("button", name="Approve the reset")).to_have_count(0)
    assert _drlee(app).mfa_enabled

    second = new_page()
    sign_in_by_cookie(second, app, "admin2")
    second.goto(f"/admin/users/{_drlee(app).id}")
    second.get_by_role("button", name="Approve the reset").click()
    expect(second.get_by_text("Two-step sign-in reset for drlee")).to_be_visible()
    assert not _drlee(app).mfa_enabled
    with app.app_context():
        assert services.pending_approval(_drlee(app).id) is None
    watch.assert_clean(first)
    watch.assert_clean(second)
