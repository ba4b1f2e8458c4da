"""Printing a signed prescription, and the printout's content.

A prescription composed in the portal is printed only when it will not go out electronically:
its transmission failed (state ``error``), or it was signed while the clinic had no
e-prescribing connector (state ``signed``, never held by a vendor). Printing is one use case:
the prescription becomes ``printed`` with the time and the reason, any send of it still in
the outbox is withdrawn (so neither the worker nor an administrator's replay sends it later),
and the print is audited. A printed prescription is never transmitted afterwards: the
database refuses it a vendor id (migration 0020), the worker withholds a send of it that
would reach the outbox anyway (``send_withheld``), and the vendor's write-back keeps it
printed.

The first PDF after printing is the original; every later one is the same content marked
"Copy" (a second original would be a second prescription in the patient's hand). Both are
audited.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.auth.models import User
from portal.clinic.services import current_clinic
from portal.extensions import db
from portal.integrations import outbox
from portal.integrations.models import OutboxMessage
from portal.patients.services import get_patient_for
from portal.prescriptions import states
from portal.prescriptions.models import Prescription
from portal.prescriptions.services import (
    NO_CONNECTOR_REASON,
    SEND_OPERATION,
    TRANSMISSION_FAILED,
    eprescribing_connector_name,
    print_reason,
)
from portal.prescriptions.sig import quantity_in_words
from portal.timeutil import utcnow
from portal.transaction import Conflict, Refused, use_case

CATEGORY = "prescriptions"
# The outbox operation that transmits a prescription (the connector's name for it).
# Outbox statuses of a send that could still go out: waiting, being tried, or replayable.
_SENDABLE_MESSAGE_STATUSES = ("pending", "in_flight", "failed", "dead")
# A printed prescription is still in force at the pharmacy the patient takes it to.
PRINTED_FHIR_STATUS = "active"


def _own_signed(actor, prescription_id: int, *, lock: bool = False) -> Prescription:
    """The portal prescription ``actor`` signed, or 404: another patient's, another
    prescriber's or an unknown id are all as unknown (a prescription is printed by the one
    whose signature it carries)."""
    rx = db.session.get(Prescription, prescription_id, with_for_update=lock or None)
    if rx is None or rx.origin != "portal":
        raise NotFound()
    get_patient_for(actor, rx.patient_id)
    if rx.signed_by_id is None or rx.signed_by_id != actor.id:
        if rx.signed_at is None and rx.prescriber_id == actor.id:
            raise Refused("Only a signed prescription can be printed: sign it first.")
        raise NotFound()
    return rx


def print_prescription(actor, prescription_id: int) -> Prescription:
    """Print a signed prescription that will not be transmitted: ``printed`` with its reason,
    its sends withdrawn from the outbox, audited; in one transaction."""
    with use_case(conflict=Conflict("The prescription changed meanwhile: look at it again.")):
        rx = _own_signed(actor, prescription_id, lock=True)
        reason = print_reason(rx, eprescribing_connector_name())
        withdrawn = _withdraw_sends(rx)
        now = utcnow()
        rx.printed_at = now
        rx.print_reason = reason
        rx.state = states.PRINTED
        rx.fhir_status = PRINTED_FHIR_STATUS
        rx.updated_at = now
        db.session.flush()
        audit.record(
            actor,
            "prescription.printed",
            patient_id=rx.patient_id,
            obj=rx,
            detail=(
                ("transmission failed" if reason != NO_CONNECTOR_REASON else "no connector")
                + f"; {withdrawn} outbox sends withdrawn"
            ),
            category=CATEGORY,
        )
        return rx


def _withdraw_sends(rx: Prescription) -> int:
    """Withdraw every send of ``rx`` that could still go out; refuse while one is being
    delivered (the vendor may be receiving it this moment: its outcome decides)."""
    messages = db.session.scalars(
        select(OutboxMessage)
        .where(
            OutboxMessage.prescription_id == rx.id,
            OutboxMessage.operation == SEND_OPERATION,
            OutboxMessage.status.in_(_SENDABLE_MESSAGE_STATUSES),
        )
        .with_for_update()
    ).all()
    if any(message.status == "in_flight" for message in messages):
        raise Conflict(
            "This prescription is being sent to the pharmacy right now. Wait a minute and "
            "look at its status before printing it."
        )
    now = utcnow()
    for message in messages:
        message.status = outbox.WITHDRAWN
        message.last_error = "Withdrawn: the prescription was printed."
        message.updated_at = now
    return len(messages)


def send_withheld(message_id: int) -> str | None:
    """The outbox's withholding check for ``send_prescription`` (the worker asks before it
    delivers): a send of a printed prescription never goes out, whatever put it there."""
    printed = db.session.scalar(
        select(Prescription.printed_at)
        .join(OutboxMessage, OutboxMessage.prescription_id == Prescription.id)
        .where(OutboxMessage.id == message_id)
    )
    return "The prescription was printed: it is never transmitted." if printed else None


# --- the printout --------------------------------------------------------------------------


@dataclass(frozen=True)
class PrintOut:
    """Everything the printed prescription shows, as plain values read in the use case (the
    PDF is drawn after it, holding no transaction)."""

    prescription_id: int
    copy: bool
    clinic_name: str
    clinic_address: str
    clinic_phone: str
    prescriber_name: str
    prescriber_npi: str | None
    prescriber_dea: str | None  # in full, for a controlled substance only
    patient_name: str
    patient_birth_date: date
    patient_address: str
    drug: str
    strength: str | None
    dose_form: str | None
    route: str | None
    schedule: int | None
    quantity: str
    quantity_words: str | None  # controlled substances: "thirty (30)"
    dispense_unit: str | None
    days_supply: int | None
    directions: str
    refills: str
    substitution_allowed: bool
    pharmacist_note: str | None
    diagnoses: list[dict]
    written_on: date | None
    effective_on: date | None
    signed_at: datetime
    printed_at: datetime
    print_reason: str
    digest: str | None
    # Where the failed transmission went (21 CFR 1311.170(f)); None when none was made.
    pharmacy_name: str | None = None

    @property
    def transmission_failed(self) -> bool:
        """Printed after an electronic transmission failed (not for want of a connector)."""
        return self.print_reason.startswith(TRANSMISSION_FAILED)


def printout(actor, prescription_id: int, *, original: bool) -> PrintOut:
    """The printed prescription's content (the original once, then copies); audited, as
    every look at a printed prescription is."""
    with use_case():
        rx = _own_signed(actor, prescription_id)
        if rx.printed_at is None:
            raise Conflict("This prescription has not been printed.")
        patient = get_patient_for(actor, rx.patient_id)
        prescriber = db.session.get(User, rx.signed_by_id)
        clinic = current_clinic()
        content = PrintOut(
            prescription_id=rx.id,
            copy=not original,
            clinic_name=clinic.name if clinic else "",
            clinic_address=(clinic.address or "") if clinic else "",
            clinic_phone=(clinic.phone or "") if clinic else "",
            prescriber_name=prescriber.full_name,
            prescriber_npi=prescriber.npi,
            prescriber_dea=prescriber.dea_number if rx.schedule else None,
            patient_name=f"{patient.given_name} {patient.family_name}",
            patient_birth_date=patient.birth_date,
            patient_address=_address(patient),
            drug=rx.drug,
            strength=rx.strength,
            dose_form=rx.dose_form,
            route=rx.route,
            schedule=rx.schedule,
            quantity=rx.quantity or "",
            quantity_words=_in_words(rx.quantity) if rx.schedule else None,
            dispense_unit=rx.dispense_unit,
            days_supply=rx.days_supply,
            directions=rx.directions or "",
            refills=rx.refills or "0",
            substitution_allowed=rx.substitution_allowed,
            pharmacist_note=rx.pharmacist_note,
            diagnoses=_diagnoses(rx.diagnoses),
            written_on=rx.written_on,
            effective_on=rx.effective_on,
            signed_at=rx.signed_at,
            printed_at=rx.printed_at,
            print_reason=rx.print_reason or "",
            digest=rx.digest,
            pharmacy_name=rx.pharmacy_name,
        )
        audit.record(
            actor,
            "prescription.print_viewed" if original else "prescription.reprinted",
            patient_id=rx.patient_id,
            obj=rx,
            detail="original" if original else "copy",
            category=CATEGORY,
        )
    return content


def _address(patient) -> str:
    city_line = " ".join(
        part
        for part in (
            f"{patient.city}," if patient.city else None,
            patient.state,
            patient.postal_code,
        )
        if part
    )
    return "\n".join(
        line for line in (patient.address_line1, patient.address_line2, city_line) if line
    )


def _in_words(quantity: str | None) -> str | None:
    try:
        return quantity_in_words(quantity)
    except Refused:  # a quantity the checks would not take is printed as written
        return None


def _diagnoses(stored: str | None) -> list[dict]:
    try:
        items = json.loads(stored) if stored else []
    except ValueError:
        return []
    return [item for item in items if isinstance(item, dict)][:2]
