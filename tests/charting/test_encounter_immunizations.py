"""Immunizations recorded from the encounter page belong to that visit (like its vitals):
listed in the encounter's section, on the patient's immunization record with a link to the
visit, and in the visit summary (page and PDF). Over real HTTP, with htmx and without."""

from __future__ import annotations

import re
from datetime import date
from io import BytesIO

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from portal.extensions import db
from tests.charting.vitals_helpers import audit_events, make_encounter, make_patient

GIVEN = {
    "cvx_code": "115",
    "source": "administered",
    "dose_number": "1",
    "lot_number": "TD-4411",
    "site": "Right deltoid",
    "route": "IM",
}


def _form(**values) -> dict:
    return {f"immunization-{name}": value for name, value in values.items()}


def _rows(app, patient_id: int) -> list:
    from portal.charting.models import Immunization

    with app.app_context():
        rows = list(db.session.scalars(select(Immunization).filter_by(patient_id=patient_id)))
        for row in rows:
            db.session.expunge(row)
        return rows


@pytest.fixture
def patient(app) -> int:
    return make_patient(app, date(1988, 8, 8), given="Noor")


@pytest.fixture
def nurse(signed_in):
    return signed_in("nurse")


def test_the_encounter_page_offers_the_form_with_the_visits_date(app, nurse, patient):
    from datetime import UTC, datetime

    from portal.charting.models import Encounter

    encounter = make_encounter(app, patient)
    with app.app_context():
        # 01:30 UTC is the evening before in New York, the clinic's zone.
        db.session.get(Encounter, encounter).occurred_at = datetime(2025, 6, 3, 1, 30, tzinfo=UTC)
        db.session.commit()
    page = nurse.get(f"/chart/encounters/{encounter}").get_data(as_text=True)
    assert 'id="encounter-immunizations"' in page
    assert "No immunization recorded at this visit." in page
    assert "<summary" in page and "Record an immunization or a refusal at this visit" in page
    assert '<label class="form-label" for="immunization-cvx_code">Vaccine' in page
    date_input = re.search(r'<input[^>]*id="immunization-occurred_on"[^>]*>', page).group(0)
    assert 'value="2025-06-02"' in date_input


def test_recorded_without_script_it_is_linked_to_the_visit_and_shown_there(app, nurse, patient):
    encounter = make_encounter(app, patient)
    response = nurse.post_form(
        f"/chart/encounters/{encounter}/immunizations", _form(**GIVEN, occurred_on="2025-06-02")
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    assert response.location.endswith(f"/chart/encounters/{encounter}#encounter-immunizations")
    (row,) = _rows(app, patient)
    assert (row.encounter_id, row.cvx_code, row.lot_number) == (encounter, "115", "TD-4411")
    page = nurse.get(f"/chart/encounters/{encounter}").get_data(as_text=True)
    section = page.split('id="encounter-immunizations"', 1)[1].split("</section>", 1)[0]
    assert "Tdap" in section and "lot TD-4411" in section and "right deltoid" in section
    record = nurse.get(f"/chart/patients/{patient}/immunizations").get_data(as_text=True)
    assert f'href="/chart/encounters/{encounter}">at a visit</a>' in record
    (event,) = [e for e in audit_events(app, "immunizations") if e.action == "immunization.record"]
    assert event.detail == f"cvx 115; administered; encounter {encounter}"


def test_recorded_with_htmx_the_section_comes_back(app, nurse, patient):
    encounter = make_encounter(app, patient)
    response = nurse.htmx_post(
        f"/chart/encounters/{encounter}/immunizations", _form(**GIVEN, occurred_on="2025-06-02")
    )
    assert response.status_code == 200
    section = response.get_data(as_text=True)
    assert section.lstrip().startswith("<section") and "Tdap" in section
    assert _rows(app, patient)[0].encounter_id == encounter


def test_a_refused_entry_comes_back_beside_its_field_with_what_was_typed(app, nurse, patient):
    encounter = make_encounter(app, patient)
    sent = _form(**{**GIVEN, "lot_number": ""}, occurred_on="2025-06-02")
    for response in (
        nurse.post_form(f"/chart/encounters/{encounter}/immunizations", sent),
        nurse.htmx_post(f"/chart/encounters/{encounter}/immunizations", sent),
    ):
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        error = re.search(r'id="immunization-lot_number-error">([^<]*)<', page)
        assert error and "Enter the lot number" in error.group(1)
        assert '<details class="mb-2" open>' in page  # the form is shown open
        assert 'value="2025-06-02"' in page
    assert _rows(app, patient) == []


def test_the_visit_summary_lists_the_visits_immunizations(app, nurse, signed_in, patient):
    from portal.charting.models import Encounter, Note
    from portal.charting.notes.services import sha256_text
    from portal.timeutil import utcnow

    encounter = make_encounter(app, patient)
    other_visit = make_encounter(app, patient)
    nurse.post_form(
        f"/chart/encounters/{encounter}/immunizations", _form(**GIVEN, occurred_on="2025-06-02")
    )
    nurse.post_form(
        f"/chart/encounters/{other_visit}/immunizations",
        _form(**{**GIVEN, "cvx_code": "03", "lot_number": "MMR-1"}, occurred_on="2025-06-01"),
    )
    with app.app_context():
        visit = db.session.get(Encounter, encounter)
        db.session.add(
            Note(
                encounter_id=encounter,
                patient_id=patient,
                author_id=visit.provider_id,
                kind="provider",
                text="Tdap given.",
                signed_at=utcnow(),
                signed_by_id=visit.provider_id,
                signed_text_sha256=sha256_text("Tdap given."),
            )
        )
        db.session.commit()
    drlee = signed_in("prescriber")
    page = drlee.get(f"/chart/encounters/{encounter}/summary").get_data(as_text=True)
    assert "Immunizations" in page
    assert "Tdap (CVX 115), dose 1, lot TD-4411, right deltoid, intramuscular" in page
    assert "MMR-1" not in page  # the other visit's
    pdf = drlee.get(f"/chart/encounters/{encounter}/summary.pdf")
    text = "\n".join(page.extract_text() for page in PdfReader(BytesIO(pdf.data)).pages)
    assert "Tdap (CVX 115)" in text and "TD-4411" in text and "MMR-1" not in text


def test_a_visit_without_immunizations_has_no_such_heading_in_its_summary(app, signed_in, patient):
    encounter = make_encounter(app, patient)
    page = signed_in("prescriber").get(f"/chart/encounters/{encounter}/summary")
    assert "visit-immunizations-heading" not in page.get_data(as_text=True)


def test_unknown_encounter_is_404_and_the_front_desk_is_refused(app, nurse, signed_in, patient):
    sent = _form(**GIVEN, occurred_on="2025-06-02")
    assert nurse.post_form("/chart/encounters/999999/immunizations", sent).status_code == 404
    encounter = make_encounter(app, patient)
    desk = signed_in("front_desk")
    assert desk.post_form(f"/chart/encounters/{encounter}/immunizations", sent).status_code == 403
    assert _rows(app, patient) == []


def test_the_service_refuses_an_encounter_of_another_patient(app, patient):
    from werkzeug.exceptions import NotFound

    from portal.actors import Actor
    from portal.auth.models import User
    from portal.charting.immunizations.services import record_immunization

    other = make_patient(app, date(1970, 1, 1), given="Other")
    encounter = make_encounter(app, other)
    with app.test_request_context():
        nurse = Actor.for_user(
            db.session.scalars(select(User).filter_by(username="nurse")).one(), "127.0.0.1"
        )
        with pytest.raises(NotFound):
            record_immunization(
                nurse,
                patient,
                cvx_code="115",
                occurred_on=date(2025, 6, 2),
                lot_number="TD-4411",
                encounter_id=encounter,
            )
    assert _rows(app, patient) == []
