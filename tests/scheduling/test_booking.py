"""Booking over HTTP: the panel, the checks, overlaps, overbooking, double submit."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tests.scheduling.booking_helpers import (
    ZONE,
    appointments,
    audit_actions,
    booking_form,
    future_monday,
    local,
)

TAKEN = "That time was just taken — pick another."


@pytest.fixture
def desk(signed_in, schedule):
    return signed_in("front_desk")


def test_booking_from_the_panel_saves_and_audits_and_answers_the_appointment_panel(
    app, desk, schedule
):
    day = future_monday()
    panel = desk.get(
        f"/schedule/appointments/new?provider_id={schedule.drlee}"
        f"&starts_at={local(day, 9, 40).isoformat().replace('+', '%2B')}",
        headers={"HX-Request": "true"},
    )
    assert panel.status_code == 200
    html = panel.get_data(as_text=True)
    assert 'value="09:40"' in html and f'value="{day.isoformat()}"' in html
    assert "<html" not in html  # a fragment for htmx

    response = desk.htmx_post("/schedule/appointments", booking_form(schedule, day, "09:40"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "Lovelace" in response.get_data(as_text=True)
    assert response.headers["HX-Trigger"] == "calendar-changed"
    (booked,) = appointments(app)
    assert booked.starts_at == local(day, 9, 40)
    assert booked.ends_at == local(day, 10, 0)  # the type's 20 minutes
    assert booked.status == "scheduled" and booked.reason == "Blood pressure check"
    assert "appointment.create" in audit_actions(app)


def test_without_htmx_booking_redirects_to_the_day(app, desk, schedule):
    day = future_monday()
    response = desk.post_form("/schedule/appointments", booking_form(schedule, day))
    assert response.status_code == 303
    assert f"day={day.isoformat()}" in response.location


def test_submitting_the_same_form_twice_books_once(app, desk, schedule):
    day = future_monday()
    form = booking_form(schedule, day, request_key="a" * 32)
    first = desk.htmx_post("/schedule/appointments", form)
    second = desk.htmx_post("/schedule/appointments", form)
    assert first.status_code == second.status_code == 200
    assert len(appointments(app)) == 1


def test_an_overlapping_booking_is_refused_and_back_to_back_is_fine(app, desk, schedule):
    day = future_monday()
    assert desk.htmx_post("/schedule/appointments", booking_form(schedule, day)).status_code == 200
    overlapping = booking_form(schedule, day, "09:10", patient_id=schedule.patients[1])
    response = desk.htmx_post("/schedule/appointments", overlapping)
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert TAKEN in html
    assert 'value="09:10"' in html  # what was typed is kept
    back_to_back = booking_form(schedule, day, "09:20", patient_id=schedule.patients[1])
    assert desk.htmx_post("/schedule/appointments", back_to_back).status_code == 200
    assert len(appointments(app)) == 2


def test_a_patient_cannot_be_in_two_places_and_a_room_not_used_twice(app, desk, schedule):
    day = future_monday()
    first = booking_form(schedule, day, room_id=schedule.exam_room_1)
    assert desk.htmx_post("/schedule/appointments", first).status_code == 200
    same_patient = booking_form(schedule, day, "09:05", provider_id=schedule.drpatel)
    response = desk.htmx_post("/schedule/appointments", same_patient)
    assert response.status_code == 409
    assert "This patient already has an appointment at that time." in response.get_data(
        as_text=True
    )
    same_room = booking_form(
        schedule,
        day,
        "09:05",
        provider_id=schedule.drpatel,
        patient_id=schedule.patients[1],
        room_id=schedule.exam_room_1,
    )
    response = desk.htmx_post("/schedule/appointments", same_room)
    assert response.status_code == 409
    assert "Exam 1 is in use at that time" in response.get_data(as_text=True)
    assert len(appointments(app)) == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"minutes": "0"}, "Between 5 minutes and 12 hours."),
        ({"minutes": str(24 * 60)}, "Between 5 minutes and 12 hours."),
        ({"day": date(1900, 1, 1)}, "That date is in the past."),
        ({"day": date(2999, 1, 1)}, "up to two years ahead"),
        ({"start_time": "25:99"}, "Not a valid time"),
        ({"patient_id": ""}, "Choose a patient."),
        ({"provider_id": "drpatel", "appointment_type_id": "procedure"}, "does not offer"),
        ({"room_id": "westside-room"}, "That room is not at this location."),
    ],
)
def test_bad_input_is_refused_next_to_the_field_and_nothing_is_saved(
    app, desk, schedule, overrides, message
):
    from portal.extensions import db
    from portal.scheduling.models import Room

    overrides = dict(overrides)
    if overrides.get("provider_id") == "drpatel":
        overrides["provider_id"] = schedule.drpatel
        overrides["appointment_type_id"] = schedule.procedure
    if overrides.get("room_id") == "westside-room":
        with app.app_context():
            room = Room(location_id=schedule.westside, name="West 1")
            db.session.add(room)
            db.session.commit()
            overrides["room_id"] = room.id
    day = overrides.pop("day", future_monday())
    response = desk.htmx_post("/schedule/appointments", booking_form(schedule, day, **overrides))
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert appointments(app) == []


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("patient_id", "Find and choose the patient."),
        ("provider_id", "Choose one from the list."),
        ("location_id", "Choose one from the list."),
        ("appointment_type_id", "Choose one from the list."),
        ("room_id", "Choose one from the list."),
        ("waitlist_entry_id", None),  # hidden: the panel's summary says something is wrong
    ],
)
def test_an_id_beyond_the_database_range_is_refused_not_a_crash(
    app, desk, schedule, field, message
):
    """Ids beyond the integer columns' range used to reach the queries (a 500)."""
    form = booking_form(schedule, future_monday(), **{field: "99999999999999999999999"})
    response = desk.htmx_post("/schedule/appointments", form)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "nothing was saved" in html
    if message:
        assert f'id="{field}-error">{message}' in html
    assert appointments(app) == []


def test_overbooking_needs_the_permission_and_is_audited(app, signed_in, schedule):
    day = future_monday()
    desk = signed_in("front_desk")
    assert desk.htmx_post("/schedule/appointments", booking_form(schedule, day)).status_code == 200
    second = booking_form(schedule, day, patient_id=schedule.patients[1], overbook="y")
    nurse = signed_in("nurse")
    refused = nurse.htmx_post("/schedule/appointments", second)
    assert refused.status_code == 422
    assert "You may not overbook" in refused.get_data(as_text=True)
    assert desk.htmx_post("/schedule/appointments", second).status_code == 200
    booked = appointments(app)
    assert [a.overbooked for a in booked] == [False, True]
    assert "appointment.overbook" in audit_actions(app)


def test_find_a_slot_books_with_an_iso_utc_start(app, desk, schedule):
    """The find-next-available page posts provider, location, type, patient and starts_at."""
    day = future_monday()
    starts_at = local(day, 13, 20).astimezone(UTC)
    response = desk.htmx_post(
        "/schedule/appointments",
        {
            "patient_id": schedule.patients[2],
            "provider_id": schedule.drpatel,
            "location_id": schedule.main_street,
            "appointment_type_id": schedule.new_patient,
            "starts_at": starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    (booked,) = appointments(app)
    assert booked.starts_at == starts_at
    assert booked.ends_at - booked.starts_at == timedelta(minutes=40)


def test_visits_in_the_repeated_hour_of_the_fall_back_night_both_show(app, desk, schedule):
    """01:30 happens twice on 7 Nov 2027 in New York: both visits are on that day's grid."""
    from sqlalchemy import select

    from portal.actors import Actor
    from portal.auth.models import User
    from portal.extensions import db
    from portal.scheduling.booking import services

    first = datetime(2027, 11, 7, 1, 30, tzinfo=ZONE)  # EDT, 05:30 UTC
    second = datetime(2027, 11, 7, 1, 30, fold=1, tzinfo=ZONE)  # EST, 06:30 UTC
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)
    with app.app_context():
        user = db.session.scalars(select(User).filter_by(username="frontdesk")).one()
        actor = Actor.for_user(user, "127.0.0.1")
        for n, start in enumerate((first, second)):
            services.book_appointment(
                actor,
                services.Booking(
                    patient_id=schedule.patients[n],
                    provider_id=schedule.drlee,
                    location_id=schedule.main_street,
                    appointment_type_id=schedule.follow_up,
                    starts_at=start.astimezone(UTC),
                    outside_hours_ok=True,  # a Sunday night, on purpose
                ),
                now=datetime(2027, 11, 1, tzinfo=UTC),
            )
    html = desk.get("/schedule/day?day=2027-11-07").get_data(as_text=True)
    assert "Lovelace" in html and "Turing" in html
    assert html.count("01:30\u201301:50") == 2


def test_without_htmx_the_day_opens_with_the_booked_appointment(app, desk, schedule):
    day = future_monday()
    response = desk.post_form("/schedule/appointments", booking_form(schedule, day))
    page = desk.get(response.location)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="appointment-panel"' in html and "Lovelace" in html
