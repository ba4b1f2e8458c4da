"""In Chromium: a provider makes their own calendar feed and chooses whether it names patients
(only offered while the clinic allows names); the admins' page has no way to make one
(issue 14, security finding 2)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from icalendar import Calendar
from playwright.sync_api import expect
from sqlalchemy import select

from portal.clinic.models import Clinic
from portal.extensions import db
from tests.scheduling.flow_support import make_appointment, today_at
from tests.support.browser import sign_in_by_cookie


@pytest.mark.browser
def test_a_provider_chooses_names_for_their_own_feed(app, schedule, page, new_page, client):
    make_appointment(app, schedule, starts_at=today_at(9) + timedelta(days=1))
    with app.app_context():
        db.session.scalars(select(Clinic)).one().calendar_feed_shows_names = True
        db.session.commit()
    sign_in_by_cookie(page, app, "drlee")
    page.goto("/schedule/my-feed")
    page.get_by_label("Show patients' names in this feed").check()
    page.get_by_role("button", name="Create a feed address").click()
    address = page.get_by_label("Your feed's address (shown this once: copy it now)")
    expect(address).to_be_visible()
    expect(page.get_by_role("cell", name="Patients' names", exact=True)).to_be_visible()
    path = address.input_value().removeprefix(page.url.split("/schedule/")[0])
    [event] = Calendar.from_ical(client.get(path).data).walk("VEVENT")
    assert str(event["summary"]) == "Follow-up: Lovelace, Ada"

    admin = new_page()
    sign_in_by_cookie(admin, app, "admin")
    admin.goto("/schedule/feeds")
    expect(admin.get_by_role("cell", name="Jordan Lee", exact=True)).to_be_visible()
    expect(admin.get_by_role("button", name="Create feed")).to_have_count(0)
    expect(admin.get_by_label("Provider")).to_have_count(0)
    admin.get_by_role("button", name="Revoke the feed of Jordan Lee").click()
    expect(admin.get_by_text("Feed revoked: its address no longer works.")).to_be_visible()
    assert client.get(path).status_code == 404


@pytest.mark.browser
def test_names_are_not_offered_while_the_clinic_does_not_allow_them(app, schedule, page):
    sign_in_by_cookie(page, app, "drlee")
    page.goto("/schedule/my-feed")
    expect(page.get_by_text("never patients' names")).to_be_visible()
    expect(page.get_by_label("Show patients' names in this feed")).to_have_count(0)
    page.get_by_role("button", name="Create a feed address").click()
    expect(page.get_by_role("cell", name="No names", exact=True)).to_be_visible()
