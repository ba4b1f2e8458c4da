"""The prescriber's Rx inbox: what waits for them, one item opened with its patient's banner
and the prescription's history, and the answers (approve a request by signing a prescription
made from the original, deny it with a reason, acknowledge a pharmacy's answer to a cancel).

Only the request's own prescriber sees or answers it (anyone else: 404, like an unknown id);
patient-scoped rows go through ``get_patient_for``. Every page that names patients is
audited, one event per patient; every answer is audited in its use case.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, exists, func, select, update
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.auth.models import User
from portal.extensions import db
from portal.patients.models import Patient
from portal.patients.services import get_patient_for
from portal.prescriptions import approvals, states
from portal.prescriptions.compose.services import renewal_draft
from portal.prescriptions.inbox.answers import (
    ANSWER_TEXT_MAX,
    CATEGORY,
    DENIAL_REASONS,
    enqueue_denial,
    kind_label,
    why_not_approvable,
)
from portal.prescriptions.models import Prescription, RxAcknowledgement, RxRequest
from portal.prescriptions.services import eprescribing_connector_name, vendor_id
from portal.prescriptions.sig import DISPENSE_UNITS
from portal.timeutil import utcnow
from portal.transaction import Conflict, Refused, use_case

CANCEL_RESPONSE_STATES = (states.CANCELLED, states.CANCEL_DENIED)
LIST_LIMIT = 200
MAX_REFILLS = 11


@dataclass(frozen=True)
class RequestRow:
    request: RxRequest
    patient: Patient | None
    label: str


@dataclass(frozen=True)
class PrescriptionRow:
    prescription: Prescription
    patient: Patient


@dataclass
class Inbox:
    requests: list[RequestRow] = field(default_factory=list)
    errors: list[PrescriptionRow] = field(default_factory=list)
    cancel_responses: list[PrescriptionRow] = field(default_factory=list)
    # Approvals whose prescription at the vendor is not linked (none or several fit): shown,
    # not counted (nothing to answer; the next update about the patient looks again).
    unlinked: list[RequestRow] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.requests) + len(self.errors) + len(self.cancel_responses)


def _unacknowledged():
    return ~exists().where(
        and_(
            RxAcknowledgement.prescription_id == Prescription.id,
            RxAcknowledgement.state == Prescription.state,
        )
    )


def inbox_count(actor) -> int:
    """The top bar's number: pending requests, failed transmissions and unacknowledged cancel
    responses of the prescriber (three counts, no patient data, not audited)."""
    requests = db.session.scalar(
        select(func.count())
        .select_from(RxRequest)
        .where(RxRequest.prescriber_id == actor.id, RxRequest.state == "pending")
    )
    prescriptions = db.session.scalar(
        select(func.count())
        .select_from(Prescription)
        .where(
            Prescription.prescriber_id == actor.id,
            (Prescription.state == states.ERROR)
            | (Prescription.state.in_(CANCEL_RESPONSE_STATES) & _unacknowledged()),
        )
    )
    return (requests or 0) + (prescriptions or 0)


def inbox_of(actor) -> Inbox:
    """Everything waiting for the prescriber, newest first; audited per patient shown."""
    box = Inbox()
    with use_case():
        rows = db.session.execute(
            select(RxRequest, Patient)
            .outerjoin(Patient, Patient.id == RxRequest.patient_id)
            .where(RxRequest.prescriber_id == actor.id, RxRequest.state == "pending")
            .order_by(RxRequest.received_at.desc(), RxRequest.id.desc())
            .limit(LIST_LIMIT)
        ).all()
        box.requests = [RequestRow(r, p, kind_label(r)) for r, p in rows]
        unlinked = db.session.execute(
            select(RxRequest, Patient)
            .outerjoin(Patient, Patient.id == RxRequest.patient_id)
            .where(
                RxRequest.prescriber_id == actor.id,
                RxRequest.state == "approved",
                RxRequest.vendor_link_note.is_not(None),
                RxRequest.answered_at >= utcnow() - approvals.LINK_WINDOW,
            )
            .order_by(RxRequest.answered_at.desc(), RxRequest.id.desc())
            .limit(LIST_LIMIT)
        ).all()
        box.unlinked = [RequestRow(r, p, kind_label(r)) for r, p in unlinked]
        found = db.session.execute(
            select(Prescription, Patient)
            .join(Patient, Patient.id == Prescription.patient_id)
            .where(
                Prescription.prescriber_id == actor.id,
                (Prescription.state == states.ERROR)
                | (Prescription.state.in_(CANCEL_RESPONSE_STATES) & _unacknowledged()),
            )
            .order_by(Prescription.updated_at.desc(), Prescription.id.desc())
            .limit(LIST_LIMIT)
        ).all()
        for rx, patient in found:
            target = box.errors if rx.state == states.ERROR else box.cancel_responses
            target.append(PrescriptionRow(rx, patient))
        shown = {row.patient.id for row in box.requests + box.unlinked if row.patient is not None}
        shown |= {row.patient.id for row in box.errors + box.cancel_responses}
        for patient_id in sorted(shown):
            audit.record(actor, "rx_inbox.viewed", patient_id=patient_id, category=CATEGORY)
        if not shown:
            audit.record(actor, "rx_inbox.viewed", category=CATEGORY)
    return box


@dataclass(frozen=True)
class HistoryRow:
    prescription: Prescription
    prescriber_name: str | None


@dataclass
class Item:
    """One item opened: its patient (None for a request no patient matched), the request
    (for a pharmacy's request) or the prescription, and the prescription's history: the
    patient's prescriptions of the same drug, newest first, and the requests about it."""

    patient: Patient | None
    request: RxRequest | None
    prescription: Prescription | None
    label: str
    history: list[HistoryRow]
    requests: list[RxRequest]
    response: Prescription | None = None
    # Why the portal will not approve the request (a controlled substance, a change that
    # proposes another drug): the page offers only the denial (and a new prescription).
    not_approvable: str | None = None


def _history(patient: Patient | None, rx: Prescription | None) -> list[HistoryRow]:
    if patient is None or rx is None:
        return []
    same = Prescription.rxcui == rx.rxcui if rx.rxcui else Prescription.drug == rx.drug
    rows = db.session.execute(
        select(Prescription, User.full_name)
        .outerjoin(User, User.id == Prescription.prescriber_id)
        .where(Prescription.patient_id == patient.id, same, Prescription.state != states.DRAFT)
        .order_by(Prescription.id.desc())
        .limit(50)
    ).all()
    return [HistoryRow(p, name) for p, name in rows]


def _requests_about(rx: Prescription | None) -> list[RxRequest]:
    if rx is None:
        return []
    return list(
        db.session.scalars(
            select(RxRequest)
            .where(RxRequest.prescription_id == rx.id)
            .order_by(RxRequest.id.desc())
            .limit(50)
        )
    )


def _own_request(actor, request_id: int, *, lock: bool = False) -> tuple[RxRequest, Patient | None]:
    """The actor's own request (and its patient, when matched); ``lock`` holds its row to
    the end of the use case, so two clicks answering it run one after the other."""
    request = db.session.get(
        RxRequest, request_id, with_for_update=lock or None, populate_existing=lock
    )
    if request is None or request.prescriber_id != actor.id:
        raise NotFound()  # another prescriber's request is as unknown as none
    patient = get_patient_for(actor, request.patient_id) if request.patient_id else None
    return request, patient


def request_item(actor, request_id: int) -> Item:
    """A pharmacy's request opened (audited)."""
    with use_case():
        request, patient = _own_request(actor, request_id)
        original = (
            db.session.get(Prescription, request.prescription_id)
            if request.prescription_id
            else None
        )
        response = (
            db.session.get(Prescription, request.response_prescription_id)
            if request.response_prescription_id
            else None
        )
        item = Item(
            patient,
            request,
            original,
            kind_label(request),
            _history(patient, original),
            _requests_about(original),
            response,
            why_not_approvable(request, original.schedule if original else None),
        )
        audit.record(
            actor,
            "rx_request.viewed",
            patient_id=patient.id if patient else None,
            obj=request,
            category=CATEGORY,
        )
    return item


def _own_prescription(actor, prescription_id: int) -> tuple[Prescription, Patient]:
    rx = db.session.get(Prescription, prescription_id)
    if rx is None or rx.prescriber_id != actor.id:
        raise NotFound()
    return rx, get_patient_for(actor, rx.patient_id)


def prescription_item(actor, prescription_id: int) -> Item:
    """A failed transmission or a cancel response opened (audited)."""
    with use_case():
        rx, patient = _own_prescription(actor, prescription_id)
        label = {
            states.ERROR: "Transmission error",
            states.CANCELLED: "Cancel response: cancelled",
            states.CANCEL_DENIED: "Cancel response: cancel denied",
        }.get(rx.state, states.label(rx.state))
        item = Item(patient, None, rx, label, _history(patient, rx), _requests_about(rx))
        audit.record(
            actor, "rx_inbox.item_viewed", patient_id=patient.id, obj=rx, category=CATEGORY
        )
    return item


def acknowledge(actor, prescription_id: int) -> Prescription:
    """The prescriber has seen the pharmacy's answer to a cancel; a second click (or tab)
    finds it acknowledged and does nothing more."""
    with use_case(conflict=Conflict("Already acknowledged.")):
        rx, patient = _own_prescription(actor, prescription_id)
        if rx.state not in CANCEL_RESPONSE_STATES:
            raise Refused("Only a pharmacy's answer to a cancel is acknowledged here.")
        seen = db.session.scalar(
            select(RxAcknowledgement.id).where(
                RxAcknowledgement.prescription_id == rx.id, RxAcknowledgement.state == rx.state
            )
        )
        if seen is not None:
            return rx
        db.session.add(
            RxAcknowledgement(
                prescription_id=rx.id,
                state=rx.state,
                acknowledged_by_id=actor.id,
                acknowledged_at=utcnow(),
            )
        )
        db.session.flush()
        audit.record(
            actor,
            "rx_inbox.acknowledged",
            patient_id=patient.id,
            obj=rx,
            detail=rx.state,
            category=CATEGORY,
        )
    return rx


def _clinician(actor, request: RxRequest) -> str:
    connector = eprescribing_connector_name()
    if connector is None or connector != request.connector:
        raise Refused("E-prescribing is switched off: the pharmacy's request cannot be answered.")
    clinician = vendor_id(connector, "clinician", actor.id)
    if clinician is None:
        raise Refused(
            "Your account is not linked to the e-prescribing service: ask an administrator."
        )
    return clinician


def start_approval(actor, request_id: int, refills: int, comment: str) -> Prescription:
    """The prescription that will approve the request: a draft copied from the original with
    the refills the prescriber grants, to the requesting pharmacy, linked to the request. It
    is signed in the signing dialog (the same checks and factors as any prescription); the
    signing puts the vendor's approval in the outbox. A second click opens the same draft."""
    if not 0 <= refills <= MAX_REFILLS:
        raise Refused(f"Refills are 0 to {MAX_REFILLS}.", "refills")
    comment = (comment or "").strip()
    if len(comment) > ANSWER_TEXT_MAX:
        raise Refused(f"The comment is at most {ANSWER_TEXT_MAX} characters.", "comment")
    with use_case(conflict=Conflict("This request is being answered in another window.")):
        request, patient = _own_request(actor, request_id, lock=True)
        if request.state != "pending":
            raise Conflict("This pharmacy request was already answered.")
        _clinician(actor, request)
        draft = (
            db.session.get(Prescription, request.response_prescription_id)
            if request.response_prescription_id
            else None
        )
        if draft is None or draft.state != states.DRAFT:
            original = (
                db.session.get(Prescription, request.prescription_id)
                if request.prescription_id
                else None
            )
            if original is None or patient is None:
                raise Refused(
                    "The portal holds no prescription this request is about: deny it, or "
                    "answer it in the e-prescribing service's own screen."
                )
            why = why_not_approvable(request, original.schedule)
            if why:
                raise Refused(why)
            draft = renewal_draft(actor, patient, original)
            draft.pharmacy_id = request.pharmacy_id or draft.pharmacy_id
            if request.pharmacy_id and request.pharmacy_id != original.pharmacy_id:
                draft.pharmacy_name = "The requesting pharmacy"
            request.response_prescription_id = draft.id
        draft.refills = str(refills)
        draft.version += 1
        draft.updated_at = utcnow()
        request.comment = comment or None
        request.updated_at = utcnow()
        db.session.flush()
        audit.record(
            actor,
            "rx_request.approval_started",
            patient_id=patient.id if patient else None,
            obj=request,
            detail=f"draft {draft.id}; {refills} refills",
            category=CATEGORY,
        )
    return draft


def ready_to_sign(draft: Prescription) -> bool:
    """Whether an approval's draft has what the signing asks for (a prescription written in
    the vendor's screen carries no dispense unit or structured directions): if not, the
    prescriber finishes it on the composing page first."""
    return bool(
        (draft.directions or "").strip()
        and draft.quantity
        and draft.dispense_unit in DISPENSE_UNITS
        and draft.pharmacy_id
    )


def deny(actor, request_id: int, reason: str, note: str) -> RxRequest:
    """Deny the request with a reason from ``DENIAL_REASONS`` and a note: one conditional
    UPDATE from ``pending`` and the vendor's denial in the outbox, in one transaction. A
    second click finds it denied by this prescriber and does nothing more."""
    if reason not in DENIAL_REASONS:
        raise Refused("Choose a reason.", "reason")
    note = (note or "").strip()
    if reason == "other" and not note:
        raise Refused("Say why in the note.", "note")
    if len(note) > ANSWER_TEXT_MAX:
        raise Refused(f"The note is at most {ANSWER_TEXT_MAX} characters.", "note")
    with use_case():
        request, patient = _own_request(actor, request_id, lock=True)
        if request.state == "denied" and request.answered_by_id == actor.id:
            return request
        clinician = _clinician(actor, request)
        now = utcnow()
        done = db.session.execute(
            update(RxRequest)
            .where(RxRequest.id == request.id, RxRequest.state == "pending")
            .values(
                state="denied",
                denial_reason=reason,
                note=note or None,
                answered_by_id=actor.id,
                answered_at=now,
                vendor_answer="queued",
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        db.session.refresh(request)
        if done.rowcount != 1:
            if request.state == "denied" and request.answered_by_id == actor.id:
                return request  # a second click that raced the first: the first's answer
            raise Conflict("This pharmacy request was already answered.")
        enqueue_denial(request, clinician)
        audit.record(
            actor,
            "rx_request.denied",
            patient_id=patient.id if patient else None,
            obj=request,
            detail=f"{request.kind} {request.connector} {request.vendor_request_id}: {reason}",
            category=CATEGORY,
        )
    return request
