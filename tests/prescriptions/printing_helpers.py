"""Rows the printing, cancelling and prescriptions-page tests start from: portal
prescriptions made directly with the model, as signing would leave them (the signing step is
a part of its own; these tests are about what happens after it)."""

from __future__ import annotations

import io
import re
import time
from datetime import date

from pypdf import PdfReader
from sqlalchemy import select

from portal.auth.models import User
from portal.extensions import db
from portal.integrations.jobs import process_inbox
from portal.integrations.models import ExternalId, OutboxMessage
from portal.integrations.settings import Submitted, save_and_enable
from portal.prescriptions import states
from portal.prescriptions.models import Prescription
from portal.timeutil import utcnow
from portal.transaction import use_case
from tests.integrations.dosespot.helpers import (
    CLINIC_ID,
    CLINIC_KEY,
    PRESCRIBER,
    SUBSCRIPTION_KEY,
    WEBHOOK_SECRET,
    SandboxServer,
)
from tests.support.clients import actor_of
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


def enable_dosespot(app, sandbox: SandboxServer) -> None:
    """DoseSpot enabled (its check passed against the sandbox), Dr. Lee linked to the
    sandbox's prescriber."""
    with app.app_context():
        save_and_enable(
            actor_of("admin"),
            "dosespot",
            Submitted(
                values={
                    "clinic_id": CLINIC_ID,
                    "admin_clinician_id": PRESCRIBER,
                    "api_base_url": sandbox.url,
                    "sso_base_url": sandbox.url,
                },
                secrets={
                    "clinic_key": CLINIC_KEY,
                    "subscription_key": SUBSCRIPTION_KEY,
                    "webhook_secret": WEBHOOK_SECRET,
                },
            ),
        )
        with use_case():
            db.session.add(
                ExternalId(
                    connector="dosespot",
                    kind="clinician",
                    local_id=actor_of("drlee").id,
                    external_id=str(PRESCRIBER),
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
        db.session.remove()


IFRAME = re.compile(r'<iframe class="eprescribe-frame" src="([^"]+)"')
DEADLINE_SECONDS = 20


def launch(doctor, patient_id: int):
    page = doctor.get(f"/patients/{patient_id}/eprescribe")
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    return page


def process_until(app, condition, what: str) -> None:
    """Run the worker's inbox job until ``condition()`` holds (webhooks arrive over time)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        with app.app_context():
            process_inbox()
            db.session.remove()
            done = condition()
            db.session.remove()
        if done:
            return
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def all_prescriptions(app) -> list[Prescription]:
    with app.app_context():
        rows = list(db.session.scalars(select(Prescription).order_by(Prescription.id)))
        db.session.expunge_all()
        return rows
