"""Which of the vendor's prescriptions an approval made.

Approving a pharmacy's renewal or change request (the Rx inbox) makes a NEW prescription at
the vendor (DoseSpot writes it at the pharmacy from the approval), and the vendor does not
say which: the approval's answer carries an id that is not documented to be the new
prescription's (the sandbox gives the request's), so it is never taken for it. Without a
link, the prescription signed here for the approval would stay "sent" for good and never
get the pharmacy's later statuses (verified, fills, a cancel).

So the patient's prescriptions at the vendor are read after the approval (by the connector,
right after its call) and again by the write-back (a webhook about the patient, the sweep),
and the approval is linked (``Prescription.vendor_id``) ONLY when exactly one of them fits:
the same patient (the read is the patient's), the same drug (DispensableDrugId, RxCUI or
NDC), written at or after the approval, written by the approving clinician (the vendor's
clinician id of the prescriber who approved; an item without a prescriber does not fit), at
the request's pharmacy (when both the request and the item name one), and linked to no
prescription of ours (by the vendor's id, or by our own id it carries, unless that names the
request's original: a vendor may copy it onto the renewal). Without the prescriber and the
pharmacy, another prescriber's same-drug prescription written since would be taken for an
approval whose own prescription the vendor does not list yet, and two approvals of the same
drug for one patient (two pharmacies) would each fit both. None, or several: nothing is
guessed; the request says
why (``RxRequest.vendor_link_note``, shown on the inbox item and in the inbox), and the next
read tries the same rule again.

While an approval waits for its link (for ``LINK_WINDOW`` after it), the vendor's
prescriptions that fit it are not recorded as prescriptions of their own by the write-back:
one of them is the approval, and recording it apart would put the drug twice in the chart
and on the medication list. The same holds while the approval's delivery is not yet known
(a webhook may arrive before the outbox records the outcome): the read then decides nothing
and holds them back. After the window, whatever is still unlinked is recorded as the
vendor's (the approval keeps its note).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from portal.audit import services as audit
from portal.extensions import db
from portal.integrations.models import ExternalId
from portal.prescriptions import states
from portal.prescriptions.models import Prescription, RxRequest
from portal.timeutil import utcnow

CATEGORY = "prescriptions"
# How long an approval's link is looked for (and fitting prescriptions held back). The new
# prescription exists at the vendor from the approval on; a week covers a vendor down for
# days and a sweep that runs late.
LINK_WINDOW = timedelta(days=7)
# An approval's own prescription while its link is awaited: queued (delivery not known yet)
# or sent (delivered, the pharmacy's statuses unknown without the link).
AWAITING_STATES = (states.QUEUED, states.SENT)

NOT_FOUND = (
    "The e-prescribing service has not shown the prescription this approval made yet: it is "
    "looked for again at its next update about this patient."
)
NOT_READ = (
    "The patient's prescriptions at the e-prescribing service could not be read after the "
    "approval: the one it made is looked for again at its next update about this patient."
)


def several(count: int) -> str:
    return (
        f"{count} prescriptions at the e-prescribing service could be the one this approval "
        "made (same drug, written since): none is linked rather than guess, so the pharmacy's "
        "statuses are not shown here yet. Each update about this patient looks again."
    )


@dataclass(frozen=True)
class Awaiting:
    """An approval whose prescription at the vendor is not linked yet; ``clinician`` is
    the vendor's id of the clinician who approved (None if no longer linked: then nothing
    fits, rather than a guess)."""

    request: RxRequest
    rx: Prescription
    clinician: str | None


def approving_clinician(connector: str, request: RxRequest) -> str | None:
    """The vendor's clinician id of the prescriber who approved the request: the approval
    went to the vendor under it (``inbox.answers.enqueue_approval``), so the prescription it
    made there names it as prescriber."""
    if request.answered_by_id is None:
        return None
    return db.session.scalar(
        select(ExternalId.external_id).where(
            ExternalId.connector == connector,
            ExternalId.kind == "clinician",
            ExternalId.local_id == request.answered_by_id,
        )
    )


def awaiting(connector: str, patient_id: int) -> list[Awaiting]:
    """The patient's approvals of ``connector`` still awaiting their link, oldest first."""
    rows = db.session.execute(
        select(RxRequest, Prescription, ExternalId.external_id)
        .join(Prescription, Prescription.id == RxRequest.response_prescription_id)
        .outerjoin(
            ExternalId,
            (ExternalId.connector == connector)
            & (ExternalId.kind == "clinician")
            & (ExternalId.local_id == RxRequest.answered_by_id),
        )
        .where(
            RxRequest.connector == connector,
            RxRequest.state == "approved",
            RxRequest.answered_at >= utcnow() - LINK_WINDOW,
            Prescription.patient_id == patient_id,
            Prescription.vendor_id.is_(None),
            Prescription.printed_at.is_(None),
            Prescription.state.in_(AWAITING_STATES),
        )
        .order_by(RxRequest.answered_at, RxRequest.id)
    ).all()
    return [Awaiting(request, rx, clinician) for request, rx, clinician in rows]


def patients_awaiting(connector: str, limit: int) -> list[int]:
    """Patients with a delivered approval awaiting its link: the sweep re-reads them."""
    return list(
        db.session.scalars(
            select(Prescription.patient_id)
            .join(RxRequest, RxRequest.response_prescription_id == Prescription.id)
            .where(
                RxRequest.connector == connector,
                RxRequest.state == "approved",
                RxRequest.vendor_answer == "delivered",
                RxRequest.answered_at >= utcnow() - LINK_WINDOW,
                Prescription.vendor_id.is_(None),
                Prescription.printed_at.is_(None),
                Prescription.state.in_(AWAITING_STATES),
            )
            .distinct()
            .limit(limit)
        )
    )


def _same_drug(rx: Prescription, item: dict) -> bool:
    pairs = (
        (rx.dispensable_drug_id, item.get("dispensable_drug_id")),
        (rx.rxcui, item.get("rxcui")),
        (rx.ndc, item.get("ndc")),
    )
    return any(ours and theirs and str(ours) == str(theirs) for ours, theirs in pairs)


def _same_prescriber(clinician: str | None, item: dict) -> bool:
    """Written by the approving clinician; an item that names no prescriber does not fit."""
    theirs = item.get("prescriber_vendor_id")
    return bool(clinician and theirs) and str(clinician) == str(theirs)


def _same_pharmacy(request: RxRequest, item: dict) -> bool:
    """At the request's pharmacy: the vendor writes the approval's prescription there.
    Compared only when both name one (a request without a pharmacy id says nothing)."""
    ours, theirs = request.pharmacy_id, item.get("pharmacy_id")
    if not ours or not theirs:
        return True
    return str(ours) == str(theirs)


def _written_since(item: dict, approved_at: datetime) -> bool:
    """Written at or after the approval (to the second: the vendor's times have no
    fraction). A time without an offset is the vendor's wall time in a zone it does not
    name: only its day can be compared, from the day before the approval's (UTC) day."""
    text = str(item.get("written_at") or "")
    try:
        written = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    if written.tzinfo is None:
        return written.date() >= (approved_at - timedelta(days=1)).date()
    return written >= approved_at.replace(microsecond=0)


def _ours_other_than(item: dict, original_id: int | None) -> bool:
    """The item carries our id ("rx-<id>") of a prescription other than the original."""
    ours = str(item.get("ours") or "")
    return ours.startswith("rx-") and ours[3:].isdigit() and int(ours[3:]) != original_id


def linked_vendor_ids(connector: str, items: list[dict]) -> set[str]:
    """Which of the items are already linked to a prescription of ours."""
    ids = sorted({str(item["vendor_id"]) for item in items})
    if not ids:
        return set()
    return set(
        db.session.scalars(
            select(Prescription.vendor_id).where(
                Prescription.connector == connector, Prescription.vendor_id.in_(ids)
            )
        )
    )


def candidates(entry: Awaiting, items: list[dict], linked: set[str]) -> list[str]:
    """The vendor ids of the items that fit the approval (the rule in the module's words)."""
    approved_at = entry.request.answered_at
    if approved_at is None:
        return []
    return sorted(
        {
            str(item["vendor_id"])
            for item in items
            if str(item["vendor_id"]) not in linked
            and not _ours_other_than(item, entry.request.prescription_id)
            and _same_drug(entry.rx, item)
            and _same_prescriber(entry.clinician, item)
            and _same_pharmacy(entry.request, item)
            and _written_since(item, approved_at)
        }
    )


def try_link(actor, connector: str, entry: Awaiting, items: list[dict], linked: set[str]):
    """Link the approval when exactly one item fits, else say why not on the request.
    Returns the fitting vendor ids (linked or not). Flushes only; idempotent."""
    found = candidates(entry, items, linked)
    request, rx = entry.request, entry.rx
    if len(found) == 1:
        rx.connector, rx.vendor_id = connector, found[0]
        rx.updated_at = utcnow()
        request.vendor_link_note = None
        request.updated_at = utcnow()
        linked.add(found[0])
        db.session.flush()
        audit.record(
            actor,
            "prescription.approval_linked",
            patient_id=rx.patient_id,
            obj=rx,
            detail=f"{connector} {found[0]}; request {request.vendor_request_id}",
            category=CATEGORY,
        )
        return found
    set_note(actor, request, rx, several(len(found)) if found else NOT_FOUND)
    return found


def set_note(actor, request: RxRequest, rx: Prescription, note: str) -> None:
    """Say why the approval is not linked (audited when it changes, not at every read)."""
    if request.vendor_link_note == note:
        return
    request.vendor_link_note = note
    request.updated_at = utcnow()
    db.session.flush()
    audit.record(
        actor,
        "rx_request.approval_not_linked",
        patient_id=rx.patient_id,
        obj=request,
        detail=note[:200],
        category=CATEGORY,
    )


def link_awaiting(actor, connector: str, patient_id: int, items: list[dict]) -> set[str]:
    """The write-back's part (the patient's row locked by the caller): each approval of the
    patient awaiting its link is tried against this read, oldest first; returns the vendor
    ids to hold back from being recorded on their own (they fit an approval still unlinked,
    or one whose delivery is not known yet)."""
    waiting = awaiting(connector, patient_id)
    if not waiting:
        return set()
    linked = linked_vendor_ids(connector, items)
    held: set[str] = set()
    for entry in waiting:
        if entry.request.vendor_answer != "delivered":
            # Not known to have reached the vendor: decide nothing, record nothing that fits.
            held.update(candidates(entry, items, linked))
            continue
        found = try_link(actor, connector, entry, items, linked)
        if entry.rx.vendor_id is None:
            held.update(found)
    return held
