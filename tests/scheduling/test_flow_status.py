"""Statuses of a visit: the allowed steps, their timestamps and history, check-in's
confirmations, rooming, no-shows, stale forms; and the change_status endpoint for htmx."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.timeutil import utcnow
from tests.scheduling.flow_support import (
    actor,
    audit_events,
    make_appointment,
    minutes_from_now,
    today_at,
    user,
)


def _appointment(appointment_id):
    from portal.scheduling.models import Appointment

    db.session.expire_all()
    return db.session.get(Appointment, appointment_id)


def _change(appointment_id, status, *, who="frontdesk", **kwargs):
    from portal.scheduling.flow import services as flow

    appointment = _appointment(appointment_id)
    return flow.change_status(actor(who), appointment_id, status, appointment.version, **kwargs)


def test_a_visit_moves_through_every_step_with_its_time_and_author(app, schedule):
    from portal.scheduling.flow import services as flow

    # Every step passes its own time, so the visit sits at noon: a start taken from the clock
    # would put the check-in (five minutes before) on yesterday when run just after midnight.
    appointment_id = make_appointment(app, schedule, starts_at=today_at(12))
    with app.app_context():
        start = _appointment(appointment_id).starts_at
        _change(appointment_id, "confirmed", now=start - timedelta(minutes=30))
        _change(
            appointment_id,
            "arrived",
            demographics_confirmed=True,
            insurance_confirmed=True,
            now=start - timedelta(minutes=5),
        )
        _change(appointment_id, "roomed", who="nurse", room_id=schedule.exam_room_2, now=start)
        _change(appointment_id, "with_provider", who="drlee", now=start + timedelta(minutes=7))
        done = _change(appointment_id, "completed", who="drlee", now=start + timedelta(minutes=25))

        assert done.status == "completed"
        assert done.status_changed_at == start + timedelta(minutes=25)
        appointment = _appointment(appointment_id)
        assert appointment.room_id == schedule.exam_room_2
        steps = [(c.status, c.changed_at - start) for c in appointment.history]
        assert steps == [
            ("confirmed", timedelta(minutes=-30)),
            ("arrived", timedelta(minutes=-5)),
            ("roomed", timedelta(0)),
            ("with_provider", timedelta(minutes=7)),
            ("completed", timedelta(minutes=25)),
        ]
        assert appointment.history[2].changed_by_id == user("nurse").id
        assert flow.allowed_next(appointment) == ()
        events = audit_events("appointment.status")
        assert [e.detail.split(";")[0] for e in events] == [
            "scheduled -> confirmed",
            "confirmed -> arrived",
            "arrived -> roomed",
            "roomed -> with_provider",
            "with_provider -> completed",
        ]
        assert {e.category for e in events} == {"appointments"}
        assert {e.patient_id for e in events} == {schedule.patients[0]}
        assert "Lovelace" not in " ".join(e.detail for e in events)


@pytest.mark.parametrize(
    ("current", "wanted"),
    [
        ("scheduled", "completed"),
        ("scheduled", "roomed"),
        ("confirmed", "with_provider"),
        ("arrived", "confirmed"),
        ("arrived", "no_show"),
        ("completed", "arrived"),
        ("cancelled", "confirmed"),
        ("no_show", "arrived"),
        ("scheduled", "cancelled"),  # cancelling needs who and why: the booking use case
        ("scheduled", "teleported"),
    ],
)
def test_steps_the_flow_does_not_allow_are_refused_and_change_nothing(
    app, schedule, current, wanted
):
    from portal.transaction import Refused

    appointment_id = make_appointment(
        app, schedule, starts_at=minutes_from_now(-30), status=current
    )
    with app.app_context():
        with pytest.raises(Refused) as refused:
            _change(appointment_id, wanted, demographics_confirmed=True, insurance_confirmed=True)
        assert refused.value.field == "status"
        appointment = _appointment(appointment_id)
        assert appointment.status == current
        assert appointment.history == []
        assert audit_events("appointment.status") == []


def test_no_show_only_after_the_start_time(app, schedule):
    from portal.transaction import Refused

    appointment_id = make_appointment(app, schedule, starts_at=today_at(14))
    with app.app_context():
        start = _appointment(appointment_id).starts_at
        with pytest.raises(Refused, match="start time has passed"):
            _change(appointment_id, "no_show", now=start - timedelta(minutes=1))
        assert _appointment(appointment_id).status == "scheduled"
        assert (
            _change(appointment_id, "no_show", now=start + timedelta(minutes=15)).is_active is False
        )


def test_check_in_needs_demographics_and_insurance_confirmed(app, schedule):
    from portal.transaction import Refused

    appointment_id = make_appointment(app, schedule, starts_at=minutes_from_now(5))
    with app.app_context():
        with pytest.raises(Refused) as refused:
            _change(appointment_id, "arrived", insurance_confirmed=True)
        assert refused.value.field == "demographics_confirmed"
        with pytest.raises(Refused) as refused:
            _change(appointment_id, "arrived", demographics_confirmed=True)
        assert refused.value.field == "insurance_confirmed"
        assert _appointment(appointment_id).status == "scheduled"
        checked_in = _change(
            appointment_id, "arrived", demographics_confirmed=True, insurance_confirmed=True
        )
        assert checked_in.status == "arrived"
        event = audit_events("appointment.status")[-1]
        assert event.detail == "scheduled -> arrived; demographics and insurance confirmed"


def test_check_in_only_on_the_day_of_the_appointment(app, schedule):
    from portal.transaction import Refused

    appointment_id = make_appointment(app, schedule, starts_at=today_at(10) + timedelta(days=1))
    with app.app_context(), pytest.raises(Refused, match="only on the day"):
        _change(appointment_id, "arrived", demographics_confirmed=True, insurance_confirmed=True)


def test_rooming_needs_a_free_room_of_the_appointments_location(app, schedule):
    from portal.scheduling.models import Room
    from portal.transaction import Refused

    start = minutes_from_now(-5)
    appointment_id = make_appointment(app, schedule, starts_at=start, status="arrived")
    make_appointment(
        app,
        schedule,
        starts_at=start + timedelta(minutes=10),
        provider="drpatel",
        patient=1,
        status="roomed",
        room_id=schedule.exam_room_1,
    )
    with app.app_context():
        westside_room = Room(location_id=schedule.westside, name="West 1")
        db.session.add(westside_room)
        db.session.commit()
        for room_id, message in (
            (None, "Choose the room"),
            (westside_room.id, "this location's rooms"),
            (987654, "this location's rooms"),
            (schedule.exam_room_1, "Exam 1 is held by another appointment"),
        ):
            with pytest.raises(Refused, match=message) as refused:
                _change(appointment_id, "roomed", room_id=room_id)
            assert refused.value.field == "room_id"
        assert _appointment(appointment_id).room_id is None
        roomed = _change(appointment_id, "roomed", room_id=schedule.exam_room_2)
        assert (roomed.status, roomed.room_id) == ("roomed", schedule.exam_room_2)


def test_a_stale_form_is_refused(app, schedule):
    from portal.scheduling.flow import services as flow
    from portal.transaction import Conflict

    appointment_id = make_appointment(app, schedule, starts_at=minutes_from_now(10))
    with app.app_context():
        seen = _appointment(appointment_id).version
        flow.change_status(actor("frontdesk"), appointment_id, "confirmed", seen)
        with pytest.raises(Conflict, match="Someone else changed this appointment"):
            flow.change_status(actor("nurse"), appointment_id, "no_show", seen)
        assert _appointment(appointment_id).status == "confirmed"
        assert len(_appointment(appointment_id).history) == 1


# --- HTTP ------------------------------------------------------------------------------------


def _version(app, appointment_id):
    with app.app_context():
        return _appointment(appointment_id).version


def test_status_button_answers_the_updated_panel_for_htmx(app, schedule, signed_in):
    appointment_id = make_appointment(app, schedule, starts_at=minutes_from_now(10))
    browser = signed_in("front_desk")
    path = f"/schedule/appointments/{appointment_id}/status"
    response = browser.htmx_post(
        path, {"status": "confirmed", "version": _version(app, appointment_id)}
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith(f'<section id="appointment-flow-{appointment_id}"')
    assert "<html" not in html
    assert 'data-status="confirmed"' in html
    assert "Marked confirmed." in html
    assert "Lovelace, Ada" in html
    assert response.headers["HX-Trigger"] == "flow-changed"
    # The panel offers the next steps, carrying the new version.
    assert "Check in…" in html and "Mark no-show" in html
    assert f'name="version" value="{_version(app, appointment_id)}"' in html


def test_the_same_form_submitted_twice_gets_a_stale_answer(app, schedule, signed_in):
    appointment_id = make_appointment(app, schedule, starts_at=minutes_from_now(10))
    browser = signed_in("front_desk")
    path = f"/schedule/appointments/{appointment_id}/status"
    form = {"status": "confirmed", "version": _version(app, appointment_id)}
    assert browser.htmx_post(path, form).status_code == 200
    again = browser.htmx_post(path, form)
    assert again.status_code == 409
    assert "Someone else changed this appointment" in again.get_data(as_text=True)
    with app.app_context():
        assert len(_appointment(appointment_id).history) == 1


def test_a_refused_step_answers_422_with_the_message_beside_the_buttons(app, schedule, signed_in):
    # Not minutes_from_now(): it keeps to today, and after 23:00 in the clinic that is the
    # past, where a no-show is allowed. The refusal needs a start still ahead.
    soon = (utcnow() + timedelta(minutes=30)).replace(second=0, microsecond=0)
    appointment_id = make_appointment(app, schedule, starts_at=soon)
    browser = signed_in("nurse")
    response = browser.htmx_post(
        f"/schedule/appointments/{appointment_id}/status",
        {"status": "no_show", "version": _version(app, appointment_id)},
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="appointment-flow-{appointment_id}-status-error"' in html
    assert "start time has passed" in html
    with app.app_context():
        assert _appointment(appointment_id).status == "scheduled"


def test_rooming_in_an_impossible_room_id_is_refused_beside_the_room(app, schedule, signed_in):
    """A room id beyond the integer columns' range used to reach the query (a 500)."""
    appointment_id = make_appointment(
        app, schedule, starts_at=minutes_from_now(10), status="arrived"
    )
    response = signed_in("nurse").htmx_post(
        f"/schedule/appointments/{appointment_id}/status",
        {
            "status": "roomed",
            "version": _version(app, appointment_id),
            "room_id": "99999999999999999999",
        },
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="appointment-flow-{appointment_id}-room-error"' in html
    assert "Choose one from the list." in html
    with app.app_context():
        assert _appointment(appointment_id).status == "arrived"


def test_check_in_page_shows_demographics_insurance_and_the_edit_link(app, schedule, signed_in):
    from portal.patients.models import Patient

    with app.app_context():
        patient = db.session.get(Patient, schedule.patients[0])
        patient.insurance_payer = "Blue River Health"
        patient.insurance_member_id = "BRH-0042"
        db.session.commit()
    appointment_id = make_appointment(app, schedule, starts_at=minutes_from_now(5))
    browser = signed_in("front_desk")
    page = browser.get(f"/schedule/appointments/{appointment_id}/check-in")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Blue River Health" in html and "BRH-0042" in html
    # The edit link comes back to this check-in after saving.
    back = f"/schedule/appointments/{appointment_id}/check-in"
    assert f'href="/patients/{schedule.patients[0]}/edit?next={back}"' in html
    assert '<label class="form-check-label" for="appointment-flow-' in html
    with app.app_context():
        viewed = audit_events("patient.view")[-1]
        assert (viewed.category, viewed.detail, viewed.patient_id) == (
            "demographics",
            "check-in",
            schedule.patients[0],
        )


def test_check_in_without_confirmations_keeps_the_check_in_panel(app, schedule, signed_in):
    appointment_id = make_appointment(app, schedule, starts_at=minutes_from_now(5))
    browser = signed_in("front_desk")
    path = f"/schedule/appointments/{appointment_id}/status"
    version = _version(app, appointment_id)
    refused = browser.htmx_post(
        path, {"status": "arrived", "version": version, "insurance_confirmed": "y"}
    )
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert "Check in · Lovelace, Ada" in html
    assert "Confirm the patient&#39;s demographics with them first." in html
    # What was ticked stays ticked.
    assert 'name="insurance_confirmed" id="appointment-flow-' in html
    assert 'value="y" checked' in html
    done = browser.htmx_post(
        path,
        {
            "status": "arrived",
            "version": version,
            "demographics_confirmed": "y",
            "insurance_confirmed": "y",
        },
    )
    assert done.status_code == 200
    assert 'data-status="arrived"' in done.get_data(as_text=True)


def test_without_htmx_a_change_redirects_to_the_appointments_page(app, schedule, signed_in):
    appointment_id = make_appointment(app, schedule, starts_at=minutes_from_now(10))
    browser = signed_in("front_desk")
    path = f"/schedule/appointments/{appointment_id}/status"
    response = browser.post_form(
        path, {"status": "confirmed", "version": _version(app, appointment_id)}
    )
    assert response.status_code == 303
    assert response.location.endswith(path)
    page = browser.get(path)
    assert page.status_code == 200
    assert "Marked confirmed." in page.get_data(as_text=True)


def test_unknown_appointments_are_404(app, schedule, signed_in):
    browser = signed_in("front_desk")
    assert browser.get("/schedule/appointments/987654/status").status_code == 404
    assert browser.get("/schedule/appointments/987654/check-in").status_code == 404
    response = browser.htmx_post(
        "/schedule/appointments/987654/status", {"status": "confirmed", "version": 1}
    )
    assert response.status_code == 404


def test_the_history_is_read_from_appointment_status_changes(app, schedule, signed_in):
    from portal.scheduling.models import AppointmentStatusChange

    appointment_id = make_appointment(app, schedule, starts_at=minutes_from_now(10))
    browser = signed_in("front_desk")
    browser.htmx_post(
        f"/schedule/appointments/{appointment_id}/status",
        {"status": "confirmed", "version": _version(app, appointment_id)},
    )
    with app.app_context():
        rows = db.session.scalars(
            select(AppointmentStatusChange).filter_by(appointment_id=appointment_id)
        ).all()
        assert [(r.status, r.changed_by_id) for r in rows] == [("confirmed", user("frontdesk").id)]
