"""Undoing a mistaken status step: one step back at a time, recorded, refused where it would
free or re-take time (cancel, no-show) or come from another day, and stale forms refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.extensions import db
from tests.scheduling.flow_support import actor, audit_events, make_appointment, minutes_from_now


def _appointment(appointment_id):
    from portal.scheduling.models import Appointment

    db.session.expire_all()
    return db.session.get(Appointment, appointment_id)


def _change(appointment_id, status, **kwargs):
    from portal.scheduling.flow import services as flow

    version = _appointment(appointment_id).version
    return flow.change_status(actor("frontdesk"), appointment_id, status, version, **kwargs)


def _undo(appointment_id, **kwargs):
    from portal.scheduling.flow import services as flow

    version = _appointment(appointment_id).version
    return flow.undo_status(actor("frontdesk"), appointment_id, version, **kwargs)


def _check_in(appointment_id):
    _change(appointment_id, "arrived", demographics_confirmed=True, insurance_confirmed=True)


def test_undo_steps_back_one_step_at_a_time_and_keeps_the_history(app, schedule):
    appointment_id = make_appointment(app, schedule, starts_at=minutes_from_now(10))
    with app.app_context():
        _change(appointment_id, "confirmed")
        _check_in(appointment_id)
        _change(appointment_id, "roomed", room_id=schedule.exam_room_2)

        assert _undo(appointment_id).status == "arrived"
        assert _undo(appointment_id).status == "confirmed"
        assert _undo(appointment_id).status == "scheduled"
        appointment = _appointment(appointment_id)
        assert [c.status for c in appointment.history] == [
            "confirmed",
            "arrived",
            "roomed",
            "arrived",
            "confirmed",
            "scheduled",
        ]
        details = [e.detail for e in audit_events("appointment.status")]
        assert details[-3:] == [
            "undo: roomed -> arrived",
            "undo: arrived -> confirmed",
            "undo: confirmed -> scheduled",
        ]
        # The visit can go forward again after an undo, and that step can be undone too.
        _check_in(appointment_id)
        assert _undo(appointment_id).status == "scheduled"


def test_nothing_to_undo_no_show_or_a_step_from_another_day_is_refused(app, schedule):
    from portal.transaction import Refused

    fresh = make_appointment(app, schedule, starts_at=minutes_from_now(10))
    # Another provider and patient: after 23:00 in the clinic minutes_from_now() keeps both
    # to today, where they overlap, which the schedule refuses for one provider or patient.
    past = make_appointment(
        app, schedule, starts_at=minutes_from_now(-20), provider="drpatel", patient=1
    )
    with app.app_context():
        with pytest.raises(Refused, match="cannot be undone"):
            _undo(fresh)  # nothing done yet
        _change(past, "no_show")
        with pytest.raises(Refused, match="cannot be undone"):
            _undo(past)
        _change(fresh, "confirmed")
        with pytest.raises(Refused, match="Only a step taken today"):
            _undo(fresh, now=minutes_from_now(0) + timedelta(days=1))
        assert _appointment(fresh).status == "confirmed"
        assert _appointment(past).status == "no_show"


def test_undo_button_in_the_panel_and_its_endpoint(app, schedule, signed_in):
    appointment_id = make_appointment(app, schedule, starts_at=minutes_from_now(10))
    with app.app_context():
        _change(appointment_id, "confirmed")
        version = _appointment(appointment_id).version
    desk = signed_in("front_desk")
    panel = desk.get(f"/schedule/appointments/{appointment_id}/status").get_data(as_text=True)
    assert "Undo “Confirmed” (back to scheduled)" in panel
    path = f"/schedule/appointments/{appointment_id}/status/undo"
    response = desk.htmx_post(path, {"version": version})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Undone: back to scheduled." in html and 'data-status="scheduled"' in html
    assert "Undo “" not in html  # nothing further back to undo
    assert response.headers["HX-Trigger"] == "flow-changed"
    # The same (now stale) undo form again changes nothing.
    again = desk.htmx_post(path, {"version": version})
    assert again.status_code == 409
    assert "Someone else changed this appointment" in again.get_data(as_text=True)
    with app.app_context():
        assert _appointment(appointment_id).status == "scheduled"
