"""Pharmacies' requests land in the portal: the worker pulls each linked prescriber's pending
renewal and change requests from the vendor (on the vendor's ``PrescriberNotificationCounts``
event, and every few minutes in case an event was lost) into ``rx_requests``.

Idempotent by the vendor's request id (a unique key; two workers pulling at once insert under
a savepoint and the loser finds the winner's row). Each new request is matched to our
prescriber (the vendor's clinician id), our patient (the vendor's patient id) and the original
prescription (the vendor's prescription id, or our own id the vendor carries); one that does
not match is kept with the vendor's ids and still listed. A request the vendor no longer lists
as pending, that nobody answered here, is ``closed`` (answered in the vendor's own screen).
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from portal.actors import SOURCE_WORKER, integration
from portal.audit import services as audit
from portal.dates import parse_instant
from portal.extensions import db
from portal.integrations.base import EPrescribingConnector, IntegrationError
from portal.integrations.models import ExternalId
from portal.integrations.settings import active_connectors
from portal.prescriptions import services as eprescribing
from portal.prescriptions.inbox.answers import CATEGORY, KINDS
from portal.prescriptions.models import Prescription, RxRequest
from portal.timeutil import utcnow
from portal.transaction import end_read, use_case

log = logging.getLogger(__name__)

COUNTS_EVENT = "PrescriberNotificationCounts"


def handle_event(connector: EPrescribingConnector, event_type: str, data: dict) -> int | None:
    """The inbox handler of e-prescribing events: the counts event pulls the clinician's
    requests; every other event goes to the prescriptions' write-back."""
    if event_type == COUNTS_EVENT:
        clinician = data.get("ClinicianId")
        if clinician not in (None, ""):
            pull_requests(connector.name, connector, str(clinician))
        return None
    return eprescribing.handle_event(connector, event_type, data)


def poll() -> str | None:
    """The worker's periodic pull: every prescriber linked to the enabled connector."""
    name = eprescribing.eprescribing_connector_name()
    if name is None:
        return None
    connector = active_connectors(include_paused=True).get(name)
    if connector is None:
        return None
    clinicians = list(
        db.session.scalars(
            select(ExternalId.external_id)
            .where(ExternalId.connector == name, ExternalId.kind == "clinician")
            .order_by(ExternalId.id)
        )
    )
    end_read()
    new = 0
    for clinician in clinicians:
        try:
            new += pull_requests(name, connector, clinician)
        except IntegrationError as error:
            log.warning("%s Rx inbox pull failed: %s", name, type(error).__name__)
    return f"Rx inbox: {new} new pharmacy requests" if new else None


def pull_requests(name: str, connector: EPrescribingConnector, clinician: str) -> int:
    """Read the clinician's pending requests of both kinds from the vendor (outside any
    transaction), then store what is new and close what the vendor no longer lists, in one
    use case. Returns how many were new. A vendor that cannot be read raises (the inbox
    retries the event; the poll tries again later): nothing is closed on a failed read."""
    end_read()
    found = {kind: connector.pending_requests(kind, clinician) for kind in KINDS}
    actor = integration(name, source=SOURCE_WORKER)
    new = 0
    with use_case():
        for items in found.values():
            for item in items:
                new += _store(actor, name, item)
        listed = [str(item["request_id"]) for items in found.values() for item in items]
        now = utcnow()
        db.session.execute(
            update(RxRequest)
            .where(
                RxRequest.connector == name,
                RxRequest.clinician_vendor_id == str(clinician),
                RxRequest.state == "pending",
                RxRequest.vendor_request_id.not_in(listed),
            )
            .values(state="closed", updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return new


def _store(actor, name: str, item: dict) -> int:
    """Store one request the first time it is seen, matched and audited (1), else 0. Only
    new requests are written: what the portal holds about a request (its answer) is never
    overwritten by a later read."""
    vendor_request = str(item["request_id"])
    known = db.session.scalar(
        select(RxRequest.id).where(
            RxRequest.connector == name, RxRequest.vendor_request_id == vendor_request
        )
    )
    if known is not None:
        return 0
    original = _original(name, item)
    patient_id = (
        eprescribing.local_id(name, "patient", item["patient_id"])
        if item.get("patient_id")
        else None
    )
    if original is not None and patient_id is not None and original.patient_id != patient_id:
        original = None  # the vendor's ids disagree: trust neither link to the other
    if patient_id is None and original is not None:
        patient_id = original.patient_id
    prescriber_id = (
        eprescribing.local_id(name, "clinician", item["clinician_id"])
        if item.get("clinician_id")
        else None
    )
    now = utcnow()
    row = RxRequest(
        connector=name,
        vendor_request_id=vendor_request,
        kind=item["kind"],
        change_type=item.get("change_type"),
        clinician_vendor_id=item.get("clinician_id"),
        prescriber_id=prescriber_id,
        patient_vendor_id=item.get("patient_id"),
        patient_id=patient_id,
        vendor_prescription_id=item.get("prescription_id"),
        prescription_id=original.id if original is not None else None,
        pharmacy_id=item.get("pharmacy_id"),
        drug=(item.get("drug") or "Unnamed drug")[:300],
        details=(item.get("details") or None),
        requested_at=parse_instant(item.get("requested_at")),
        received_at=now,
        state="pending",
        updated_at=now,
    )
    try:
        with db.session.begin_nested():
            db.session.add(row)
            db.session.flush()
    except IntegrityError:  # another worker stored it a moment ago
        return 0
    audit.record(
        actor,
        "rx_request.received",
        patient_id=patient_id,
        obj=row,
        detail=f"{row.kind} {name} {vendor_request}"
        + ("" if original is not None else "; original not matched"),
        category=CATEGORY,
    )
    return 1


def _original(name: str, item: dict) -> Prescription | None:
    """The prescription the request is about: by the vendor's id, else by ours ("rx-<id>")."""
    if item.get("prescription_id"):
        found = db.session.scalars(
            select(Prescription).where(
                Prescription.connector == name,
                Prescription.vendor_id == str(item["prescription_id"]),
            )
        ).first()
        if found is not None:
            return found
    ours = str(item.get("ours") or "")
    if ours.startswith("rx-") and ours[3:].isdigit():
        found = db.session.get(Prescription, int(ours[3:]))
        if found is not None and found.origin == "portal" and found.signed_at is not None:
            return found
    return None
