"""The vital-signs and immunization forms of a deceased patient say so before anything is
typed. Late entries for care given before the death are ordinary charting, so the forms stay,
under a notice of the date of death, with their date and time limited to that day (and, at a
visit before the death, set to the visit's). A patient recorded as deceased without a date
can take nothing, so the forms give way to the notice. Over real HTTP; SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

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

VITALS_NOTICE = (
    "Deceased on 14 Mar 2025: vital signs can be recorded only for times up to that day."
)
IMMUNIZATIONS_NOTICE = (
    "Deceased on 14 Mar 2025: immunizations can be recorded only with dates up to that day."
)
NO_DATE_NOTICE = "Recorded as deceased without a date of death"
VISIT_AFTER = "This visit is dated after it"


@pytest.fixture
def nurse(signed_in):
    return signed_in("nurse")


@pytest.fixture
def deceased(app) -> int:
    return make_deceased_patient(app)


def _visit(app, patient_id: int, at: datetime) -> int:
    from portal.charting.models import Encounter

    encounter = make_encounter(app, patient_id)
    with app.app_context():
        db.session.get(Encounter, encounter).occurred_at = at
        db.session.commit()
    return encounter


def _notices(page: str) -> list[str]:
    found = re.findall(r'class="[^"]*after-death-notice[^"]*" role="note">(.*?)</div>', page, re.S)
    return [" ".join(re.sub(r"<[^>]+>", "", text).split()) for text in found]


def _input(page: str, field_id: str) -> str:
    found = re.search(rf'<input[^>]*id="{field_id}"[^>]*>', page)
    assert found, f"no input {field_id}"
    return found.group(0)


def _hint(page: str, field_id: str) -> str:
    found = re.search(rf'id="{field_id}-hint">([^<]*)<', page)
    return found.group(1) if found else ""


def test_the_vitals_page_keeps_the_form_under_the_notice_with_the_time_limited(
    app, nurse, deceased
):
    page = nurse.get(f"/chart/patients/{deceased}/vitals").get_data(as_text=True)
    assert _notices(page) == [VITALS_NOTICE]
    assert "Record vital signs</button>" in page  # late entries stay possible
    assert 'max="2025-03-14T23:59"' in _input(page, "vitals-taken_at")
    assert _hint(page, "vitals-taken_at") == "When the set was taken, on or before 14 Mar 2025."
    # ...and a late entry dated on the day of death is kept.
    response = nurse.post_form(
        f"/chart/patients/{deceased}/vitals", form(heart_rate="60", taken_at="2025-03-14T09:00")
    )
    assert response.status_code == 303
    assert len(vital_sets(app, deceased)) == 1


def test_the_immunization_page_keeps_the_form_under_the_notice_with_the_date_limited(
    app, nurse, deceased
):
    page = nurse.get(f"/chart/patients/{deceased}/immunizations").get_data(as_text=True)
    assert _notices(page) == [IMMUNIZATIONS_NOTICE]
    assert "Record immunization</button>" in page
    assert 'max="2025-03-14"' in _input(page, "occurred_on")
    assert _hint(page, "occurred_on") == "On or before 14 Mar 2025."


def test_a_living_patients_forms_have_no_notice_and_no_limit(app, nurse):
    patient_id = make_patient(app, date(1950, 1, 1), given="Alive")
    encounter = make_encounter(app, patient_id)
    for path in (
        f"/chart/patients/{patient_id}/vitals",
        f"/chart/patients/{patient_id}/immunizations",
        f"/chart/encounters/{encounter}",
    ):
        page = nurse.get(path).get_data(as_text=True)
        assert _notices(page) == [], path
        dates = re.findall(r'<input[^>]*type="(?:date|datetime-local)"[^>]*>', page)
        assert dates and not any("max=" in found for found in dates), path
    vitals = nurse.get(f"/chart/patients/{patient_id}/vitals").get_data(as_text=True)
    assert _hint(vitals, "vitals-taken_at") == "Leave blank for now."


def test_a_visit_before_the_death_sets_its_time_and_day_in_both_forms(app, nurse, deceased):
    # 15:00 UTC is 11:00 in New York, the clinic's zone.
    encounter = _visit(app, deceased, datetime(2025, 3, 10, 15, 0, tzinfo=UTC))
    page = nurse.get(f"/chart/encounters/{encounter}").get_data(as_text=True)
    assert _notices(page) == [VITALS_NOTICE, IMMUNIZATIONS_NOTICE]
    taken_at = _input(page, "vitals-taken_at")
    assert 'value="2025-03-10T11:00"' in taken_at and 'max="2025-03-14T23:59"' in taken_at
    occurred_on = _input(page, "immunization-occurred_on")
    assert 'value="2025-03-10"' in occurred_on and 'max="2025-03-14"' in occurred_on
    # Posted as the page fills it in, the late entry is kept (with htmx: the section again).
    response = nurse.htmx_post(
        f"/chart/encounters/{encounter}/vitals", form(heart_rate="58", taken_at="2025-03-10T11:00")
    )
    assert response.status_code == 200
    section = response.get_data(as_text=True)
    assert "58 /min" in section and _notices(section) == [VITALS_NOTICE]
    assert [row.encounter_id for row in vital_sets(app, deceased)] == [encounter]


def test_a_visit_dated_after_the_death_says_so_and_fills_in_no_date(app, nurse, deceased):
    encounter = _visit(app, deceased, datetime(2025, 4, 2, 15, 0, tzinfo=UTC))
    page = nurse.get(f"/chart/encounters/{encounter}").get_data(as_text=True)
    notices = _notices(page)
    assert len(notices) == 2 and all(VISIT_AFTER in notice for notice in notices)
    assert 'value=""' in _input(page, "vitals-taken_at")
    assert "value=" not in _input(page, "immunization-occurred_on").replace('value=""', "")


def test_deceased_without_a_date_the_forms_give_way_to_the_notice(app, nurse):
    patient_id = make_patient(app, date(1950, 1, 1), given="Undated")
    mark_deceased(app, patient_id, None)
    encounter = make_encounter(app, patient_id)
    for path, count in (
        (f"/chart/patients/{patient_id}/vitals", 1),
        (f"/chart/patients/{patient_id}/immunizations", 1),
        (f"/chart/encounters/{encounter}", 2),
    ):
        page = nurse.get(path).get_data(as_text=True)
        notices = _notices(page)
        assert len(notices) == count and all(NO_DATE_NOTICE in n for n in notices), path
        assert f'href="/patients/{patient_id}"' in page
        assert "Record vital signs</button>" not in page, path
        assert "Record immunization</button>" not in page, path
