"""Immunizations over real HTTP: vaccines from the CVX list, historical records, refusals,
the date checks, and the audit trail. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from portal.extensions import db
from tests.charting.vitals_helpers import audit_events, make_patient


@pytest.fixture
def child(app) -> int:
    return make_patient(app, date(2020, 3, 1), given="Lia")


@pytest.fixture
def nurse(signed_in):
    return signed_in("nurse")


def _rows(app, patient_id: int):
    from portal.charting.models import Immunization

    with app.app_context():
        rows = list(
            db.session.scalars(select(Immunization).where(Immunization.patient_id == patient_id))
        )
        for row in rows:
            db.session.expunge(row)
        return rows


GIVEN = {
    "cvx_code": "03",
    "occurred_on": "2024-04-02",
    "source": "administered",
    "dose_number": "2",
    "lot_number": "MX123",
    "manufacturer": "Merck",
    "site": "Left thigh",
    "route": "SC",
}


def test_a_vaccine_given_here_is_recorded_and_listed(app, nurse, child):
    response = nurse.post_form(f"/chart/patients/{child}/immunizations", GIVEN)
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    (row,) = _rows(app, child)
    assert (row.cvx_code, row.vaccine, row.dose_number, row.lot_number) == (
        "03",
        "MMR (measles, mumps, rubella)",
        2,
        "MX123",
    )
    page = nurse.get(f"/chart/patients/{child}/immunizations").get_data(as_text=True)
    assert "MMR (measles, mumps, rubella)" in page and "CVX 03" in page
    assert "2 Apr 2024" in page and "Subcutaneous" in page and "Given here" in page


def test_a_historical_record_needs_no_lot(app, nurse, child):
    data = {**GIVEN, "source": "historical", "lot_number": "", "cvx_code": "20"}
    assert nurse.post_form(f"/chart/patients/{child}/immunizations", data).status_code == 303
    assert _rows(app, child)[0].source == "historical"


def test_a_vaccine_given_here_needs_its_lot_number(app, nurse, child):
    response = nurse.post_form(
        f"/chart/patients/{child}/immunizations", {**GIVEN, "lot_number": ""}
    )
    assert response.status_code == 422
    assert "Enter the lot number" in response.get_data(as_text=True)
    assert _rows(app, child) == []


def test_a_refusal_needs_a_reason_and_keeps_no_dose_details(app, nurse, child):
    refusal = {**GIVEN, "refused": "y", "cvx_code": "141", "occurred_on": "2025-10-01"}
    response = nurse.post_form(f"/chart/patients/{child}/immunizations", refusal)
    assert response.status_code == 422
    assert "Say why it was refused." in response.get_data(as_text=True)
    response = nurse.post_form(
        f"/chart/patients/{child}/immunizations",
        {**refusal, "refusal_reason": "Parent prefers to wait"},
    )
    assert response.status_code == 303
    (row,) = _rows(app, child)
    assert row.refused and row.lot_number is None and row.dose_number is None
    page = nurse.get(f"/chart/patients/{child}/immunizations").get_data(as_text=True)
    assert "Refused" in page and "Parent prefers to wait" in page
    (event,) = [e for e in audit_events(app, "immunizations") if e.action.endswith("refusal")]
    assert event.detail == "cvx 141; administered"  # codes only, never the reason's text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"occurred_on": (date.today() + timedelta(days=3)).isoformat()}, "in the future"),
        ({"occurred_on": "2019-12-31"}, "before the patient&#39;s birth"),
        ({"occurred_on": "someday"}, "Not a valid date value"),
        ({"cvx_code": "999"}, "Choose a vaccine from the list."),
        ({"cvx_code": ""}, "Choose a vaccine from the list."),
        ({"dose_number": "0"}, "dose number from 1 to 20"),
        ({"route": "XX"}, "Choose a route from the list."),
    ],
)
def test_bad_entries_are_refused_beside_the_field(app, nurse, child, changes, message):
    response = nurse.post_form(f"/chart/patients/{child}/immunizations", {**GIVEN, **changes})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page
    assert 'value="MX123"' in page  # what was typed is kept
    assert _rows(app, child) == []


def test_views_and_changes_are_audited(app, nurse, child):
    nurse.get(f"/chart/patients/{child}/immunizations")
    nurse.post_form(f"/chart/patients/{child}/immunizations", GIVEN)
    events = audit_events(app, "immunizations")
    assert [e.action for e in events] == ["immunizations.view", "immunization.record"]
    assert events[1].detail == "cvx 03; administered"
    assert all(e.patient_id == child for e in events)


def test_unknown_patient_is_404(nurse):
    assert nurse.get("/chart/patients/987654/immunizations").status_code == 404
    assert nurse.post_form("/chart/patients/987654/immunizations", GIVEN).status_code == 404
