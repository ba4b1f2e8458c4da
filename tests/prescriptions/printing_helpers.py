"""Rows the printing, cancelling and prescriptions-page tests start from: portal
prescriptions made directly with the model, as signing would leave them (the signing step is
a part of its own; these tests are about what happens after it)."""

from __future__ import annotations

import io
from datetime import date

from pypdf import PdfReader
from sqlalchemy import select

from portal.auth.models import User
from portal.extensions import db
from portal.integrations.models import OutboxMessage
from portal.prescriptions import states
from portal.prescriptions.models import Prescription
from portal.timeutil import utcnow
from portal.transaction import use_case
from tests.integrations.dosespot.helpers import (
    SandboxServer,
)
from tests.prescriptions.dosespot_support import (
    enable_dosespot,
)
from tests.support.factories import patient_row

# A DEA number of the right form with a right check digit (1+3+5 + 2*(2+4+6) = 33 -> 3).
DEA_NUMBER = "BL1234563"


def portal_rx(app, patient_id: int, prescriber_id: int, *, signed: bool = True, **columns) -> int:
    """A prescription composed in the portal; signed by ``prescriber_id`` unless
    ``signed=False`` (a draft)."""
    values = {
        "patient_id": patient_id,
        "origin": "portal",
        "prescriber_id": prescriber_id,
        "drug": "lisinopril 10 MG Oral Tablet",
        "rxcui": "314076",
        "strength": "10 MG",
        "dose_form": "Oral Tablet",
        "route": "oral",
        "quantity": "30",
        "dispense_unit": "tablet",
        "days_supply": 30,
        "refills": "2",
        "directions": "Take 1 tablet by mouth once daily",
        "substitution_allowed": True,
        "written_on": date(2026, 12, 6),
        "fhir_status": "draft",
        "state": states.DRAFT,
    }
    if signed:
        values |= {
            "signed_at": utcnow(),
            "signed_by_id": prescriber_id,
            "digest": "ab" * 32,
            "state": states.SIGNED,
            "fhir_status": "active",
        }
    values |= columns
    with app.app_context(), use_case():
        row = Prescription(**values)
        db.session.add(row)
        db.session.flush()
        rx_id = row.id
    return rx_id


def send_message(app, rx_id: int, patient_id: int, status: str = "failed") -> int:
    """The outbox's send of ``rx_id`` in ``status`` (what signing and delivery leave)."""
    now = utcnow()
    with app.app_context(), use_case():
        message = OutboxMessage(
            connector="dosespot",
            operation="send_prescription",
            payload={"prescription_id": f"rx-{rx_id}"},
            idempotency_key=f"dosespot:send:rx-{rx_id}",
            status=status,
            attempts=1,
            next_attempt_at=now,
            patient_id=patient_id,
            prescription_id=rx_id,
            created_at=now,
            updated_at=now,
            last_error="The pharmacy could not be reached." if status == "failed" else None,
        )
        db.session.add(message)
        db.session.flush()
        return message.id


def give_dea_number(app, user_id: int) -> None:
    with app.app_context(), use_case():
        db.session.get(User, user_id).dea_number = DEA_NUMBER


def rx_row(app, rx_id: int) -> Prescription:
    with app.app_context():
        row = db.session.get(Prescription, rx_id)
        db.session.expunge(row)
        return row


def message_statuses(app, rx_id: int) -> list[str]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(OutboxMessage.status)
                .where(OutboxMessage.prescription_id == rx_id)
                .order_by(OutboxMessage.id)
            )
        )


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages).replace("\x00", "")


def patient_with_address(app, given: str = "Ana", family: str = "Muñoz") -> int:
    with app.app_context(), use_case():
        patient = patient_row(
            given,
            family,
            date(1980, 2, 3),
            address_line1="12 Elm Street",
            city="Springfield",
            state="MA",
            postal_code="01101",
            phone_mobile="+14135550142",
        )
        db.session.add(patient)
        db.session.flush()
        return patient.id


def dosespot_against_sandbox(app, live_server):
    """DoseSpot enabled against a sandbox on a real socket (Dr. Lee linked); the caller's
    fixture stops the server."""
    server = SandboxServer.for_portal(live_server)
    enable_dosespot(app, server)
    return server
