"""In Chromium: search for open slots, choose the patient, press Book.

The booking endpoint is built by the booking work; here the browser's request to it is
captured (and answered with a stub) to check what the Book button sends.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

import pytest
from playwright.sync_api import expect

from tests.scheduling.future_dates import a_winter_monday

MONDAY = a_winter_monday().isoformat()

pytestmark = pytest.mark.browser


def test_find_choose_patient_and_book(page, sign_in, shot, schedule):
    s = schedule
    sign_in("frontdesk")

    sent = []

    def capture(route):
        sent.append((route.request.headers, parse_qs(route.request.post_data or "")))
        route.fulfill(status=200, content_type="text/html", body="<p>Booked (stub)</p>")

    page.route("**/schedule/appointments", capture)

    page.goto("/schedule/find")
    page.select_option("#appointment_type_id", str(s.new_patient))
    page.select_option("#provider_ids", [str(s.drpatel)])
    page.fill("#first_day", MONDAY)
    page.fill("#last_day", MONDAY)
    page.select_option("#time_of_day", "afternoon")
    page.click("text=Find open slots")
    expect(page.locator("#find-results caption")).to_contain_text("6 open slots for New patient")
    # The search can be bookmarked (htmx pushes the address once the swap has settled).
    expect(page).to_have_url(re.compile(r"time_of_day=afternoon$"))
    shot("open-slots")

    page.fill("#find-patient-q", "Turing")
    page.wait_for_selector(f"#book-patient-{s.patients[1]}")
    page.check(f"#book-patient-{s.patients[1]}")
    page.locator("#find-results button", has_text="Book").first.click()
    page.wait_for_selector("text=Booked (stub)")

    headers, fields = sent[0]
    assert headers.get("x-csrftoken")
    assert fields["patient_id"] == [str(s.patients[1])]
    assert fields["provider_id"] == [str(s.drpatel)]
    assert fields["location_id"] == [str(s.main_street)]
    assert fields["appointment_type_id"] == [str(s.new_patient)]
    assert fields["starts_at"] == [f"{MONDAY}T18:00:00+00:00"]  # 13:00 clinic time
    assert fields["request_key"][0]
