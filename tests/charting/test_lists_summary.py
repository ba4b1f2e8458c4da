"""What part C gives the chart summary: summary_lists_context (three queries) and the three
compact templates linking to the lists."""

from __future__ import annotations

from flask import render_template
from sqlalchemy import event

from portal.charting.clinical_lists import summary_lists_context
from portal.extensions import db
from tests.charting.lists_helpers import make_patient, text_of


def render_summary(app, patient_id: int) -> tuple[str, int]:
    statements = []

    def count(*args):
        if args[2].lstrip().upper().startswith("SELECT"):
            statements.append(args[2])

    with app.test_request_context():
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            context = summary_lists_context(patient_id)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        html = "".join(
            render_template(f"charting/_summary_{name}.html", **context)
            for name in ("problems", "allergies", "medications")
        )
    return html, len(statements)


def test_summary_of_an_empty_chart(app):
    patient_id = make_patient(app)
    html, queries = render_summary(app, patient_id)
    assert "Allergies not recorded" in html and html.count("None recorded") == 2
    assert f"/chart/patients/{patient_id}/problems" in html
    assert queries == 3


def test_summary_shows_only_what_is_active(app, signed_in):
    patient_id = make_patient(app)
    nurse = signed_in("nurse")
    base = f"/chart/patients/{patient_id}"
    nurse.post_form(base + "/problems", {"icd10_code": "I10", "status": "active"})
    nurse.post_form(base + "/problems", {"icd10_code": "J45.909", "status": "resolved"})
    nurse.post_form(
        base + "/allergies",
        {
            "substance_kind": "food",
            "substance": "Peanut",
            "severity": "severe",
            "criticality": "",
            "reactions": ["Anaphylaxis"],
            "status": "active",
        },
    )
    nurse.post_form(
        base + "/medications",
        {"drug": "lisinopril", "dose": "10 mg", "source": "self_reported", "status": "active"},
    )
    nurse.post_form(
        base + "/medications",
        {"drug": "atenolol", "source": "self_reported", "status": "stopped"},
    )
    html, queries = render_summary(app, patient_id)
    assert "Essential (primary) hypertension" in html and "J45.909" not in html
    assert "Peanut" in html and "severe" in html and "Anaphylaxis" in html
    assert "lisinopril 10 mg" in html and "atenolol" not in html
    assert queries == 3


def test_summary_shows_nka_with_its_date(app, signed_in):
    patient_id = make_patient(app)
    nurse = signed_in("nurse")
    nurse.post_form(f"/chart/patients/{patient_id}/allergies/none")
    html, _ = render_summary(app, patient_id)
    assert "No known allergies (" in html
    assert "NKA" in text_of(nurse.get(f"/chart/patients/{patient_id}/problems"))
