"""Charting demo data from ``flask seed-demo``: templates, snippets and charts to look at."""

from __future__ import annotations

from datetime import timedelta

import simple_icd_10_cm as icd10
from sqlalchemy import func, select

from portal.charting.models import (
    Allergy,
    Encounter,
    NoKnownAllergies,
    Note,
    NoteSnippet,
    NoteTemplate,
    Problem,
    VitalSigns,
)
from portal.demo.charting import seed_charting
from portal.demo.patients import seed_patients
from portal.extensions import db
from portal.timeutil import utcnow
from tests.support.database import migrated_app


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_seed_charting_gives_templates_snippets_and_charts(app, signed_in):
    with app.app_context():
        seed_patients(25, seed=3)
        assert seed_charting(seed=3) == 20
        assert seed_charting(seed=3) == 0  # only once
        soap = db.session.scalars(
            select(NoteTemplate).where(NoteTemplate.name == "SOAP note")
        ).one()
        assert soap.appointment_type_id is None and soap.note_kind == "provider"
        assert soap.body == "Subjective:\n\nObjective:\n\nAssessment:\n\nPlan:\n"
        assert _count(NoteTemplate, NoteTemplate.note_kind == "nursing") == 1
        triggers = set(
            db.session.scalars(select(NoteSnippet.trigger).where(NoteSnippet.owner_id.is_(None)))
        )
        assert triggers == {".ros", ".pe", ".nad"}
        for code in db.session.scalars(select(Problem.icd10_code).distinct()):
            assert icd10.is_valid_item(code) and icd10.is_leaf(code), code  # billable
        charted = db.session.scalars(select(Encounter.patient_id).distinct()).all()
        assert len(charted) == 20
        assert _count(Note) == _count(Encounter) == _count(VitalSigns)
        drafts = db.session.scalars(select(Note).where(Note.signed_at.is_(None))).all()
        assert len(drafts) == 1 and drafts[0].created_at < utcnow() - timedelta(hours=24)
        # Allergies in all three states: recorded, "no known allergies", never asked.
        with_allergy = set(db.session.scalars(select(Allergy.patient_id)))
        nka = set(db.session.scalars(select(NoKnownAllergies.patient_id)))
        assert with_allergy and nka and set(charted) - with_allergy - nka
        patient_id = drafts[0].patient_id
    # The demo shows up where a prescriber looks.
    browser = signed_in("prescriber")
    assert 'Unsigned notes older than 24 hours <span class="badge text-bg-light">1<' in (
        browser.get("/").get_data(as_text=True)
    )
    assert browser.get(f"/chart/patients/{patient_id}").status_code == 200


def _charts(app) -> list[tuple]:
    with app.app_context():
        return db.session.execute(
            select(Encounter.patient_id, Encounter.chief_complaint, Note.text, Note.signed_at)
            .join(Note, Note.encounter_id == Encounter.id)
            .order_by(Encounter.patient_id, Encounter.occurred_at)
        ).all()


def test_seed_demo_charts_are_the_same_for_the_same_seed(tmp_path):
    runs = []
    for name in ("one", "two"):
        app = migrated_app(tmp_path / name)
        result = app.test_cli_runner().invoke(args=["seed-demo", "--patients", "30", "--seed", "5"])
        assert result.exit_code == 0, result.output
        assert (
            "Charting: note templates, snippets, and past visits of 20 patients." in result.output
        )
        runs.append([(p, c, t) for p, c, t, _signed in _charts(app)])
    assert runs[0] and runs[0] == runs[1]
