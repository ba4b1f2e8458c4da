"""The appointment panel working with the flow's endpoints (status changes, waitlist matches)."""

from __future__ import annotations

import re

import pytest

from tests.scheduling.booking_helpers import appointments, booking_form, future_monday


@pytest.fixture
def desk(signed_in, schedule):
    return signed_in("front_desk")


def test_the_panel_status_buttons_post_to_change_status(app, desk, schedule):
    day = future_monday()
    booked = desk.htmx_post("/schedule/appointments", booking_form(schedule, day))
    html = booked.get_data(as_text=True)
    (appointment,) = appointments(app)
    action = f"/schedule/appointments/{appointment.id}/status"
    assert f'action="{action}"' in html and 'value="confirmed"' in html
    version = re.search(r'name="version" value="(\d+)"', html).group(1)
    response = desk.htmx_post(action, {"status": "confirmed", "version": version})
    assert response.status_code == 200
    assert appointments(app)[0].status == "confirmed"


def test_cancelling_loads_the_waitlist_matches_for_the_freed_time(app, desk, schedule):
    day = future_monday()
    desk.htmx_post("/schedule/appointments", booking_form(schedule, day))
    (appointment,) = appointments(app)
    response = desk.htmx_post(
        f"/schedule/appointments/{appointment.id}/cancel", {"version": 1, "reason": "Moved away"}
    )
    matches_url = f"/schedule/appointments/{appointment.id}/waitlist-matches"
    assert f'hx-get="{matches_url}"' in response.get_data(as_text=True)
    assert desk.get(matches_url, headers={"HX-Request": "true"}).status_code == 200
