"""How an answer to a pharmacy's request leaves the portal: the outbox messages and what
their delivery reports back. Imported by signing (an approval is put in the outbox by the
signing's own transaction) and by the inbox's use cases (a denial); it imports neither.

An approval is a prescription signed like any other (the same checks, the same factors), made
from the original and linked to the request (``RxRequest.response_prescription_id``); the
signing's conditional UPDATE of the request from ``pending`` to ``approved`` decides a race
with a denial or a second approval, and the vendor's approval goes in the outbox instead of a
new send (DoseSpot makes the new prescription at the pharmacy from the approval, without
telling its id: the delivery's outcome links it when exactly one of the patient's
prescriptions there fits, ``portal/prescriptions/approvals.py``).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select, update

from portal.actors import SOURCE_WORKER, integration
from portal.audit import services as audit
from portal.extensions import db
from portal.integrations import outbox
from portal.integrations.dosespot.statuses import PORTAL_STATE_FHIR_STATUS
from portal.integrations.models import OutboxMessage
from portal.patients.models import Patient
from portal.patients.services import lock_patient
from portal.prescriptions import approvals, states
from portal.prescriptions.models import Prescription, RxRequest
from portal.prescriptions.services import record_vendor_read, vendor_id
from portal.timeutil import utcnow
from portal.transaction import Conflict, Refused

CATEGORY = "prescriptions"
KINDS = ("renewal", "change")
APPROVE_OPERATIONS = {"renewal": "approve_renewal", "change": "approve_change"}
DENY_OPERATIONS = {"renewal": "deny_renewal", "change": "deny_change"}
ANSWER_OPERATIONS = tuple(APPROVE_OPERATIONS.values()) + tuple(DENY_OPERATIONS.values())

# Why a prescriber says no: a short standard list (the vendor gets the code, the pharmacy the
# note), in the words the form shows.
DENIAL_REASONS = {
    "patient_unknown": "Patient unknown to the prescriber",
    "not_under_care": "Patient no longer under the prescriber's care",
    "needs_appointment": "Patient needs an appointment",
    "medication_changed": "Medication changed or stopped",
    "other": "Other (say why in the note)",
}
CHANGE_TYPES = {
    "generic_substitution": "Generic substitution",
    "therapeutic_substitution": "Therapeutic substitution",
    "prior_authorization": "Prior authorisation",
    "clarification": "Clarification",
    "other": "Change",
}
ANSWER_TEXT_MAX = 250

# What the vendor's approval carries is the request's id, the refills and a comment: the
# pharmacy fills the original as it was. So the prescription the portal signs for an approval
# must be the original (the chart records what the pharmacy will fill): its drug, directions,
# quantity, unit, days' supply and pharmacy are frozen; only the refills and the comment are
# the prescriber's to choose (docs/ARCHITECTURE.md, "Rx inbox").
FROZEN_ELEMENTS = {
    "drug": "the drug",
    "rxcui": "the drug",
    "ndc": "the drug",
    "dispensable_drug_id": "the drug",
    "directions": "the directions",
    "quantity": "the quantity",
    "dispense_unit": "the dispense unit",
    "days_supply": "the days' supply",
    "pharmacy_id": "the pharmacy",
}
FROZEN_NOTE = (
    "This prescription approves a pharmacy's request: the pharmacy fills the original as it "
    "was written, so only the refills (and your comment) can be changed here. To change the "
    "drug, dose, directions, quantity or pharmacy, deny the request and write a new "
    "prescription."
)
# Change requests the portal can approve: those about the original drug itself (a prior
# authorisation obtained, a clarification). A generic or therapeutic substitution proposes
# another drug, which the vendor's request does not carry in a form a prescription can be
# built from, so the safety checks cannot run on it: the portal only denies those.
APPROVABLE_CHANGE_TYPES = frozenset({"prior_authorization", "clarification"})
SUBSTITUTION_REFUSAL = (
    "This change request proposes a different drug, which the portal cannot check: deny it "
    "here, or review and approve it in the e-prescribing service's own screen."
)
CONTROLLED_REFUSAL = (
    "A controlled substance (schedule II-V) is not approved from the Rx inbox: the approval "
    "would reach the pharmacy without the EPCS signature the law asks for. Deny the request, "
    "or write a new prescription (it is signed and sent through the EPCS send)."
)


def why_not_approvable(request: RxRequest, schedule: int | None) -> str | None:
    """Why the portal refuses to approve this request (None when it may): a change request
    proposing another drug, or a controlled substance."""
    if schedule:
        return CONTROLLED_REFUSAL
    if request.kind == "change" and request.change_type not in APPROVABLE_CHANGE_TYPES:
        return SUBSTITUTION_REFUSAL
    return None


def approved_pharmacy(request: RxRequest, original: Prescription) -> str | None:
    """The pharmacy an approval goes to: the requesting one, else the original's."""
    return request.pharmacy_id or original.pharmacy_id


def approval_differences(
    request: RxRequest, original: Prescription, draft: Prescription
) -> list[str]:
    """What of the draft (in words) is no longer the original the pharmacy will fill."""
    expected = {name: getattr(original, name) for name in FROZEN_ELEMENTS}
    expected["pharmacy_id"] = approved_pharmacy(request, original)
    changed = []
    for name, words in FROZEN_ELEMENTS.items():
        want, have = expected[name], getattr(draft, name)
        if want in (None, ""):
            continue  # the original (written in the vendor's screen) did not say: filled in
        if str(want) != str(have) and words not in changed:
            changed.append(words)
    return changed


def check_approval(request: RxRequest, draft: Prescription, schedule: int | None) -> None:
    """At signing: the approval draft may still be approved and is still the original
    (refuses otherwise, in words)."""
    why = why_not_approvable(request, schedule)
    if why:
        raise Refused(why)
    original = (
        db.session.get(Prescription, request.prescription_id) if request.prescription_id else None
    )
    if original is None:
        raise Refused(
            "The portal holds no prescription this request is about: deny it, or answer it "
            "in the e-prescribing service's own screen."
        )
    changed = approval_differences(request, original, draft)
    if changed:
        raise Refused(
            "This prescription approves a pharmacy's request, and "
            + ", ".join(changed)
            + " no longer match the original the pharmacy will fill: only the refills can "
            "change. Deny the request and write a new prescription instead."
        )


def kind_label(request: RxRequest) -> str:
    if request.kind == "renewal":
        return "Renewal request"
    return f"Change request: {CHANGE_TYPES.get(request.change_type or 'other', 'Change')}"


def answering(prescription_id: int) -> RxRequest | None:
    """The request a draft answers (an approval in the making), if any."""
    return db.session.scalars(
        select(RxRequest).where(RxRequest.response_prescription_id == prescription_id)
    ).first()


def answer_key(request: RxRequest, verb: str) -> str:
    """One answer a request, whatever clicks and workers do: the outbox's unique key."""
    return f"{request.connector}:{verb}:{request.kind}:{request.vendor_request_id}"


def enqueue_approval(actor, request: RxRequest, clinician: str | None, rx: Prescription) -> None:
    """In the signing's transaction: the request moves from ``pending`` to ``approved`` (one
    conditional UPDATE: a denial or another approval that got there first refuses this
    signing) and the vendor's approval goes in the outbox. Flushes only."""
    if clinician is None or request.connector is None:
        raise Refused("E-prescribing is switched off: the pharmacy's request cannot be answered.")
    now = utcnow()
    done = db.session.execute(
        update(RxRequest)
        .where(RxRequest.id == request.id, RxRequest.state == "pending")
        .values(
            state="approved",
            refills=int(rx.refills or 0),
            answered_by_id=actor.id,
            answered_at=now,
            vendor_answer="queued",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        raise Conflict("This pharmacy request was already answered.")
    vendor_patient = request.patient_vendor_id or vendor_id(
        request.connector, "patient", rx.patient_id
    )
    outbox.enqueue(
        request.connector,
        APPROVE_OPERATIONS[request.kind],
        {
            "clinician_id": int(clinician) if str(clinician).isdigit() else clinician,
            "request_id": int(request.vendor_request_id),
            "refills": int(rx.refills or 0),
            "comment": request.comment or "",
            # After approving, the connector reads this patient's prescriptions written
            # since then: the vendor's new prescription is found among them (approvals.py).
            "dosespot_patient_id": int(vendor_patient)
            if str(vendor_patient or "").isdigit()
            else None,
            "approved_at": now.isoformat(),
        },
        idempotency_key=answer_key(request, "approve"),
        patient_id=rx.patient_id,
        prescription_id=rx.id,
    )
    audit.record(
        actor,
        "rx_request.approved",
        patient_id=rx.patient_id,
        obj=request,
        detail=f"{request.kind} {request.connector} {request.vendor_request_id}; "
        f"prescription {rx.id}; {int(rx.refills or 0)} refills",
        category=CATEGORY,
    )


def enqueue_denial(request: RxRequest, clinician: str) -> None:
    """The vendor's denial in the outbox (the caller's use case has moved the request)."""
    outbox.enqueue(
        request.connector,
        DENY_OPERATIONS[request.kind],
        {
            "clinician_id": int(clinician) if str(clinician).isdigit() else clinician,
            "request_id": int(request.vendor_request_id),
            "denial_reason": request.denial_reason,
            "note": request.note or "",
        },
        idempotency_key=answer_key(request, "deny"),
        patient_id=request.patient_id,
    )


def record_answer_outcome(result: outbox.Outcome) -> None:
    """The outbox's outcome handler of the four answer operations: the request's
    ``vendor_answer`` (delivered / failed) and, for an approval, its prescription's state
    (sent, or error with the reason: the prescriber's failed transmissions list it).
    Idempotent."""
    message = db.session.get(OutboxMessage, result.message_id)
    if message is None:
        return
    if message.patient_id is not None:
        # Before any change: the write-back takes the patient's row first too (it may be
        # linking the same approval from a webhook's read).
        lock_patient(message.patient_id)
    key = message.idempotency_key
    request = db.session.scalars(
        select(RxRequest).where(
            RxRequest.connector == result.connector,
            RxRequest.vendor_request_id == str((message.payload or {}).get("request_id")),
        )
    ).first()
    if request is None:
        return
    delivered = result.status == "delivered"
    request.vendor_answer = "delivered" if delivered else "failed"
    request.vendor_error = None if delivered else (result.error or "no reason given")[:2000]
    request.updated_at = utcnow()
    actor = integration(result.connector, source=SOURCE_WORKER)
    rx = db.session.get(Prescription, message.prescription_id) if message.prescription_id else None
    if rx is not None and rx.printed_at is None:
        if delivered and rx.state in (states.QUEUED, states.ERROR):
            rx.state = states.SENT
            rx.fhir_status = PORTAL_STATE_FHIR_STATUS.get(states.SENT, "active")
            rx.transmission_error = None
        elif not delivered and rx.state == states.QUEUED:
            rx.state = states.ERROR
            rx.fhir_status = "draft"
            rx.transmission_error = (
                "The answer to the pharmacy's request could not be delivered: "
                + (result.error or "the e-prescribing service gave no reason")
            )[:2000]
        rx.updated_at = utcnow()
        if delivered and request.response_prescription_id == rx.id:
            _link_approval(actor, result, request, rx)
    db.session.flush()
    audit.record(
        actor,
        "rx_request.answer_delivered" if delivered else "rx_request.answer_failed",
        patient_id=request.patient_id,
        obj=request,
        detail=f"{key} outbox {result.message_id} {result.status}",
        category=CATEGORY,
    )


def _link_approval(actor, result: outbox.Outcome, request: RxRequest, rx: Prescription) -> None:
    """The delivered approval's prescription at the vendor, from the patient's prescriptions
    the connector read right after approving: linked when exactly one fits, else the request
    says why (``approvals.py``; the write-back's next read tries again). A prescription
    already linked (an earlier outcome, or the write-back got there first) is left as it
    is: never linked twice."""
    if rx.vendor_id is not None or rx.state not in approvals.AWAITING_STATES:
        return
    db.session.flush()
    read = (result.result or {}).get("patient_prescriptions")
    if read is None:
        approvals.set_note(actor, request, rx, approvals.NOT_READ)
        return
    items = [item for item in read if isinstance(item, dict) and item.get("vendor_id")]
    linked = approvals.linked_vendor_ids(result.connector, items)
    entry = approvals.Awaiting(
        request, rx, approvals.approving_clinician(result.connector, request)
    )
    approvals.try_link(actor, result.connector, entry, items, linked)
    if rx.vendor_id is not None:
        # Its statuses as read: the webhooks that told them may have come (and been held
        # back) while the approval was still queued here.
        item = next(i for i in items if str(i["vendor_id"]) == rx.vendor_id)
        written = item.get("written_on")
        item = item | {"written_on": date.fromisoformat(written) if written else None}
        patient = db.session.get(Patient, rx.patient_id)
        record_vendor_read(actor, result.connector, patient, item)
