"""Cancelling a prescription the pharmacy holds.

Only a prescription the vendor holds (it has the vendor's id and has gone out) can be
cancelled here: the cancel is a request to the pharmacy, sent through the e-prescribing
connector. One use case moves the prescription to ``cancel requested`` and puts the request
in the outbox; the pharmacy answers through the vendor, and the vendor's write-back (webhook
or sweep) moves the prescription to ``cancelled`` or ``cancel denied``. A cancel denied may
be asked again. Whoever holds ``rx.sign`` may cancel (a covering prescriber stops a
prescription as readily as its author); every request is audited with its listed reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.extensions import db
from portal.integrations import outbox
from portal.integrations.settings import enabled_names
from portal.patients.models import Patient
from portal.patients.services import get_patient_for
from portal.prescriptions import states
from portal.prescriptions.models import Prescription
from portal.prescriptions.services import CANCELLABLE_STATES, vendor_id
from portal.timeutil import utcnow
from portal.transaction import Conflict, Refused, use_case

CATEGORY = "prescriptions"
CANCEL_OPERATION = "cancel_prescription"
# The listed reasons (the audit trail keeps the choice; the free text goes to the pharmacy).
CANCEL_REASONS = {
    "prescribed_in_error": "Prescribed in error",
    "therapy_changed": "Therapy changed",
    "medication_stopped": "Medication stopped",
    "adverse_reaction": "Adverse reaction",
    "patient_request": "At the patient's request",
    "other": "Other",
}
MAX_COMMENT = 200


@dataclass(frozen=True)
class CancelView:
    patient: Patient
    prescription: Prescription


def _visible(actor, prescription_id: int, *, lock: bool = False) -> tuple[Patient, Prescription]:
    rx = db.session.get(Prescription, prescription_id, with_for_update=lock or None)
    if rx is None:
        raise NotFound()
    patient = get_patient_for(actor, rx.patient_id)
    return patient, rx


def cancel_view(actor, prescription_id: int) -> CancelView:
    """The cancel form's content (the prescription, under the patient's banner); audited."""
    with use_case():
        patient, rx = _visible(actor, prescription_id)
        audit.record(
            actor,
            "prescription.viewed",
            patient_id=patient.id,
            obj=rx,
            detail="cancel form",
            category=CATEGORY,
        )
    return CancelView(patient, rx)


def request_cancel(actor, prescription_id: int, reason: str, comment: str = "") -> Prescription:
    """Ask the pharmacy to cancel ``rx``: ``cancel requested`` and the request in the outbox,
    audited, in one transaction. Two clicks ask once (the second finds it requested)."""
    if reason not in CANCEL_REASONS:
        raise Refused("Choose why the prescription is cancelled.", "reason")
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise Refused(f"Keep the comment within {MAX_COMMENT} characters.", "comment")
    with use_case():
        patient, rx = _visible(actor, prescription_id, lock=True)
        if rx.state == states.CANCEL_REQUESTED:
            raise Conflict("A cancel was already requested; the pharmacy's answer will show here.")
        if rx.printed_at is not None or rx.state == states.PRINTED:
            raise Refused(
                "This prescription was printed: the patient holds the paper. Call the "
                "pharmacy, or ask the patient to return it."
            )
        if rx.vendor_id is None or rx.state not in CANCELLABLE_STATES:
            raise Refused(
                f"A prescription that is {states.label(rx.state).lower()} cannot be cancelled "
                "through e-prescribing: only one the pharmacy holds."
            )
        connector = rx.connector
        if connector not in enabled_names():
            raise Refused(
                "E-prescribing is switched off: call the pharmacy to cancel this prescription."
            )
        vendor_patient = vendor_id(connector, "patient", patient.id)
        if vendor_patient is None:
            raise Refused("The e-prescribing service does not know this patient yet.")
        # The request goes out as the one cancelling when their account is linked, else as
        # the clinic's administrative clinician (the connector's default).
        clinician = vendor_id(connector, "clinician", actor.id) if actor.id else None
        words = CANCEL_REASONS[reason] + (f": {comment}" if comment else "")
        outbox.enqueue(
            connector,
            CANCEL_OPERATION,
            {
                "clinician_id": _number(clinician),
                "dosespot_patient_id": _number(vendor_patient),
                "dosespot_prescription_id": _number(rx.vendor_id),
                "comment": words,
            },
            patient_id=patient.id,
            prescription_id=rx.id,
        )
        rx.state = states.CANCEL_REQUESTED
        rx.updated_at = utcnow()
        db.session.flush()
        audit.record(
            actor,
            "prescription.cancel_requested",
            patient_id=patient.id,
            obj=rx,
            detail=f"{connector} {rx.vendor_id}; reason {reason}",
            category=CATEGORY,
        )
        return rx


def _number(value: str | None):
    """Vendor ids travel as numbers when they are (DoseSpot's are)."""
    if value is None:
        return None
    return int(value) if str(value).isdigit() else value


def open_prescription_of_medication(medication_id: int) -> Prescription | None:
    """The open prescription made for a medication list entry, if it can be cancelled."""
    rows = db.session.scalars(
        select(Prescription)
        .where(
            Prescription.medication_id == medication_id,
            Prescription.state.in_(CANCELLABLE_STATES),
            Prescription.vendor_id.is_not(None),
        )
        .order_by(Prescription.id.desc())
        .limit(1)
    ).all()
    return rows[0] if rows else None
