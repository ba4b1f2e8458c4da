"""Nothing is charted after a patient's recorded death: vital signs taken, or immunizations
dated, after the date of death are refused with the reason beside the field, and nothing is
saved. The day of death itself is allowed (the time of death is not recorded). A patient
marked deceased without a date takes no new entry until the date is recorded."""

from __future__ import annotations

import re
from datetime import date

import pytest

from portal.extensions import db
from tests.charting.vitals_helpers import (
    form,
    make_deceased_patient,
    make_encounter,
    make_patient,
    mark_deceased,
    vital_sets,
)

AFTER_DEATH = "cannot be dated after the patient&#39;s recorded date of death (14 Mar 2025)"
NO_DATE = "recorded as deceased without a date of death"


def _immunizations(app, patient_id: int) -> list:
    from sqlalchemy import select

    from portal.charting.models import Immunization

    with app.app_context():
        return list(db.session.scalars(select(Immunization).filter_by(patient_id=patient_id)))


@pytest.fixture
def nurse(signed_in):
    return signed_in("nurse")


@pytest.fixture
def deceased(app) -> int:
    return make_deceased_patient(app)


def _field_error(page: str, field_id: str) -> str:
    found = re.search(rf'id="{field_id}-error">([^<]*)<', page)
    return found.group(1) if found else ""


@pytest.mark.parametrize("taken_at", ["2025-03-15T08:00", ""])  # blank means now
def test_vitals_taken_after_the_death_are_refused_beside_the_time(app, nurse, deceased, taken_at):
    response = nurse.post_form(
        f"/chart/patients/{deceased}/vitals", form(heart_rate="60", taken_at=taken_at)
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Vital signs " + AFTER_DEATH in _field_error(page, "vitals-taken_at")
    assert 'value="60"' in page  # what was typed is kept
    assert vital_sets(app, deceased) == []


def test_vitals_taken_on_the_day_of_death_are_kept(app, nurse, deceased):
    response = nurse.post_form(
        f"/chart/patients/{deceased}/vitals", form(heart_rate="60", taken_at="2025-03-14T22:30")
    )
    assert response.status_code == 303
    assert len(vital_sets(app, deceased)) == 1


def test_vitals_at_a_visit_after_the_death_are_refused_too(app, nurse, deceased):
    encounter = make_encounter(app, deceased)
    response = nurse.htmx_post(f"/chart/encounters/{encounter}/vitals", form(heart_rate="60"))
    assert response.status_code == 422
    assert AFTER_DEATH in _field_error(response.get_data(as_text=True), "vitals-taken_at")
    assert vital_sets(app, deceased) == []


def test_a_patient_deceased_without_a_date_takes_no_new_vitals(app, nurse):
    patient_id = make_patient(app, date(1950, 1, 1), given="Undated")
    mark_deceased(app, patient_id, None)
    response = nurse.post_form(
        f"/chart/patients/{patient_id}/vitals", form(heart_rate="60", taken_at="2020-01-01T09:00")
    )
    assert response.status_code == 422
    assert NO_DATE in _field_error(response.get_data(as_text=True), "vitals-taken_at")
    assert vital_sets(app, patient_id) == []


def test_a_living_patient_is_not_affected(app, nurse):
    patient_id = make_patient(app, date(1950, 1, 1), given="Alive")
    assert (
        nurse.post_form(f"/chart/patients/{patient_id}/vitals", form(heart_rate="60")).status_code
        == 303
    )


IMMUNIZATION = {
    "cvx_code": "141",
    "source": "administered",
    "lot_number": "FL-77",
    "site": "Left deltoid",
    "route": "IM",
}


@pytest.mark.parametrize("source", ["administered", "historical"])
def test_an_immunization_dated_after_the_death_is_refused_beside_the_date(
    app, nurse, deceased, source
):
    data = {**IMMUNIZATION, "source": source, "occurred_on": "2025-03-15"}
    response = nurse.post_form(f"/chart/patients/{deceased}/immunizations", data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "An immunization " + AFTER_DEATH in _field_error(page, "occurred_on")
    assert 'value="FL-77"' in page
    assert _immunizations(app, deceased) == []


def test_an_immunization_given_before_the_death_can_still_be_recorded(app, nurse, deceased):
    data = {**IMMUNIZATION, "occurred_on": "2025-03-14"}
    response = nurse.post_form(f"/chart/patients/{deceased}/immunizations", data)
    assert response.status_code == 303
    assert len(_immunizations(app, deceased)) == 1


def test_an_immunization_at_a_visit_after_the_death_is_refused(app, nurse, deceased):
    encounter = make_encounter(app, deceased)
    data = {f"immunization-{name}": value for name, value in IMMUNIZATION.items()}
    data["immunization-occurred_on"] = "2025-04-01"
    response = nurse.post_form(f"/chart/encounters/{encounter}/immunizations", data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert AFTER_DEATH in _field_error(page, "immunization-occurred_on")
    assert _immunizations(app, deceased) == []


def test_a_patient_deceased_without_a_date_takes_no_new_immunization(app, nurse):
    patient_id = make_patient(app, date(1950, 1, 1), given="Undated")
    mark_deceased(app, patient_id, None)
    data = {**IMMUNIZATION, "source": "historical", "occurred_on": "2001-05-05"}
    response = nurse.post_form(f"/chart/patients/{patient_id}/immunizations", data)
    assert response.status_code == 422
    assert NO_DATE in _field_error(response.get_data(as_text=True), "occurred_on")
    assert _immunizations(app, patient_id) == []
