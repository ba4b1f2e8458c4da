"""A visit worth an after-visit summary, made with the models: diagnoses addressed, vital
signs, notes (a nursing note that must never reach the patient), medications changed,
stopped and started, an allergy and the next appointment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from io import BytesIO

from pypdf import PdfReader
from sqlalchemy import select

from portal.charting.models import (
    Allergy,
    ChartItemRevision,
    Medication,
    MedicationReconciliation,
    Problem,
    VitalSigns,
    encounter_problems,
)
from portal.clinic.models import Location
from portal.extensions import db
from portal.scheduling.models import Appointment, AppointmentType
from portal.timeutil import utcnow
from tests.charting.summary_helpers import make_encounter, make_note, make_patient, user_id

NURSING_NOTE = "Internal: patient upset at the front desk about parking."
PROVIDER_NOTE = "Assessment: HTN poorly controlled. Plan: uptitrate ACEi."


@dataclass
class Visit:
    encounter_id: int
    patient_id: int


def make_visit(app, *, extra_medications: int = 0, given="Ada", family="Lovelace") -> Visit:
    with app.app_context():
        patient = make_patient(given, family)
        location_id = db.session.scalar(select(Location.id).limit(1))
        encounter = make_encounter(
            patient, days_ago=0, complaint="Blood pressure check", location_id=location_id
        )
        drlee = user_id("drlee")
        long_ago = utcnow() - timedelta(days=400)
        problems = [
            Problem(
                patient_id=patient.id,
                icd10_code="I10",
                description="Essential (primary) hypertension",
            ),
            Problem(patient_id=patient.id, icd10_code="J20.9", description="Acute bronchitis"),
        ]
        lisinopril = Medication(
            patient_id=patient.id,
            drug="Lisinopril",
            dose="20 mg",
            route="by mouth",
            frequency="once daily",
            created_at=long_ago,
        )
        metformin = Medication(
            patient_id=patient.id,
            drug="Metformin",
            dose="500 mg",
            status="stopped",
            stop_reason="GI intolerance per pt",
            created_at=long_ago,
        )
        atorvastatin = Medication(
            patient_id=patient.id, drug="Atorvastatin", dose="10 mg", created_at=long_ago
        )
        amoxicillin = Medication(
            patient_id=patient.id, drug="Amoxicillin", dose="500 mg", frequency="three times daily"
        )
        others = [
            Medication(
                patient_id=patient.id,
                drug=f"Supplement {number:02d}",
                dose="1 tablet",
                frequency="daily",
                created_at=long_ago,
            )
            for number in range(extra_medications)
        ]
        db.session.add_all([*problems, lisinopril, metformin, atorvastatin, amoxicillin, *others])
        db.session.add(
            VitalSigns(
                patient_id=patient.id,
                encounter_id=encounter.id,
                systolic_mmhg=148,
                diastolic_mmhg=92,
                heart_rate_per_min=72,
                weight_kg=70.0,
            )
        )
        db.session.add(
            Allergy(
                patient_id=patient.id,
                substance_kind="drug",
                substance="Penicillin",
                reactions=["Hives"],
                severity="severe",
            )
        )
        db.session.flush()
        for problem in problems:
            db.session.execute(
                encounter_problems.insert().values(encounter_id=encounter.id, problem_id=problem.id)
            )
        decided = utcnow()
        db.session.add_all(
            [
                MedicationReconciliation(
                    encounter_id=encounter.id,
                    medication_id=lisinopril.id,
                    action="change",
                    recorded_by_id=drlee,
                    recorded_at=decided,
                ),
                ChartItemRevision(
                    item_type="medication",
                    item_id=lisinopril.id,
                    patient_id=patient.id,
                    changed_by_id=drlee,
                    changed_at=decided,
                    before={"dose": "10 mg"},
                    after={"dose": "20 mg"},
                ),
                MedicationReconciliation(
                    encounter_id=encounter.id,
                    medication_id=metformin.id,
                    action="stop",
                    reason="GI intolerance per pt",
                    recorded_by_id=drlee,
                    recorded_at=decided,
                ),
                MedicationReconciliation(
                    encounter_id=encounter.id,
                    medication_id=atorvastatin.id,
                    action="continue",
                    recorded_by_id=drlee,
                    recorded_at=decided,
                ),
            ]
        )
        make_note(encounter, text=NURSING_NOTE, kind="nursing", author="nurse", signed=True)
        make_note(encounter, text=PROVIDER_NOTE, signed=False)
        follow_up = AppointmentType(name="Follow-up", default_minutes=20)
        db.session.add(follow_up)
        db.session.flush()
        starts_at = (utcnow() + timedelta(days=14)).replace(second=0, microsecond=0)
        db.session.add(
            Appointment(
                patient_id=patient.id,
                provider_id=drlee,
                location_id=location_id,
                appointment_type_id=follow_up.id,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(minutes=20),
                status="scheduled",
            )
        )
        db.session.commit()
        return Visit(encounter.id, patient.id)


def pdf_pages(data: bytes) -> list[str]:
    """The text of each page (pypdf puts a NUL before each CJK fallback character)."""
    return [page.extract_text().replace("\x00", "") for page in PdfReader(BytesIO(data)).pages]
