"""Helpers for the vitals and immunization tests (charting part B): patients, encounters, reads."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from portal.audit.models import AuditEvent
from portal.extensions import db
from tests.support.factories import patient_row


def make_patient(app, birth_date: date, given: str = "Ada", family: str = "Vitals") -> int:
    with app.app_context():
        patient = patient_row(given, family, birth_date)
        db.session.add(patient)
        db.session.commit()
        return patient.id


def make_encounter(app, patient_id: int) -> int:
    """An encounter row made directly (the encounter service is another part's work)."""
    from portal.auth.models import User
    from portal.charting.models import Encounter

    with app.app_context():
        provider = db.session.scalars(select(User).filter_by(username="drlee")).one()
        encounter = Encounter(patient_id=patient_id, provider_id=provider.id, kind="office")
        db.session.add(encounter)
        db.session.commit()
        return encounter.id


def set_units(app, temperature: str, weight: str, length: str) -> None:
    from portal.clinic.models import Clinic

    with app.app_context():
        clinic = db.session.scalars(select(Clinic)).first()
        clinic.temperature_unit, clinic.weight_unit, clinic.length_unit = (
            temperature,
            weight,
            length,
        )
        db.session.commit()


def vital_sets(app, patient_id: int) -> list:
    from portal.charting.models import VitalSigns

    with app.app_context():
        rows = list(
            db.session.scalars(
                select(VitalSigns)
                .where(VitalSigns.patient_id == patient_id)
                .order_by(VitalSigns.id)
            )
        )
        for row in rows:
            db.session.expunge(row)
        return rows


def audit_events(app, category: str) -> list[AuditEvent]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(AuditEvent).where(AuditEvent.category == category).order_by(AuditEvent.id)
            )
        )
        for row in rows:
            db.session.expunge(row)
        return rows


def form(**values) -> dict:
    """The vitals form's fields (prefix "vitals-") with these values; others blank."""
    return {f"vitals-{name}": value for name, value in values.items()}


# The date of death of the deceased patients in the after-death tests.
DIED = date(2025, 3, 14)


def mark_deceased(app, patient_id: int, on: date | None) -> None:
    """Record the patient as deceased on ``on`` (None: deceased, date not recorded)."""
    from portal.patients.models import Patient

    with app.app_context():
        patient = db.session.get(Patient, patient_id)
        patient.status, patient.deceased_date = "deceased", on
        db.session.commit()


def make_deceased_patient(app) -> int:
    """A patient born in 1940 who died on ``DIED``."""
    patient_id = make_patient(app, date(1940, 2, 2), given="Late")
    mark_deceased(app, patient_id, DIED)
    return patient_id
