"""Helpers of the compose tests: chart rows to prescribe against, and the compose page's posts."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select

from portal.charting.models import Allergy, Medication, NoKnownAllergies, Problem
from portal.extensions import db
from portal.prescriptions.models import Prescription
from portal.timeutil import utcnow

LISINOPRIL_10 = "314076"
OXYCODONE_5_CII = "1049621"
SPIRONOLACTONE = "9997"  # the ingredient, as the medication list codes it
DRAFT_URL = re.compile(r"/prescriptions/(\d+)$")


def no_known_allergies(app, patient_id: int) -> None:
    with app.app_context():
        db.session.add(NoKnownAllergies(patient_id=patient_id, recorded_at=utcnow()))
        db.session.commit()


def on_spironolactone(app, patient_id: int) -> int:
    with app.app_context():
        medication = Medication(
            patient_id=patient_id,
            drug="spironolactone 25 mg tablet",
            rxnorm_code=SPIRONOLACTONE,
            dose="25 mg",
            route="oral",
            frequency="once daily",
            start_date=date(2026, 1, 5),
            status="active",
        )
        db.session.add(medication)
        db.session.commit()
        return medication.id


def allergic_to(app, patient_id: int, substance: str, rxcui: str) -> None:
    with app.app_context():
        db.session.add(
            Allergy(
                patient_id=patient_id,
                substance_kind="drug",
                substance=substance,
                rxnorm_code=rxcui,
                reactions=["hives"],
                severity="moderate",
                status="active",
            )
        )
        db.session.commit()


def a_problem(app, patient_id: int, code: str, description: str) -> None:
    with app.app_context():
        db.session.add(Problem(patient_id=patient_id, icd10_code=code, description=description))
        db.session.commit()


def start_draft(doctor, patient_id: int, encounter_id: int | None = None) -> int:
    data = {"encounter_id": str(encounter_id)} if encounter_id else {}
    answer = doctor.post_form(f"/patients/{patient_id}/prescriptions/new", data)
    assert answer.status_code == 303, answer.get_data(as_text=True)[:500]
    match = DRAFT_URL.search(answer.location)
    assert match, answer.location
    return int(match.group(1))


def draft_row(app, draft_id: int) -> Prescription | None:
    with app.app_context():
        row = db.session.scalar(select(Prescription).where(Prescription.id == draft_id))
        if row is not None:
            db.session.expunge(row)
        return row


def choose(doctor, draft_id: int, rxcui: str) -> None:
    answer = doctor.post_form(f"/prescriptions/{draft_id}/drug", {"choice": f"rxcui:{rxcui}"})
    assert answer.status_code == 303, answer.get_data(as_text=True)[:500]


BUILDER_DAILY_30 = {
    "sig-dose_amount": "1",
    "sig-dose_unit": "tablet",
    "sig-route": "oral",
    "sig-frequency": "once_daily",
    "sig-duration_amount": "30",
    "sig-duration_unit": "days",
}
DETAILS_30 = {"rx-quantity": "30", "rx-dispense_unit": "tablet", "rx-refills": "0"}


def autosave(app, doctor, draft_id: int, fields: dict, version: int | None = None):
    """The compose form's autosave (htmx), from the draft's current version unless given."""
    if version is None:
        version = draft_row(app, draft_id).version
    return doctor.htmx_post(f"/prescriptions/{draft_id}/draft", {"version": str(version), **fields})
