"""The visit summary of an encounter: the print view and the PDF (signed notes only)."""

from __future__ import annotations

from io import BytesIO

from pypdf import PdfReader

from portal.charting.models import Problem, VitalSigns, encounter_problems
from portal.extensions import db
from tests.audit.helpers import events
from tests.charting.summary_helpers import add_addendum, make_encounter, make_note, make_patient

NOTE = "Subjective:\n  cough for 3 days ≥ 38 °C <script>alert(1)</script>\n\nPlan:\n  rest & fluids"


def _visit(app, *, signed=True, given="Zoë", family="Ångström 李雷"):
    with app.app_context():
        patient = make_patient(given, family)
        encounter = make_encounter(patient, complaint="Cough", location_id=1)
        problem = Problem(patient_id=patient.id, icd10_code="J20.9", description="Acute bronchitis")
        db.session.add(problem)
        db.session.add(
            VitalSigns(
                patient_id=patient.id,
                encounter_id=encounter.id,
                systolic_mmhg=118,
                diastolic_mmhg=76,
                temperature_cel=37.0,
                weight_kg=70.0,
            )
        )
        db.session.flush()
        db.session.execute(
            encounter_problems.insert().values(encounter_id=encounter.id, problem_id=problem.id)
        )
        note = make_note(encounter, text=NOTE, signed=signed)
        if signed:
            add_addendum(note, "Addendum: chest X-ray normal.", author="drlee")
        db.session.commit()
        return encounter.id


def _pdf_text(data: bytes) -> str:
    """The PDF's text as a reader extracts it. pypdf reads the CJK fallback font's character
    map with a NUL before each character (poppler's pdftotext does not); drop those."""
    reader = PdfReader(BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages).replace("\x00", "")


def test_print_view_shows_the_signed_note_exactly_and_is_audited(app, signed_in):
    encounter_id = _visit(app)
    response = signed_in("prescriber").get(f"/chart/encounters/{encounter_id}/summary")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Ångström 李雷, Zoë" in page
    # Exactly as signed: line breaks kept (pre-wrap), markup inert.
    assert (
        "Subjective:\n  cough for 3 days ≥ 38 °C &lt;script&gt;alert(1)&lt;/script&gt;\n\n"
        "Plan:\n  rest &amp; fluids</pre>" in page
    )
    assert "<script>alert(1)" not in page
    assert "Addendum by Jordan Lee" in page and "chest X-ray normal." in page
    assert "J20.9" in page and "118/76 mmHg" in page and "98.6 °F" in page
    assert "data-print-page" in page and "js/visit_summary.js" in page
    (printed,) = events(app, "visit_summary.print")
    assert printed.category == "visit summary" and printed.object_id == str(encounter_id)


def test_pdf_holds_unicode_names_the_note_and_its_addenda(app, signed_in):
    encounter_id = _visit(app)
    response = signed_in("nurse").get(f"/chart/encounters/{encounter_id}/summary.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert "Ångström" not in response.headers["Content-Disposition"]
    text = _pdf_text(response.data)
    assert "Riverside Family Practice" in text
    assert "Ångström 李雷, Zoë" in text
    assert "cough for 3 days ≥ 38 °C <script>alert(1)</script>" in text
    assert "rest & fluids" in text
    assert "Addendum by Jordan Lee" in text and "chest X-ray normal." in text
    assert "J20.9" in text and "Acute bronchitis" in text and "118/76 mmHg" in text
    (exported,) = events(app, "visit_summary.pdf")
    assert exported.category == "visit summary" and exported.username == "nurse"
    assert exported.outcome == "success" and exported.patient_id is not None


def test_a_long_note_runs_over_pages_without_losing_text(app, signed_in):
    with app.app_context():
        patient = make_patient("Long", "Note")
        encounter = make_encounter(patient)
        lines = [f"line {n:04d} of the plan" for n in range(400)]
        make_note(encounter, text="\n".join(lines))
        db.session.commit()
        encounter_id = encounter.id
    response = signed_in("prescriber").get(f"/chart/encounters/{encounter_id}/summary.pdf")
    assert len(PdfReader(BytesIO(response.data)).pages) > 5
    text = _pdf_text(response.data)
    assert all(line in text for line in lines)


def test_unsigned_note_is_not_printed_and_its_pdf_is_refused(app, signed_in):
    encounter_id = _visit(app, signed=False)
    browser = signed_in("prescriber")
    page = browser.get(f"/chart/encounters/{encounter_id}/summary").get_data(as_text=True)
    assert "isn't signed yet" in page
    assert "cough for 3 days ≥ 38 °C" not in page  # a draft is not a visit summary
    assert "data-print-page" not in page and "Download PDF" not in page
    response = browser.get(f"/chart/encounters/{encounter_id}/summary.pdf")
    assert response.status_code == 409
    assert "isn't signed yet" in response.get_data(as_text=True)
    (refused,) = events(app, "visit_summary.pdf")
    assert refused.outcome == "denied" and refused.category == "visit summary"


def test_unknown_encounter_is_404(app, signed_in):
    browser = signed_in("prescriber")
    assert browser.get("/chart/encounters/424242/summary").status_code == 404
    assert browser.get("/chart/encounters/424242/summary.pdf").status_code == 404
