"""Helpers of the signing tests: drafts made with the model (as the composing page leaves
them), allergies recorded or not, DoseSpot enabled against the sandbox, the worker's turns."""

from __future__ import annotations

import time
from datetime import date

from sqlalchemy import select

from portal.audit.models import AuditEvent
from portal.charting.models import Allergy, Medication, NoKnownAllergies
from portal.extensions import db
from portal.integrations.delivery import deliver_due
from portal.integrations.jobs import process_inbox
from portal.integrations.models import OutboxMessage
from portal.prescriptions.models import Prescription
from portal.timeutil import utcnow
from portal.transaction import use_case
from tests.support.clients import actor_of
from tests.support.factories import patient_row

DEADLINE_SECONDS = 60  # generous for a loaded CI machine; the loops end once it holds

LISINOPRIL = {
    "drug": "lisinopril 10 MG Oral Tablet",
    "rxcui": "314076",
    "ingredient_rxcuis": "29046",
    "strength": "10 MG",
    "dose_form": "Oral Tablet",
    "route": "oral",
    "schedule": None,
    "directions": "Take 1 tablet by mouth once daily for 30 days",
    "quantity": "30",
    "dispense_unit": "tablet",
    "days_supply": 30,
    "refills": "2",
}
# acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet: schedule II.
OXYCODONE = {
    "drug": "acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet",
    "rxcui": "1049221",
    "ingredient_rxcuis": "161,7804",
    "strength": "325 MG / 5 MG",
    "dose_form": "Oral Tablet",
    "route": "oral",
    "schedule": 2,
    "directions": "Take 1 tablet by mouth every 6 hours as needed for pain for 3 days",
    "quantity": "12",
    "dispense_unit": "tablet",
    "days_supply": 3,
    "refills": "0",
}


def a_patient(app, given: str = "Ana", *, allergies_recorded: bool = True, **columns) -> int:
    """An adult with an address and phone (the vendor needs them); "no known allergies"
    recorded unless told otherwise."""
    values = {
        "address_line1": "12 Elm Street",
        "city": "Springfield",
        "state": "MA",
        "postal_code": "01101",
        "phone_mobile": "+14135550142",
        **columns,
    }
    with app.app_context(), use_case():
        patient = patient_row(given, "Muñoz", date(1980, 2, 3), **values)
        db.session.add(patient)
        db.session.flush()
        if allergies_recorded:
            db.session.add(NoKnownAllergies(patient_id=patient.id, recorded_at=utcnow()))
        return patient.id


def add_allergy(app, patient_id: int, substance: str, rxcui: str | None, class_code=None):
    with app.app_context(), use_case():
        db.session.query(NoKnownAllergies).filter_by(patient_id=patient_id).delete()
        db.session.add(
            Allergy(
                patient_id=patient_id,
                substance_kind="drug_class" if class_code else "drug",
                substance=substance,
                rxnorm_code=rxcui,
                drug_class_code=class_code,
                reactions=["hives"],
                severity="moderate",
            )
        )


def a_draft(app, patient_id: int, *, drug: dict | None = None, **columns) -> int:
    """A draft as the composing page leaves it, prescribed by Dr. Lee."""
    with app.app_context(), use_case():
        values = {
            **(drug or LISINOPRIL),
            "pharmacy_id": "3001",
            "pharmacy_name": "Sandbox Pharmacy Main Street",
            **columns,
        }
        rx = Prescription(
            patient_id=patient_id,
            origin="portal",
            state="draft",
            fhir_status="draft",
            prescriber_id=actor_of("drlee").id,
            **values,
        )
        db.session.add(rx)
        db.session.flush()
        return rx.id


def load(app, prescription_id: int) -> Prescription:
    with app.app_context():
        rx = db.session.get(Prescription, prescription_id)
        db.session.expunge_all()
        db.session.remove()
        return rx


def outbox_messages(app, prescription_id: int) -> list[OutboxMessage]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(OutboxMessage).where(OutboxMessage.prescription_id == prescription_id)
            )
        )
        db.session.expunge_all()
        db.session.remove()
        return rows


def events(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )
        db.session.expunge_all()
        db.session.remove()
        return rows


def medications(app, patient_id: int) -> list[Medication]:
    with app.app_context():
        rows = list(
            db.session.scalars(select(Medication).where(Medication.patient_id == patient_id))
        )
        db.session.expunge_all()
        db.session.remove()
        return rows


def deliver(app):
    """One turn of the worker's delivery job."""
    with app.app_context():
        run = deliver_due(seconds=5.0)
        db.session.remove()
        return run


def work_until(app, condition, what: str) -> None:
    """Run the worker's delivery and inbox jobs until ``condition()`` holds."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        with app.app_context():
            deliver_due(seconds=1.0)
            process_inbox()
            db.session.remove()
        if condition():
            return
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)
