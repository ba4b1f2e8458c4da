"""An immunization recorded by mistake is marked entered in error, as a set of vital signs
is: a confirmation page asks why and for a ticked box; the record stays on the patient's
immunization page, struck out with its reason, and leaves the visit's list, the visit
summary and the chart summary's count. Over real HTTP; runs on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import select

from portal.extensions import db
from tests.charting.entered_in_error_checks import assert_asked_again
from tests.charting.vitals_helpers import audit_events, make_encounter, make_patient

GIVEN = {
    "cvx_code": "115",
    "occurred_on": "2025-06-02",
    "source": "administered",
    "dose_number": "1",
    "lot_number": "TD-4411",
    "site": "Right deltoid",
    "route": "IM",
}
CONFIRMED = {"reason": "Given to the twin, not this patient", "confirm": "y"}


@pytest.fixture
def patient(app) -> int:
    return make_patient(app, date(1988, 8, 8), given="Noor")


@pytest.fixture
def nurse(signed_in):
    return signed_in("nurse")


def _rows(app, patient_id: int) -> list:
    from portal.charting.models import Immunization

    with app.app_context():
        rows = list(
            db.session.scalars(
                select(Immunization).filter_by(patient_id=patient_id).order_by(Immunization.id)
            )
        )
        for row in rows:
            db.session.expunge(row)
        return rows


def _record(nurse, patient_id: int, **changes) -> int:
    response = nurse.post_form(f"/chart/patients/{patient_id}/immunizations", {**GIVEN, **changes})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    return max(row.id for row in _rows(nurse.app, patient_id))


def _record_at_visit(nurse, encounter_id: int, **changes) -> None:
    data = {f"immunization-{name}": value for name, value in {**GIVEN, **changes}.items()}
    response = nurse.post_form(f"/chart/encounters/{encounter_id}/immunizations", data)
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]


def _url(patient_id: int, immunization_id: int) -> str:
    return f"/chart/patients/{patient_id}/immunizations/{immunization_id}/entered-in-error"


def _row_of(page: str, text: str) -> str:
    """The table row of the immunization page that holds ``text``."""
    rows = [row for row in re.findall(r"<tr[ >].*?</tr>", page, re.S) if text in row]
    assert len(rows) == 1, rows
    return rows[0]


def test_the_record_offers_a_link_to_a_question_that_shows_it_and_changes_nothing(
    app, nurse, patient
):
    immunization = _record(nurse, patient)
    record = nurse.get(f"/chart/patients/{patient}/immunizations").get_data(as_text=True)
    assert f'href="{_url(patient, immunization)}"' in record  # a link, not a one-click form
    response = nurse.get(_url(patient, immunization))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Mark an immunization entered in error" in page
    assert "Tdap (CVX 115), 2 Jun 2025" in page and "TD-4411" in page
    assert re.search(
        r'<label class="form-label" for="reason">Why was this immunization entered in error\?',
        page,
    )
    assert re.search(
        r'<label class="form-check-label" for="confirm">I confirm this immunization was '
        r"entered in error",
        page,
    )
    assert f'href="/chart/patients/{patient}/immunizations"' in page  # Cancel goes back
    assert not _rows(app, patient)[0].entered_in_error  # asking changes nothing
    viewed = [e for e in audit_events(app, "immunizations") if e.action == "immunization.view"]
    assert [(e.object_id, e.detail) for e in viewed] == [
        (str(immunization), "entered-in-error confirmation")
    ]


def test_marked_it_stays_struck_out_with_its_reason_and_is_audited(app, nurse, patient):
    immunization = _record(nurse, patient)
    _record(nurse, patient, cvx_code="03", lot_number="MMR-9", occurred_on="2025-06-01")
    response = nurse.post_form(_url(patient, immunization), CONFIRMED)
    assert response.status_code == 303
    assert response.location.endswith(f"/chart/patients/{patient}/immunizations")
    marked, kept = _rows(app, patient)
    assert marked.entered_in_error and marked.entered_in_error_reason == CONFIRMED["reason"]
    assert not kept.entered_in_error
    page = nurse.get(f"/chart/patients/{patient}/immunizations").get_data(as_text=True)
    assert "Marked as entered in error." in page
    struck = _row_of(page, "TD-4411")
    assert "text-decoration-line-through" in struck and "Entered in error" in struck
    assert CONFIRMED["reason"] in struck
    assert "entered-in-error" not in struck  # no second link for a record already marked
    assert "text-decoration-line-through" not in _row_of(page, "MMR-9")
    events = [e for e in audit_events(app, "immunizations") if e.object_id == str(immunization)]
    assert [e.action for e in events] == ["immunization.record", "immunization.entered_in_error"]
    assert events[1].detail == "cvx 115"  # codes only: the trail holds no free text


@pytest.mark.parametrize(
    ("sent", "messages"),
    [
        ({}, ["Say why this immunization was entered in error.", "Tick the box to confirm."]),
        ({"reason": "Recorded twice"}, ["Tick the box to confirm."]),
        ({"confirm": "y"}, ["Say why this immunization was entered in error."]),
        ({"reason": "   ", "confirm": "y"}, ["Say why this immunization was entered in error."]),
        ({"reason": "x" * 301, "confirm": "y"}, ["300 characters or fewer"]),
    ],
)
def test_without_the_reason_and_the_ticked_box_nothing_changes(app, nurse, patient, sent, messages):
    immunization = _record(nurse, patient)
    assert_asked_again(nurse.post_form(_url(patient, immunization), sent), sent, messages)
    (row,) = _rows(app, patient)
    assert not row.entered_in_error and row.entered_in_error_reason is None
    actions = [e.action for e in audit_events(app, "immunizations")]
    assert "immunization.entered_in_error" not in actions


def test_a_record_already_marked_says_so_and_keeps_its_first_reason(app, nurse, patient):
    immunization = _record(nurse, patient)
    nurse.post_form(_url(patient, immunization), CONFIRMED)
    page = nurse.get(_url(patient, immunization)).get_data(as_text=True)
    assert "already marked entered in error: " + CONFIRMED["reason"] in page
    assert "I confirm this immunization" not in page
    again = nurse.post_form(_url(patient, immunization), {"reason": "Other", "confirm": "y"})
    assert again.status_code == 303
    assert _rows(app, patient)[0].entered_in_error_reason == CONFIRMED["reason"]
    marks = [
        e for e in audit_events(app, "immunizations") if e.action == "immunization.entered_in_error"
    ]
    assert len(marks) == 1


def test_a_record_of_another_patient_is_404(app, nurse, patient):
    other = make_patient(app, date(1990, 1, 1), given="Other")
    theirs = _record(nurse, other)
    url = _url(patient, theirs)
    assert nurse.get(url).status_code == 404
    assert nurse.post_form(url).status_code == 404
    assert nurse.post_form(url, CONFIRMED).status_code == 404
    assert nurse.get(_url(patient, 999999)).status_code == 404
    assert not _rows(app, other)[0].entered_in_error
    actions = [e.action for e in audit_events(app, "immunizations")]
    assert "immunization.view" not in actions and "immunization.entered_in_error" not in actions


def test_the_front_desk_cannot_mark_one(app, nurse, signed_in, patient):
    immunization = _record(nurse, patient)
    desk = signed_in("front_desk")
    assert desk.get(_url(patient, immunization)).status_code == 403
    assert desk.post_form(_url(patient, immunization), CONFIRMED).status_code == 403
    assert not _rows(app, patient)[0].entered_in_error


def test_one_marked_from_its_visit_leaves_the_visit_lists_and_the_chart_count(
    app, nurse, signed_in, patient
):
    encounter = make_encounter(app, patient)
    _record_at_visit(nurse, encounter)
    _record_at_visit(nurse, encounter, cvx_code="03", lot_number="MMR-9")
    mistaken = _rows(app, patient)[0].id
    chart = nurse.get(f"/chart/patients/{patient}").get_data(as_text=True)
    assert "2 recorded" in chart

    visit_page = nurse.get(f"/chart/encounters/{encounter}").get_data(as_text=True)
    link = f'href="{_url(patient, mistaken)}?from=encounter"'
    assert link in visit_page
    question = nurse.get(f"{_url(patient, mistaken)}?from=encounter").get_data(as_text=True)
    assert f'href="/chart/encounters/{encounter}#encounter-immunizations"' in question  # Cancel
    response = nurse.post_form(_url(patient, mistaken), {**CONFIRMED, "from": "encounter"})
    assert response.status_code == 303
    assert response.location.endswith(f"/chart/encounters/{encounter}#encounter-immunizations")

    visit_page = nurse.get(f"/chart/encounters/{encounter}").get_data(as_text=True)
    section = visit_page.split('id="encounter-immunizations"', 1)[1].split("</section>", 1)[0]
    assert "TD-4411" not in section and "MMR-9" in section
    assert "1 record from this visit marked entered in error" in section
    summary = signed_in("prescriber").get(f"/chart/encounters/{encounter}/summary")
    summary_page = summary.get_data(as_text=True)
    assert "MMR (measles, mumps, rubella) (CVX 03)" in summary_page
    assert "Tdap" not in summary_page and "TD-4411" not in summary_page
    assert "1 recorded" in nurse.get(f"/chart/patients/{patient}").get_data(as_text=True)
    record = nurse.get(f"/chart/patients/{patient}/immunizations").get_data(as_text=True)
    assert "text-decoration-line-through" in _row_of(record, "TD-4411")  # still on the record
    (event,) = [
        e for e in audit_events(app, "immunizations") if e.action == "immunization.entered_in_error"
    ]
    assert event.detail == f"cvx 115; encounter {encounter}"
