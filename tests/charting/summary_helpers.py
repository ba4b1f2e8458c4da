"""Chart rows for part D's tests (summary, visit summary, worklist), made with the models.

The tests of the summary read charts; building those charts through other parts' services
would couple these tests to their forms, so rows are inserted directly, as a migration or
an import would.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

from sqlalchemy import func, select

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
)
from portal.extensions import db
from portal.patients.models import Patient
from portal.scheduling.models import Appointment, AppointmentType
from portal.timeutil import utcnow
from tests.support.factories import patient_row


def user_id(username: str) -> int:
    return db.session.scalar(select(User.id).where(User.username == username))


def make_patient(given: str = "Ada", family: str = "Lovelace", birth=date(1980, 5, 17)) -> Patient:
    patient = patient_row(given, family, birth)
    db.session.add(patient)
    db.session.flush()
    return patient


def make_encounter(patient, *, days_ago: float = 1, complaint="Cough", provider="drlee", **kw):
    encounter = Encounter(
        patient_id=patient.id,
        provider_id=user_id(provider),
        kind=kw.pop("kind", "office"),
        chief_complaint=complaint,
        occurred_at=utcnow() - timedelta(days=days_ago),
        **kw,
    )
    db.session.add(encounter)
    db.session.flush()
    return encounter


def make_note(encounter, *, text="Subjective: well.", signed=True, author="drlee", **kw) -> Note:
    now = utcnow()
    created = kw.pop("created_at", encounter.occurred_at)
    note = Note(
        encounter_id=encounter.id,
        patient_id=encounter.patient_id,
        author_id=user_id(author),
        kind=kw.pop("kind", "provider"),
        text=text,
        created_at=created,
        saved_at=created,
        signed_at=(kw.pop("signed_at", now) if signed else None),
        signed_by_id=user_id(author) if signed else None,
        signed_text_sha256=hashlib.sha256(text.encode()).hexdigest() if signed else None,
        **kw,
    )
    db.session.add(note)
    db.session.flush()
    return note


def add_addendum(note, text: str, author="drlee") -> NoteAddendum:
    addendum = NoteAddendum(
        note_id=note.id,
        author_id=user_id(author),
        text=text,
        signed_text_sha256=hashlib.sha256(text.encode()).hexdigest(),
    )
    db.session.add(addendum)
    db.session.flush()
    return addendum


def make_chart(app, **build):
    """A patient with a small chart; returns ids the tests look for."""
    with app.app_context():
        patient = make_patient("Zoë", "Ångström")
        db.session.add_all(
            [
                Problem(patient_id=patient.id, icd10_code="E11.9", description="Type 2 diabetes"),
                Problem(
                    patient_id=patient.id,
                    icd10_code="J45.909",
                    description="Old asthma",
                    status="resolved",
                ),
                Medication(patient_id=patient.id, drug="Metformin", dose="500 mg", route="oral"),
                Medication(patient_id=patient.id, drug="Stopped drug", status="stopped"),
                Immunization(
                    patient_id=patient.id,
                    cvx_code="141",
                    vaccine="Influenza",
                    occurred_on=date.today(),
                ),
                VitalSigns(
                    patient_id=patient.id,
                    taken_at=utcnow() - timedelta(days=2),
                    systolic_mmhg=150,
                    diastolic_mmhg=95,
                ),
                VitalSigns(
                    patient_id=patient.id,
                    taken_at=utcnow() - timedelta(hours=1),
                    systolic_mmhg=128,
                    diastolic_mmhg=82,
                    heart_rate_per_min=71,
                ),
            ]
        )
        if build.get("allergy"):
            db.session.add(
                Allergy(
                    patient_id=patient.id,
                    substance_kind="drug",
                    substance="Penicillin",
                    reactions=["Hives"],
                    severity="severe",
                )
            )
        if build.get("nka"):
            db.session.add(NoKnownAllergies(patient_id=patient.id))
        signed = make_encounter(patient, days_ago=3, complaint="Sore throat")
        make_note(signed, text="Signed text")
        draft = make_encounter(patient, days_ago=1, complaint="Back pain")
        make_note(draft, signed=False)
        for n in range(build.get("extra_encounters", 0)):
            make_encounter(patient, days_ago=30 + n, complaint=f"Old visit {n}")
        kind = db.session.scalars(select(AppointmentType)).first()
        if kind is None:
            kind = AppointmentType(name="Follow-up", default_minutes=20)
            db.session.add(kind)
            db.session.flush()
        # A day apart per chart: a provider's visits never overlap (PostgreSQL enforces it).
        booked = db.session.scalar(select(func.count()).select_from(Appointment))
        starts = utcnow() + timedelta(days=2 + booked)
        db.session.add(
            Appointment(
                patient_id=patient.id,
                provider_id=user_id("drlee"),
                location_id=1,
                appointment_type_id=kind.id,
                starts_at=starts,
                ends_at=starts + timedelta(minutes=20),
            )
        )
        db.session.commit()
        return {"patient": patient.id, "signed": signed.id, "draft": draft.id}
