"""Day and week views: columns per provider, the grid in clinic time, remembered choices."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.scheduling.booking_helpers import audit_actions, booking_form, future_monday


@pytest.fixture
def desk(signed_in, schedule):
    return signed_in("front_desk")


def _book(desk, schedule, day, at, **overrides):
    response = desk.htmx_post(
        "/schedule/appointments", booking_form(schedule, day, at, **overrides)
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def test_the_day_view_shows_a_column_per_provider_and_visits_at_clinic_time(app, desk, schedule):
    day = future_monday()
    _book(desk, schedule, day, "09:40")
    _book(
        desk, schedule, day, "13:00", provider_id=schedule.drpatel, patient_id=schedule.patients[1]
    )
    page = desk.get(f"/schedule/day?day={day.isoformat()}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    headers = re.findall(r'<th scope="col">([^<]+)</th>', html)
    assert headers == ["Anita Patel", "Jordan Lee"]
    assert "09:40\u201310:00" in html and "Lovelace" in html
    assert "13:00\u201313:20" in html and "Turing" in html
    # Free slots are buttons that open the booking panel for that provider and UTC time.
    assert f"provider_id={schedule.drlee}" in html and "Book 08:00 with Jordan Lee" in html
    assert 'rowspan="2"' in html  # a 20-minute visit covers two 10-minute rows
    assert "appointment.list" in audit_actions(app)


def test_htmx_gets_only_the_calendar_fragment_with_navigation(app, desk, schedule):
    day = future_monday()
    fragment = desk.get(f"/schedule/day?day={day.isoformat()}", headers={"HX-Request": "true"})
    html = fragment.get_data(as_text=True)
    assert "<html" not in html and 'id="calendar"' in html
    assert f"day={(day + timedelta(days=1)).isoformat()}" in html
    assert f"day={(day - timedelta(days=1)).isoformat()}" in html
    assert 'aria-keyshortcuts="n"' in html and 'type="date"' in html
    assert fragment.headers["Vary"] and "HX-Request" in fragment.headers["Vary"]


def test_the_chosen_providers_are_remembered_per_user(app, signed_in, desk, schedule):
    day = future_monday()
    response = desk.post_form(
        "/schedule/day/providers", {"provider_id": [schedule.drpatel], "day": day.isoformat()}
    )
    assert response.status_code == 303
    html = desk.get(f"/schedule/day?day={day.isoformat()}").get_data(as_text=True)
    assert re.findall(r'<th scope="col">([^<]+)</th>', html) == ["Anita Patel"]
    # Another user still sees everyone.
    nurse = signed_in("nurse").get(f"/schedule/day?day={day.isoformat()}").get_data(as_text=True)
    assert re.findall(r'<th scope="col">([^<]+)</th>', nurse) == ["Anita Patel", "Jordan Lee"]


def test_ids_beyond_the_database_range_in_the_query_are_ignored(app, desk, schedule):
    """Query arguments naming no possible row (beyond the integer columns' range) are as
    absent, never handed to a query (where they used to be a 500)."""
    huge = "9" * 20
    day = future_monday().isoformat()
    assert desk.get(f"/schedule/day?day={day}&appointment={huge}").status_code == 200
    assert desk.get(f"/schedule/week?day={day}&provider_id={huge}").status_code == 200
    panel = desk.get(
        f"/schedule/appointments/new?provider_id={huge}&location_id={huge}",
        headers={"HX-Request": "true"},
    )
    assert panel.status_code == 200 and "Book an appointment" in panel.get_data(as_text=True)
    chosen = desk.post_form("/schedule/day/providers", {"provider_id": [huge], "day": day})
    assert chosen.status_code == 303
    html = desk.get(f"/schedule/day?day={day}").get_data(as_text=True)
    assert re.findall(r'<th scope="col">([^<]+)</th>', html) == ["Anita Patel", "Jordan Lee"]


def test_cancelled_visits_leave_the_grid_but_are_listed(app, desk, schedule):
    from tests.scheduling.booking_helpers import appointments

    day = future_monday()
    _book(desk, schedule, day, "09:00")
    (appointment,) = appointments(app)
    desk.htmx_post(
        f"/schedule/appointments/{appointment.id}/cancel", {"version": 1, "reason": "Unwell"}
    )
    html = desk.get(f"/schedule/day?day={day.isoformat()}").get_data(as_text=True)
    assert "Book 09:00 with Jordan Lee" in html  # the slot is free again
    assert "Cancelled and no-show today (1)" in html


def test_the_week_view_shows_one_provider_monday_to_sunday(app, desk, schedule):
    day = future_monday()
    _book(desk, schedule, day + timedelta(days=2), "11:00")
    html = desk.get(
        f"/schedule/week?provider_id={schedule.drlee}&day={(day + timedelta(days=4)).isoformat()}"
    ).get_data(as_text=True)
    headers = re.findall(r'<th scope="col">([^<]+)</th>', html)
    assert len(headers) == 7 and headers[0].startswith("Mon")
    assert "11:00\u201311:20" in html and "Lovelace" in html
    assert "Jordan Lee" in html


def test_type_colours_are_served_as_css(app, desk, schedule):
    css = desk.get("/schedule/type-colours.css")
    assert css.mimetype == "text/css"
    assert f".appt-type-{schedule.follow_up} {{ --type-colour: #2a7ab0; }}" in css.get_data(
        as_text=True
    )


def test_the_now_line_is_drawn_on_today(app, desk, schedule):
    html = desk.get("/schedule/day").get_data(as_text=True)
    # Between 07:00 and 19:00 clinic time the grid marks the current row.
    from datetime import datetime

    from tests.scheduling.booking_helpers import ZONE

    if 7 <= datetime.now(ZONE).hour < 19:
        assert 'id="now-line"' in html
    future = desk.get(f"/schedule/day?day={future_monday().isoformat()}").get_data(as_text=True)
    assert 'id="now-line"' not in future


def test_free_slots_outside_working_hours_are_shaded(app, desk, schedule):
    """The working hours come from the providers' weekly templates (availability)."""
    html = desk.get(f"/schedule/day?day={future_monday().isoformat()}").get_data(as_text=True)
    # The template is 08:00-12:00 and 13:00-17:00: 07:00 and 12:10 are outside, 09:00 inside.
    assert "Book 07:00 with Jordan Lee (outside working hours)" in html
    assert "Book 12:10 with Jordan Lee (outside working hours)" in html
    assert 'aria-label="Book 09:00 with Jordan Lee"' in html


def _row_of(html: str, appointment_id: int) -> int:
    return int(re.search(rf'data-row="(\d+)"[^>]*id="appt-{appointment_id}"', html).group(1))


def test_both_0130s_of_the_fall_back_night_have_rows_of_their_own(app, desk, schedule):
    """7 Nov 2027 in New York: 01:00-02:00 happens twice (EDT, then EST)."""
    from datetime import UTC, datetime

    from tests.scheduling.flow_support import make_appointment

    first = make_appointment(app, schedule, starts_at=datetime(2027, 11, 7, 5, 30, tzinfo=UTC))
    second = make_appointment(
        app, schedule, starts_at=datetime(2027, 11, 7, 6, 30, tzinfo=UTC), patient=1
    )
    html = desk.get("/schedule/day?day=2027-11-07").get_data(as_text=True)
    assert "01:30\u201301:50" in html  # each visit shows its own wall-clock times
    labels = re.findall(r'<th scope="row" class="time-col">([^<]*)', html)
    # The repeated hour comes again after its first pass, each time named by its zone.
    assert labels[:10] == ["01:30 EDT", "", "", "01:00 EST", "", "", "01:30 EST", "", "", "02:00"]
    assert (_row_of(html, first), _row_of(html, second)) == (0, 6)
    # Free slots of the second pass book the second 01:00 (06:00 UTC), and say which it is.
    assert "Book 01:00 EST with Jordan Lee" in html
    assert "starts_at=2027-11-07T06:00:00Z" in html


def test_a_time_the_clocks_skip_is_no_slot_in_the_week(app, desk, schedule):
    """14 Mar 2027 in New York has no 02:00-03:00; the rest of its week does."""
    from datetime import UTC, datetime

    from tests.scheduling.flow_support import make_appointment

    make_appointment(app, schedule, starts_at=datetime(2027, 3, 12, 7, 30, tzinfo=UTC))  # Fri 02:30
    html = desk.get(f"/schedule/week?provider_id={schedule.drlee}&day=2027-03-10").get_data(
        as_text=True
    )
    assert "02:30\u201302:50" in html
    assert "Book 02:30 on Sat 13 Mar with Jordan Lee" in html
    assert "Book 02:30 on Sun 14 Mar" not in html and 'class="slot-none"' in html
    assert "Book 03:00 on Sun 14 Mar with Jordan Lee" in html
