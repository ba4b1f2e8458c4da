"""Marking a patient deceased when vital signs or immunizations are dated after the date of
death (usually a mistyped date, or records charted on the wrong patient): the status form
comes back, nothing changed, saying how many records are after that date, and asks for a
ticked box before it changes the status. Over real HTTP; SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import date

import pytest

from tests.charting.vitals_helpers import form as vitals_form
from tests.charting.vitals_helpers import vital_sets
from tests.patients.helpers import patient, register_ok
from tests.support.audit import audit_events

DIED = "2024-05-06"


@pytest.fixture
def nurse(signed_in):
    return signed_in("nurse")


def _vitals(nurse, patient_id: int, taken_at: str) -> None:
    response = nurse.post_form(
        f"/chart/patients/{patient_id}/vitals", vitals_form(heart_rate="70", taken_at=taken_at)
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]


def _immunization(nurse, patient_id: int, occurred_on: str) -> None:
    response = nurse.post_form(
        f"/chart/patients/{patient_id}/immunizations",
        {"cvx_code": "88", "occurred_on": occurred_on, "source": "historical"},
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]


def _mark_deceased(desk, patient_id: int, on: str = DIED, **extra):
    return desk.post_form(
        f"/patients/{patient_id}/status", {"status": "deceased", "deceased_date": on, **extra}
    )


def _warning(page: str) -> str:
    found = re.search(r'id="records-after-death">(.*?)</div>', page, re.S)
    return " ".join(found.group(1).split()) if found else ""


def _warned_for(page: str) -> str:
    found = re.search(r'<input[^>]*name="after_death_warned_for"[^>]*>', page)
    assert found, "no hidden date of the warning"
    return re.search(r'value="([^"]*)"', found.group(0)).group(1)


@pytest.fixture
def charted_after(desk, nurse) -> int:
    """A patient with two sets of vitals and one immunization after 6 May 2024."""
    patient_id = register_ok(desk)
    _vitals(nurse, patient_id, "2024-05-07T09:00")
    _vitals(nurse, patient_id, "2024-06-01T10:00")
    _immunization(nurse, patient_id, "2024-10-01")
    return patient_id


def test_records_after_the_date_of_death_are_counted_and_nothing_changes(app, desk, charted_after):
    response = _mark_deceased(desk, charted_after)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert _warning(page).startswith(
        "Nothing was changed: 2 sets of vital signs and 1 immunization are dated after 6 May 2024."
    )
    assert re.search(
        r'<label class="form-check-label" for="confirm_after_death">Mark deceased on this date '
        r"anyway",
        page,
    )
    assert 'value="2024-05-06"' in page  # the date typed is kept
    assert patient(app, charted_after).status == "active"
    assert audit_events(app, "patient.status") == []


def test_ticking_the_box_under_the_warning_marks_the_patient_deceased(app, desk, charted_after):
    page = _mark_deceased(desk, charted_after).get_data(as_text=True)
    response = _mark_deceased(
        desk, charted_after, confirm_after_death="y", after_death_warned_for=_warned_for(page)
    )
    assert response.status_code == 303
    stored = patient(app, charted_after)
    assert (stored.status, stored.deceased_date) == ("deceased", date(2024, 5, 6))
    (event,) = audit_events(app, "patient.status")
    assert event.detail == "active -> deceased; 3 charted records dated after the death confirmed"
    assert len(vital_sets(app, charted_after)) == 2  # the records stay as they are


def test_a_tick_given_for_another_date_does_not_pass_unread(app, desk, charted_after):
    page = _mark_deceased(desk, charted_after, on="2024-09-01").get_data(as_text=True)
    assert "1 immunization is dated after 1 Sep 2024." in _warning(page)
    response = _mark_deceased(
        desk, charted_after, confirm_after_death="y", after_death_warned_for=_warned_for(page)
    )  # the date changed back to 6 May: three records now, not one
    assert response.status_code == 422
    assert "2 sets of vital signs and 1 immunization" in _warning(response.get_data(as_text=True))
    assert patient(app, charted_after).status == "active"


def test_records_up_to_the_day_of_death_or_marked_in_error_ask_nothing(app, desk, nurse):
    patient_id = register_ok(desk)
    _vitals(nurse, patient_id, "2024-05-06T23:30")  # the day itself, late in the evening
    _immunization(nurse, patient_id, "2024-05-06")
    _vitals(nurse, patient_id, "2024-05-09T09:00")
    mistaken = vital_sets(app, patient_id)[-1].id
    marked = nurse.post_form(
        f"/chart/patients/{patient_id}/vitals/{mistaken}/entered-in-error",
        {"reason": "Another patient's", "confirm": "y"},
    )
    assert marked.status_code == 303
    response = _mark_deceased(desk, patient_id)
    assert response.status_code == 303
    assert patient(app, patient_id).status == "deceased"
    (event,) = audit_events(app, "patient.status")
    assert event.detail == "active -> deceased"
