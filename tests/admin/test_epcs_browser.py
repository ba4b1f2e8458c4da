"""In Chromium: EPCS logical access control (issue 11). An administrator records a
prescriber's DEA number and proposes allowing them to sign controlled prescriptions with a
code of their own; a DEA registrant approves it with their password and a fresh code."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.auth import epcs
from portal.extensions import db
from tests.admin.epcs_helpers import DRLEE_DEA, add_registrant, fresh_code, get
from tests.support.browser import sign_in_by_cookie
from tests.support.database import PASSWORD


@pytest.mark.browser
def test_an_admin_proposes_and_a_registrant_approves(app, new_page, watch):
    add_registrant(app)
    drlee_id = get(app, "drlee").id
    admin = new_page()
    sign_in_by_cookie(admin, app, "admin")
    admin.goto(f"/admin/users/{drlee_id}")
    section = admin.get_by_role("region", name="Controlled substances (EPCS)")
    section.get_by_label("DEA number").fill(DRLEE_DEA)
    section.get_by_role("button", name="Save DEA number").click()
    expect(admin.get_by_text("DEA number of drlee saved.")).to_be_visible()
    section = admin.get_by_role("region", name="Controlled substances (EPCS)")
    section.get_by_label("Code from your authenticator app").fill(fresh_code(app, "admin"))
    section.get_by_role("button", name="Propose allowing controlled-substance signing").click()
    waiting = admin.get_by_role("group", name="Grant waiting for a DEA registrant")
    expect(waiting).to_contain_text("Proposed by Pat Kim")

    registrant = new_page()
    sign_in_by_cookie(registrant, app, "drpark")
    registrant.goto("/auth/account")
    registrant.get_by_role("link", name="EPCS approvals").click()
    proposal = registrant.get_by_role(
        "region", name="Allow Jordan Lee to sign controlled prescriptions"
    )
    expect(proposal).to_contain_text(DRLEE_DEA)
    proposal.get_by_label("I verified that their DEA registration").check()
    proposal.get_by_label("Your password").fill(PASSWORD)
    proposal.get_by_label("Code from your authenticator app").fill(fresh_code(app, "drpark"))
    proposal.get_by_role("button", name="Approve the grant").click()
    expect(
        registrant.get_by_text("Jordan Lee may now sign controlled prescriptions.")
    ).to_be_visible()
    expect(registrant.get_by_text("Nothing is waiting.")).to_be_visible()
    with app.app_context():
        assert epcs.may_sign_controlled(drlee_id)
        db.session.remove()

    admin.reload()
    section = admin.get_by_role("region", name="Controlled substances (EPCS)")
    expect(
        section.get_by_role("button", name="Propose revoking controlled-substance signing")
    ).to_be_visible()
    watch.assert_clean(admin)
    watch.assert_clean(registrant)
