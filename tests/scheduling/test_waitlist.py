"""The waitlist: add (with checks), list, remove; which entries can take a freed slot; the
matches fragment with its one-click "Book this slot"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.extensions import db
from tests.scheduling.flow_support import (
    actor,
    audit_events,
    local_today,
    make_appointment,
    today_at,
)


def _entries(app):
    from portal.scheduling.models import WaitlistEntry

    with app.app_context():
        return list(db.session.scalars(select(WaitlistEntry).order_by(WaitlistEntry.id)))


def _form(app, schedule, **changes):
    today = local_today()
    form = {
        "patient_id": schedule.patients[1],
        "appointment_type_id": schedule.new_patient,
        "provider_ids": [schedule.drpatel],
        "earliest_day": today.isoformat(),
        "latest_day": (today + timedelta(days=14)).isoformat(),
        "notes": "Mornings are best",
    }
    form.update(changes)
    return form


def test_front_desk_adds_lists_and_removes_an_entry(app, schedule, signed_in):
    browser = signed_in("front_desk")
    added = browser.post_form("/schedule/waitlist", _form(app, schedule))
    assert added.status_code == 303
    [entry] = _entries(app)
    assert (entry.patient_id, entry.appointment_type_id, entry.provider_ids, entry.status) == (
        schedule.patients[1],
        schedule.new_patient,
        str(schedule.drpatel),
        "waiting",
    )
    page = browser.get("/schedule/waitlist").get_data(as_text=True)
    assert "Turing, Alan" in page and "Anita Patel" in page and "Mornings are best" in page
    removed = browser.htmx_post(f"/schedule/waitlist/{entry.id}/remove")
    assert removed.status_code == 200
    assert "Nobody is waiting." in removed.get_data(as_text=True)
    assert _entries(app)[0].status == "removed"
    with app.app_context():
        actions = [e.action for e in audit_events() if e.action.startswith("waitlist.")]
        assert actions[0] == "waitlist.add" and "waitlist.remove" in actions
        add = audit_events("waitlist.add")[0]
        assert (add.category, add.patient_id) == ("appointments", schedule.patients[1])


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"patient_id": 987654}, "patient_id", "Find and choose the patient."),
        ({"patient_id": ""}, "patient_id", "Find and choose the patient."),
        # Beyond the integer columns' range: it used to reach the query (a 500).
        ({"patient_id": "9" * 20}, "patient_id", "Find and choose the patient."),
        ({"provider_ids": "9" * 20}, "provider_ids", "is not a valid choice"),
        ({"appointment_type_id": 0}, "appointment_type_id", "Choose a type."),
        ("procedure_with_drpatel", "provider_ids", "Not every chosen provider offers Procedure."),
        ("latest_before_earliest", "latest_day", "on or after the earliest day"),
        ("in_the_past", "earliest_day", "cannot be in the past"),
        ("too_far", "latest_day", "within a year"),
        ({"earliest_day": "1900-13-45"}, "earliest_day", "Not a valid date value."),
    ],
)
def test_bad_input_is_refused_beside_its_field_and_nothing_is_saved(
    app, schedule, signed_in, changes, field, message
):
    today = local_today()
    named = {
        "procedure_with_drpatel": {"appointment_type_id": schedule.procedure},
        "latest_before_earliest": {
            "earliest_day": (today + timedelta(days=5)).isoformat(),
            "latest_day": (today + timedelta(days=4)).isoformat(),
        },
        "in_the_past": {"earliest_day": (today - timedelta(days=1)).isoformat()},
        "too_far": {"latest_day": (today + timedelta(days=800)).isoformat()},
    }
    browser = signed_in("front_desk")
    form = _form(app, schedule, **(named[changes] if isinstance(changes, str) else changes))
    response = browser.htmx_post("/schedule/waitlist", form)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    error = html.split(f'id="{field}-error">', 1)
    assert len(error) == 2, f"no error beside {field}"
    assert message in error[1].split("</div>", 1)[0]
    assert "Mornings are best" in html  # what was typed is kept
    if field != "patient_id":  # and the patient chosen stays chosen
        chosen = schedule.patients[1]
        assert f'id="waitlist-patient-{chosen}" value="{chosen}" checked' in html
    assert _entries(app) == []


def test_the_patient_is_found_with_the_registry_search(app, schedule, signed_in):
    browser = signed_in("front_desk")
    response = browser.htmx_post("/schedule/waitlist/patients", {"patient_query": "turing"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    turing = schedule.patients[1]
    assert f'type="radio" name="patient_id" id="waitlist-patient-{turing}" value="{turing}"' in html
    assert "Turing, Alan" in html and "Lovelace" not in html
    with app.app_context():
        assert audit_events("patient.search")[-1].detail.startswith("results=1")
    short = browser.htmx_post("/schedule/waitlist/patients", {"patient_query": "t"})
    assert "Type at least 2 characters." in short.get_data(as_text=True)


def _add_entry(app, schedule, *, patient, type_id, providers=(), days=(0, 14), notes=None):
    from portal.scheduling.waitlist import services as waitlist

    today = local_today()
    with app.app_context():
        return waitlist.add_waitlist_entry(
            actor("frontdesk"),
            patient_id=schedule.patients[patient],
            appointment_type_id=type_id,
            provider_ids=list(providers),
            earliest_day=today + timedelta(days=days[0]),
            latest_day=today + timedelta(days=days[1]),
            notes=notes,
        ).id


def test_matching_entries_for_a_freed_slot(app, schedule):
    from portal.scheduling.models import Appointment
    from portal.scheduling.waitlist import services as waitlist

    tomorrow_ten = today_at(10) + timedelta(days=1)
    freed = make_appointment(
        app,
        schedule,
        starts_at=tomorrow_ten,
        minutes=40,
        type_id=schedule.new_patient,
        status="cancelled",
    )
    # Matches: a shorter type that fits, with any provider (older, but a different type).
    fits_any = _add_entry(app, schedule, patient=1, type_id=schedule.follow_up)
    # Matches: the same type with drlee named; listed first.
    same_type = _add_entry(
        app, schedule, patient=2, type_id=schedule.new_patient, providers=[schedule.drlee]
    )
    # No: only drpatel.
    _add_entry(app, schedule, patient=3, type_id=schedule.new_patient, providers=[schedule.drpatel])
    # No: Procedure (60 min) doesn't fit 40 minutes.
    _add_entry(app, schedule, patient=3, type_id=schedule.procedure)
    # No: the range ends today.
    _add_entry(app, schedule, patient=3, type_id=schedule.follow_up, days=(0, 0))
    # No: the freed appointment's own patient.
    _add_entry(app, schedule, patient=0, type_id=schedule.follow_up)
    with app.app_context():
        appointment = db.session.get(Appointment, freed)
        matches = waitlist.matching_waitlist_entries(appointment)
        assert [entry.id for entry in matches] == [same_type, fits_any]


def test_the_matches_fragment_books_the_freed_slot_in_one_click(app, schedule, signed_in):
    freed = make_appointment(
        app, schedule, starts_at=today_at(15) + timedelta(days=2), status="cancelled"
    )
    entry_id = _add_entry(app, schedule, patient=2, type_id=schedule.follow_up, notes="Any time")
    browser = signed_in("front_desk")
    response = browser.get(
        f"/schedule/appointments/{freed}/waitlist-matches", headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith(f'<section id="waitlist-matches-{freed}"')
    assert "Hopper, Grace" in html and "Any time" in html
    assert 'action="/schedule/appointments"' in html
    with app.app_context():
        from portal.scheduling.models import Appointment

        appointment = db.session.get(Appointment, freed)
        starts = appointment.starts_at.isoformat()
    for name, value in (
        ("patient_id", schedule.patients[2]),
        ("provider_id", schedule.drlee),
        ("location_id", schedule.main_street),
        ("appointment_type_id", schedule.follow_up),
        ("starts_at", starts),
        ("waitlist_entry_id", entry_id),
    ):
        assert f'name="{name}" value="{value}"' in html
    assert ">Book this slot<" in html
    with app.app_context():
        event = audit_events("waitlist.matches")[-1]
        assert event.detail == "entries=1"


def test_no_matches_says_so(app, schedule, signed_in):
    freed = make_appointment(app, schedule, starts_at=today_at(15), status="cancelled")
    browser = signed_in("front_desk")
    html = browser.get(f"/schedule/appointments/{freed}/waitlist-matches").get_data(as_text=True)
    assert "Nobody on the waitlist fits this time." in html


def test_booking_closes_the_entry_in_the_bookings_transaction(app, schedule):
    from portal.scheduling.models import Appointment, WaitlistEntry
    from portal.scheduling.waitlist import services as waitlist

    entry_id = _add_entry(app, schedule, patient=2, type_id=schedule.follow_up)
    booked = make_appointment(app, schedule, starts_at=today_at(16), patient=2)
    other = make_appointment(app, schedule, starts_at=today_at(16, 30), patient=1)
    with app.app_context():
        # Another patient's booking leaves the entry alone.
        waitlist.close_waitlist_entry(
            actor("frontdesk"), entry_id, db.session.get(Appointment, other)
        )
        assert db.session.get(WaitlistEntry, entry_id).status == "waiting"
        waitlist.close_waitlist_entry(
            actor("frontdesk"), entry_id, db.session.get(Appointment, booked)
        )
        db.session.rollback()  # the caller's transaction failed: nothing stays
        assert db.session.get(WaitlistEntry, entry_id).status == "waiting"
        waitlist.close_waitlist_entry(
            actor("frontdesk"), entry_id, db.session.get(Appointment, booked)
        )
        db.session.commit()
        db.session.expire_all()
        assert db.session.get(WaitlistEntry, entry_id).status == "booked"
        assert audit_events("waitlist.booked")[0].detail == f"appointment={booked}"
