"""Rescheduling (atomic, version-checked) and cancelling (reason, who, late-cancel)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.extensions import db
from portal.timeutil import utcnow
from tests.scheduling.booking_helpers import (
    appointments,
    audit_actions,
    booking_form,
    future_monday,
    local,
)

TAKEN = "That time was just taken — pick another."
STALE = "Someone else changed this appointment since you opened it."


@pytest.fixture
def desk(signed_in, schedule):
    return signed_in("front_desk")


def _book(desk, schedule, day, at="09:00", **overrides) -> int:
    response = desk.htmx_post(
        "/schedule/appointments", booking_form(schedule, day, at, **overrides)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return max(a.id for a in appointments(desk.app))


def _move(desk, appointment_id, day, at, version, **extra):
    data = {"version": version, "day": day.isoformat(), "start_time": at, "room_id": "", **extra}
    return desk.htmx_post(f"/schedule/appointments/{appointment_id}/reschedule", data)


def test_the_reschedule_panel_shows_the_current_time_and_moving_saves_it(app, desk, schedule):
    day = future_monday()
    appointment_id = _book(desk, schedule, day)
    panel = desk.get(
        f"/schedule/appointments/{appointment_id}/reschedule", headers={"HX-Request": "true"}
    )
    assert 'value="09:00"' in panel.get_data(as_text=True)
    response = _move(desk, appointment_id, day + timedelta(days=1), "14:20", 1)
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "calendar-changed"
    (moved,) = appointments(app)
    assert moved.starts_at == local(day + timedelta(days=1), 14, 20)
    assert moved.ends_at - moved.starts_at == timedelta(minutes=20)
    assert moved.version == 2
    assert "appointment.reschedule" in audit_actions(app)


def test_moving_onto_a_taken_time_leaves_the_appointment_exactly_as_it_was(app, desk, schedule):
    day = future_monday()
    moving = _book(desk, schedule, day, "09:00")
    _book(desk, schedule, day, "10:00", patient_id=schedule.patients[1])
    before = {a.id: (a.starts_at, a.ends_at, a.version) for a in appointments(app)}
    response = _move(desk, moving, day, "10:10", 1)
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert TAKEN in html and 'value="10:10"' in html
    assert {a.id: (a.starts_at, a.ends_at, a.version) for a in appointments(app)} == before


def test_a_stale_reschedule_form_is_refused_and_changes_nothing(app, desk, schedule):
    day = future_monday()
    appointment_id = _book(desk, schedule, day)
    assert _move(desk, appointment_id, day, "11:00", 1).status_code == 200
    stale = _move(desk, appointment_id, day, "15:00", 1)  # the same form, submitted again
    assert stale.status_code == 409
    assert STALE in stale.get_data(as_text=True)
    (appointment,) = appointments(app)
    assert appointment.starts_at == local(day, 11, 0)


@pytest.mark.parametrize("field", ["provider_id", "room_id"])
def test_a_reschedule_to_an_impossible_id_is_refused_beside_the_field(app, desk, schedule, field):
    """Ids beyond the integer columns' range used to reach the queries (a 500)."""
    day = future_monday()
    appointment_id = _book(desk, schedule, day)
    response = _move(desk, appointment_id, day, "11:00", 1, **{field: "99999999999999999999"})
    assert response.status_code == 422
    assert f'id="{field}-error">Choose one from the list.' in response.get_data(as_text=True)
    (appointment,) = appointments(app)
    assert (appointment.starts_at, appointment.version) == (local(day, 9, 0), 1)


def test_cancelling_records_who_and_why_and_frees_the_time(app, desk, schedule):
    day = future_monday()
    appointment_id = _book(desk, schedule, day)
    missing = desk.htmx_post(f"/schedule/appointments/{appointment_id}/cancel", {"version": 1})
    assert missing.status_code == 422
    assert "Give a reason for cancelling." in missing.get_data(as_text=True)
    assert appointments(app)[0].status == "scheduled"

    response = desk.htmx_post(
        f"/schedule/appointments/{appointment_id}/cancel",
        {"version": 1, "reason": "Patient is travelling"},
    )
    assert response.status_code == 200
    assert "Cancelled" in response.get_data(as_text=True)
    (cancelled,) = appointments(app)
    assert cancelled.status == "cancelled"
    assert cancelled.cancel_reason == "Patient is travelling"
    assert cancelled.late_cancel is False  # two weeks ahead
    assert cancelled.cancelled_by_id is not None
    assert "appointment.cancel" in audit_actions(app)
    # The freed time can be booked again.
    _book(desk, schedule, day, patient_id=schedule.patients[1])
    # A stale cancel form (the old version) is refused.
    again = desk.htmx_post(
        f"/schedule/appointments/{appointment_id}/cancel", {"version": 1, "reason": "again"}
    )
    assert again.status_code == 409


def test_a_cancel_under_24_hours_before_the_start_is_late(app, schedule):
    from sqlalchemy import select

    from portal.actors import Actor
    from portal.auth.models import User
    from portal.scheduling.booking import services

    soon = (utcnow() + timedelta(hours=3)).replace(second=0, microsecond=0)
    with app.app_context():
        user = db.session.scalars(select(User).filter_by(username="frontdesk")).one()
        actor = Actor.for_user(user, "127.0.0.1")
        booked = services.book_appointment(
            actor,
            services.Booking(
                patient_id=schedule.patients[0],
                provider_id=schedule.drlee,
                location_id=schedule.main_street,
                appointment_type_id=schedule.follow_up,
                starts_at=soon,
                outside_hours_ok=True,  # "in three hours" may be any time of day
            ),
        )
        (cancelled,) = services.cancel_appointment(
            actor, booked.id, version=booked.version, reason="Feeling better"
        )
        assert cancelled.late_cancel is True


def test_the_appointment_panel_is_audited_and_unknown_ids_are_404(app, desk, schedule):
    day = future_monday()
    appointment_id = _book(desk, schedule, day)
    panel = desk.get(f"/schedule/appointments/{appointment_id}", headers={"HX-Request": "true"})
    html = panel.get_data(as_text=True)
    assert "Lovelace" in html and "Follow-up" in html and "Reschedule" in html
    assert audit_actions(app).count("appointment.view") >= 2  # after booking, and now
    assert desk.get("/schedule/appointments/987654").status_code == 404
