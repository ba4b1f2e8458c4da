"""The after-visit summary: the patient's copy (plain words, what changed, no notes), as a
page and as a PDF without a stray last page; audited."""

from __future__ import annotations

import re

from tests.audit.helpers import events
from tests.charting.after_visit_helpers import (
    NURSING_NOTE,
    PROVIDER_NOTE,
    make_visit,
    pdf_pages,
)


def words(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_patients_copy_says_what_was_done_in_plain_words(app, signed_in):
    visit = make_visit(app)
    response = signed_in("nurse").get(f"/chart/encounters/{visit.encounter_id}/after-visit-summary")
    assert response.status_code == 200
    text = words(response.get_data(as_text=True))
    assert "After-visit summary for Ada Lovelace" in text
    assert "Office visit with Jordan Lee" in text
    assert "Reason for the visit: Blood pressure check" in text
    # Diagnoses in plain words (the code beside, for anyone who asks).
    assert "High blood pressure (I10)" in text and "Chest cold (acute bronchitis) (J20.9)" in text
    assert "Essential (primary) hypertension" not in text
    assert "148/92 mmHg" in text and "72 /min" in text
    # The medication list with what changed today, new and changed first.
    meds = words(
        response.get_data(as_text=True).split('id="avs-medications"', 1)[1].split("</ul>")[0]
    )
    assert "Lisinopril" in meds and meds.index(
        "Changed: Lisinopril — 20 mg, by mouth, once daily (before: 10 mg, by mouth, once daily)"
    ) < meds.index("Atorvastatin")
    assert "New: Amoxicillin — 500 mg, three times daily" in meds
    assert "Atorvastatin — 10 mg" in meds and "New: Atorvastatin" not in meds
    assert "Metformin" not in meds
    assert "Stop taking: Metformin" in text and "GI intolerance" not in text
    assert "Penicillin (Hives)" in text
    assert re.search(
        r"Your next appointment \w+day \d\d \w+ \d{4} at \d\d:\d\d: Follow-up with Jordan Lee", text
    )
    # No notes: neither the nursing note nor the provider's.
    assert NURSING_NOTE not in text and "parking" not in text
    assert PROVIDER_NOTE not in text and "uptitrate" not in text
    (printed,) = events(app, "after_visit_summary.print")
    assert printed.category == "visit summary" and printed.object_id == str(visit.encounter_id)
    assert printed.patient_id == visit.patient_id and printed.username == "nurse"
    assert events(app, "visit_summary.print") == []


def test_the_pdf_is_one_page_with_the_same_content_and_no_notes(app, signed_in):
    visit = make_visit(app)
    response = signed_in("prescriber").get(
        f"/chart/encounters/{visit.encounter_id}/after-visit-summary.pdf"
    )
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert (
        f"after-visit-summary-{visit.encounter_id}.pdf" in response.headers["Content-Disposition"]
    )
    pages = pdf_pages(response.data)
    assert len(pages) == 1
    text = " ".join(pages[0].split())
    for expected in (
        "After-visit summary for Ada Lovelace",
        "High blood pressure",
        "148/92 mmHg",
        "Changed: Lisinopril",
        "before: 10 mg",
        "New: Amoxicillin",
        "Stop taking:",
        "Penicillin (Hives)",
        "Follow-up with Jordan Lee",
    ):
        assert expected in text, expected
    assert "parking" not in text and "uptitrate" not in text
    (exported,) = events(app, "after_visit_summary.pdf")
    assert exported.object_id == str(visit.encounter_id) and exported.username == "drlee"


def test_a_summary_a_little_too_long_for_a_page_is_tightened_onto_one(app):
    """At the normal size these medications spill a few lines onto a second, nearly blank
    page; the PDF is laid out tighter instead."""
    from portal.charting.summary import after_visit_pdf
    from portal.charting.summary.after_visit import load_after_visit_summary
    from tests.support.clients import actor_of

    visit = make_visit(app, extra_medications=27)
    with app.test_request_context():
        summary = load_after_visit_summary(actor_of("drlee"), visit.encounter_id)
        normal = after_visit_pdf._layout(summary, after_visit_pdf.SCALES[0], cjk=False)
        assert normal.pages_count == 2  # the case this test is about
        last = pdf_pages(bytes(normal.output()))[-1]
        assert len(last.strip().splitlines()) <= 10  # a few lines and the footer
        assert len(pdf_pages(after_visit_pdf.render_after_visit_pdf(summary))) == 1


def test_front_desk_may_not_print_it_and_unknown_visits_are_404(app, signed_in):
    visit = make_visit(app)
    desk = signed_in("front_desk")
    assert (
        desk.get(f"/chart/encounters/{visit.encounter_id}/after-visit-summary").status_code == 403
    )
    nurse = signed_in("nurse")
    assert nurse.get("/chart/encounters/987654/after-visit-summary").status_code == 404
    assert nurse.get("/chart/encounters/987654/after-visit-summary.pdf").status_code == 404
    assert events(app, "after_visit_summary.print") == []
