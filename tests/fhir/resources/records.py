"""The records the resource tests read: the demo clinic's charts (every kind of patient the
demo seeds: no known allergies, an allergy, never asked; visits with signed notes and a
draft; vital signs; problems; medications; immunizations; a week of appointments) and, for
the first patient, every state the chart can put a row in (entered in error, refused,
stopped, ended, cancelled, addenda, nursing notes, telehealth and phone visits,
prescriptions in each FHIR status)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select, update

from portal.auth.models import User
from portal.charting.models import (
    Allergy,
    Encounter,
    Immunization,
    Medication,
    NoKnownAllergies,
    Note,
    NoteAddendum,
    Problem,
    VitalSigns,
    encounter_problems,
)
from portal.clinic.models import Location
from portal.demo.charting import seed_charting
from portal.demo.patients import seed_patients
from portal.demo.scheduling import seed_schedule
from portal.extensions import db
from portal.patients.models import Patient
from portal.prescriptions.models import Prescription
from portal.scheduling.models import Appointment
from portal.timeutil import utcnow

PATIENTS = 9


@dataclass
class Records:
    patients: list[int]
    full: int  # the patient with a row in every state
    nka: int  # "no known allergies" recorded
    not_asked: int  # allergies never asked
    drlee: int
    nurse: int
    location: int


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def seed_records(app) -> Records:
    with app.app_context():
        seed_patients(PATIENTS, seed=5)
        seed_schedule(seed=5, days=7)
        seed_charting(seed=5, patients=PATIENTS)
        patients = db.session.scalars(select(Patient.id).order_by(Patient.id)).all()
        drlee = db.session.scalar(select(User.id).where(User.username == "drlee"))
        nurse = db.session.scalar(select(User.id).where(User.username == "nurse"))
        location = db.session.scalar(select(Location.id).order_by(Location.id))
        full = patients[1]  # has an allergy (demo: index % 3 == 1)
        _every_state(full, drlee, nurse, location)
        _appointment_statuses()
        db.session.commit()
        nka = db.session.scalar(
            select(NoKnownAllergies.patient_id).order_by(NoKnownAllergies.patient_id)
        )
        asked = set(db.session.scalars(select(Allergy.patient_id))) | set(
            db.session.scalars(select(NoKnownAllergies.patient_id))
        )
        not_asked = next(patient for patient in patients if patient not in asked)
        return Records(list(patients), full, nka, not_asked, drlee, nurse, location)


def _every_state(patient: int, drlee: int, nurse: int, location: int) -> None:
    now = utcnow()
    visits = []
    for kind in ("telehealth", "phone", "office"):
        encounter = Encounter(
            patient_id=patient,
            provider_id=drlee,
            location_id=location if kind == "office" else None,
            kind=kind,
            chief_complaint=None if kind == "phone" else f"{kind} <b>check</b>",
            occurred_at=now - timedelta(days=3),
            created_by_id=drlee,
        )
        db.session.add(encounter)
        visits.append(encounter)
    db.session.flush()
    resolved = Problem(
        patient_id=patient,
        icd10_code="J20.9",
        description="Acute bronchitis, unspecified",
        onset_date=date(2024, 2, 29),
        status="resolved",
        comment="Cleared after two weeks",
        created_by_id=drlee,
    )
    db.session.add(resolved)
    db.session.flush()
    db.session.execute(
        encounter_problems.insert(), [{"encounter_id": visits[0].id, "problem_id": resolved.id}]
    )
    # Notes: a signed nursing note, a signed provider note with two addenda.
    for encounter, kind in ((visits[0], "nursing"), (visits[2], "provider")):
        text = f"{kind} note: patient well. Ünïcode ✓ <script>x</script>"
        note = Note(
            encounter_id=encounter.id,
            patient_id=patient,
            author_id=nurse if kind == "nursing" else drlee,
            kind=kind,
            text=text,
            saved_at=now - timedelta(days=3),
            saved_by_id=drlee,
            signed_at=now - timedelta(days=3),
            signed_by_id=nurse if kind == "nursing" else drlee,
            signed_text_sha256=_sha(text),
            created_at=now - timedelta(days=3),
        )
        db.session.add(note)
        db.session.flush()
        if kind == "provider":
            for words in ("Addendum: labs normal.", "Addendum: called the patient."):
                db.session.add(
                    NoteAddendum(
                        note_id=note.id,
                        author_id=drlee,
                        text=words,
                        signed_at=now - timedelta(days=2),
                        signed_text_sha256=_sha(words),
                    )
                )
    # Vital signs: entered in error, a partial set, a child's head circumference.
    db.session.add_all(
        [
            VitalSigns(
                patient_id=patient,
                encounter_id=visits[2].id,
                taken_at=now - timedelta(days=3),
                heart_rate_per_min=180,
                entered_in_error=True,
                entered_in_error_reason="Wrong patient",
            ),
            VitalSigns(patient_id=patient, taken_at=now - timedelta(days=1), systolic_mmhg=128),
            VitalSigns(
                patient_id=patient,
                taken_at=now - timedelta(hours=5),
                head_circumference_cm=45.5,
                temperature_cel=38.25,
                weight_kg=12.345,
            ),
        ]
    )
    # Immunizations: given here in full, refused, entered in error.
    db.session.add_all(
        [
            Immunization(
                patient_id=patient,
                encounter_id=visits[2].id,
                cvx_code="115",
                vaccine="Tdap",
                occurred_on=(now - timedelta(days=3)).date(),
                dose_number=1,
                lot_number="LOT-42",
                manufacturer="Sanofi Pasteur",
                site="Left deltoid",
                route="Intramuscular",
                source="administered",
                recorded_by_id=nurse,
            ),
            Immunization(
                patient_id=patient,
                cvx_code="208",
                vaccine="COVID-19, mRNA",
                occurred_on=(now - timedelta(days=2)).date(),
                refused=True,
                refusal_reason="Prefers to wait",
                recorded_by_id=nurse,
            ),
            Immunization(
                patient_id=patient,
                cvx_code="03",
                vaccine="MMR",
                occurred_on=(now - timedelta(days=2)).date(),
                entered_in_error=True,
                entered_in_error_reason="Other patient's card",
                recorded_by_id=nurse,
            ),
        ]
    )
    # Allergies: a drug class, entered in error, inactive without reactions.
    db.session.add_all(
        [
            Allergy(
                patient_id=patient,
                substance_kind="drug_class",
                substance="Penicillins",
                drug_class_code="ATC:J01C",
                reactions=["Hives", "Wheezing"],
                severity="severe",
                criticality="high",
                onset_date=date(2010, 5, 1),
                comment="Reaction in childhood",
                created_by_id=nurse,
            ),
            Allergy(
                patient_id=patient,
                substance_kind="food",
                substance="Shellfish",
                reactions=["Rash"],
                status="entered_in_error",
                criticality="unable_to_assess",
                created_by_id=nurse,
            ),
            Allergy(
                patient_id=patient,
                substance_kind="environmental",
                substance="Latex",
                reactions=[],
                status="inactive",
                created_by_id=nurse,
            ),
        ]
    )
    # Medications: stopped with a reason, ended by its date, entered in error, ours.
    ours = Medication(
        patient_id=patient,
        drug="Amoxicillin 500 mg capsule",
        rxnorm_code="308191",
        dose="500 mg",
        route="oral",
        frequency="three times daily",
        start_date=(now - timedelta(days=20)).date(),
        prescriber="Jordan Lee",
        source="prescribed_here",
        created_by_id=drlee,
    )
    db.session.add_all(
        [
            Medication(
                patient_id=patient,
                drug="Ibuprofen",
                rxnorm_code="5640",
                status="stopped",
                stop_reason="Stomach upset",
                stop_date=(now - timedelta(days=5)).date(),
                created_by_id=nurse,
            ),
            Medication(
                patient_id=patient,
                drug="Prednisone taper",
                start_date=(now - timedelta(days=40)).date(),
                stop_date=(now - timedelta(days=30)).date(),
                source="outside_record",
                created_by_id=nurse,
            ),
            Medication(
                patient_id=patient,
                drug="Warfarin",
                status="entered_in_error",
                created_by_id=nurse,
            ),
            ours,
        ]
    )
    db.session.flush()
    for number, (status, fhir_status, medication_status) in enumerate(
        (
            ("PharmacyVerified", "active", "Active"),
            ("Entered", "draft", None),
            ("Deleted", "entered-in-error", None),
            ("eRxSent", "completed", "Completed"),
            ("eRxSent", "cancelled", "Cancelled"),
            ("Error", "draft", None),
        )
    ):
        db.session.add(
            Prescription(
                patient_id=patient,
                connector="dosespot",
                vendor_id=f"V{number}",
                prescriber_id=drlee,
                drug="Amoxicillin 500 mg capsule",
                rxcui="308191" if number % 2 == 0 else None,
                quantity="30" if number != 1 else "1.5",
                refills="2" if number != 2 else "PRN",
                days_supply=10 if number != 3 else None,
                directions="Take one capsule three times daily",
                status=status,
                medication_status=medication_status,
                fhir_status=fhir_status,
                written_on=(now - timedelta(days=20)).date() if number != 1 else None,
                medication_id=ours.id if number == 0 else None,
            )
        )


def _appointment_statuses() -> None:
    """The demo books everything "scheduled": give its first appointments every status."""
    ids = db.session.scalars(select(Appointment.id).order_by(Appointment.id).limit(8)).all()
    for appointment_id, status in zip(
        ids,
        (
            "confirmed",
            "arrived",
            "roomed",
            "with_provider",
            "completed",
            "cancelled",
            "no_show",
            "scheduled",
        ),
        strict=False,
    ):
        db.session.execute(
            update(Appointment).where(Appointment.id == appointment_id).values(status=status)
        )
