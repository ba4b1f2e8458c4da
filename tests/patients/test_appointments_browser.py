"""In Chromium: the patient page's appointments and "Book", and where opening a patient from
the top bar's search leads for each role."""

from __future__ import annotations

import re

import pytest

from tests.patients.appointment_helpers import add_appointment
from tests.support.browser import typing_answered

pytestmark = pytest.mark.browser


def test_front_desk_sees_appointments_and_books_for_the_patient(page, sign_in, watch, app, chart):
    add_appointment(app, chart, days=3, patient=1)
    add_appointment(app, chart, days=-7, status="no_show", patient=1)
    sign_in("frontdesk")
    page.goto(f"/patients/{chart.patients[1]}")
    appointments = page.get_by_role("region", name="Appointments")
    assert "Follow-up with" in appointments.locator("#upcoming-appointments").inner_text()
    assert "No-show" in appointments.locator("#recent-appointments").inner_text()
    appointments.get_by_role("link", name="Book").click()
    page.wait_for_url(re.compile(r".*/schedule/appointments/new\?patient_id=\d+$"))
    assert page.get_by_label(re.compile(r"^Turing, Alan")).is_checked()
    watch.assert_clean(page)


@pytest.mark.parametrize(
    ("username", "landing"),
    [
        ("nurse", r"/chart/patients/\d+$"),
        ("drlee", r"/chart/patients/\d+$"),
        ("frontdesk", r"/patients/\d+$"),
    ],
)
def test_opening_a_patient_from_the_search(page, sign_in, watch, chart, username, landing):
    sign_in(username)
    page.keyboard.press("/")
    # The list for all of it: one answered mid-typing is replaced under the arrow keys.
    with typing_answered(page, r"/patients/search$", "Lovelace"):
        page.keyboard.type("Lovelace", delay=30)
    page.wait_for_selector("#search-result-1")
    page.keyboard.press("ArrowDown")
    page.wait_for_selector("#search-result-1[aria-selected=true]")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*" + landing))
    assert "Lovelace, Ada" in page.inner_text("#patient-banner")
    watch.assert_clean(page)
