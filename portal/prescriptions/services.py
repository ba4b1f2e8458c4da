"""E-prescribing through the enabled connector: opening the vendor's screen for a patient,
and writing back what the vendor holds (prescriptions and their statuses) into the chart.

Opening the screen needs two calls a person waits for (make or update the vendor's copy of
the patient, then a fresh single sign-on URL): they are made outside any transaction, and
the launch is audited in its own use case. The launch URL is returned to the page and never
stored or logged.

What the prescriber did in the vendor's screen comes back as webhooks (a hint: re-read the
patient's prescriptions), and a periodic sweep re-reads patients with open activity, so a
dropped or reordered webhook still ends in the right state. Every read writes each vendor
prescription once (unique by the vendor's id) and puts it on the medication list once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import and_, func, not_, or_, select
from werkzeug.exceptions import NotFound

from portal.actors import SOURCE_WORKER, integration
from portal.audit import services as audit
from portal.auth.factors import confirm_factors
from portal.auth.models import User
from portal.charting.lists.services import record_prescribed_medication
from portal.charting.models import VitalSigns
from portal.extensions import db
from portal.integrations import epcs_credentials
from portal.integrations.base import (
    EPrescribingConnector,
    IntegrationError,
    PermanentError,
    TransientError,
)
from portal.integrations.models import ExternalId, InboxMessage, OutboxMessage
from portal.integrations.registry import connector_class
from portal.integrations.settings import active_connectors, enabled_connector, enabled_names
from portal.patients.models import Patient
from portal.patients.services import get_patient_for, lock_patient
from portal.prescriptions import approvals, states
from portal.prescriptions.models import Prescription
from portal.prescriptions.states import state_from_vendor
from portal.timeutil import utcnow
from portal.transaction import Conflict, Refused, end_read, use_case

log = logging.getLogger(__name__)

# The outbox operation that sends a signed prescription (signing enqueues it, printing
# withdraws it, delivery reports its outcome back).
SEND_OPERATION = "send_prescription"
# Vendor statuses after which nothing more is expected (the sweep stops re-reading).
FINAL_FHIR_STATUSES = ("completed", "cancelled", "stopped", "entered-in-error")
# How long after a launch the sweep keeps re-reading a patient: prescriptions written in the
# embedded screen are found even if every webhook about them was lost.
RECENT_LAUNCH = timedelta(hours=24)


def eprescribing_connector_name() -> str | None:
    """The enabled e-prescribing connector of this clinic (the first, if several); one query,
    no secrets decrypted (every prescriber's page asks, through the queue count)."""
    for name in enabled_names():
        if issubclass(connector_class(name), EPrescribingConnector):
            return name
    return None


def vendor_id(connector: str, kind: str, local_id: int) -> str | None:
    return db.session.scalar(
        select(ExternalId.external_id).where(
            ExternalId.connector == connector,
            ExternalId.kind == kind,
            ExternalId.local_id == local_id,
        )
    )


def local_id(connector: str, kind: str, external_id: str) -> int | None:
    return db.session.scalar(
        select(ExternalId.local_id).where(
            ExternalId.connector == connector,
            ExternalId.kind == kind,
            ExternalId.external_id == str(external_id),
        )
    )


def _remember(connector: str, kind: str, local: int, external: str) -> None:
    """Record (or touch) the link between our row and the vendor's; flushes only."""
    now = utcnow()
    link = db.session.scalars(
        select(ExternalId).where(
            ExternalId.connector == connector, ExternalId.kind == kind, ExternalId.local_id == local
        )
    ).first()
    if link is None:
        db.session.add(
            ExternalId(
                connector=connector,
                kind=kind,
                local_id=local,
                external_id=str(external),
                created_at=now,
                updated_at=now,
            )
        )
    else:
        link.external_id = str(external)
        link.updated_at = now
    db.session.flush()


def patient_snapshot(patient: Patient) -> dict:
    """The registry's facts the vendor needs, as plain data (connectors import no model),
    with the latest height and weight charted (required by vendors for minors)."""
    latest = db.session.execute(
        select(VitalSigns.height_cm, VitalSigns.weight_kg, VitalSigns.taken_at)
        .where(
            VitalSigns.patient_id == patient.id,
            VitalSigns.entered_in_error.is_(False),
            (VitalSigns.height_cm.is_not(None)) | (VitalSigns.weight_kg.is_not(None)),
        )
        .order_by(VitalSigns.taken_at.desc())
        .limit(20)
    ).all()
    height = next((row.height_cm for row in latest if row.height_cm), None)
    weight = next((row.weight_kg for row in latest if row.weight_kg), None)
    return {
        "mrn": patient.mrn,
        "given_name": patient.given_name,
        "family_name": patient.family_name,
        "birth_date": patient.birth_date.isoformat(),
        "sex_at_birth": patient.sex_at_birth,
        "address_line1": patient.address_line1,
        "address_line2": patient.address_line2,
        "city": patient.city,
        "state": patient.state,
        "postal_code": patient.postal_code,
        "phone_mobile": patient.phone_mobile,
        "phone_home": patient.phone_home,
        "phone_work": patient.phone_work,
        "email": patient.email,
        "height_cm": height,
        "weight_kg": weight,
    }


@dataclass
class Launch:
    """What the e-prescribing page shows: the vendor's screen, or what to fix first."""

    patient: Patient
    connector_title: str
    url: str | None = None
    origin: str | None = None
    problems: list[str] = field(default_factory=list)


def _connector_and_clinician(actor) -> tuple[str, EPrescribingConnector, str]:
    name = eprescribing_connector_name()
    connector = enabled_connector(name) if name else None
    if connector is None:
        raise Refused(
            "E-prescribing is not switched on for this clinic. An administrator can enable "
            "it under Administration, Integrations."
        )
    clinician = vendor_id(name, "clinician", actor.id)
    if clinician is None:
        raise Refused(
            f"Your account is not linked to a {connector.title} prescriber yet. Ask an "
            "administrator to link it under Administration, Integrations."
        )
    return name, connector, clinician


def open_eprescribing(actor, patient_id: int) -> Launch:
    """Make the vendor's copy of the patient current and a fresh launch URL for the
    prescriber; or the problems to fix in the registry or chart first (nothing sent)."""
    patient = get_patient_for(actor, patient_id)
    name, connector, clinician = _connector_and_clinician(actor)
    launch = Launch(patient=patient, connector_title=connector.title)
    snapshot = patient_snapshot(patient)
    launch.problems = connector.patient_problems(snapshot)
    known = vendor_id(name, "patient", patient.id)
    end_read()  # no transaction is held while the vendor answers
    if launch.problems:
        with use_case():
            audit.record(
                actor,
                "eprescribing.launch_refused",
                patient_id=patient.id,
                detail=f"{name}: {len(launch.problems)} data problems",
                category="e-prescribing",
            )
        return launch
    try:
        try:
            vendor_patient = connector.sync_patient(clinician, snapshot, known)
        except PermanentError:
            if known is None:
                raise
            # The vendor no longer has the copy we linked (e.g. an account moved): find it
            # again by our MRN, or make a new one, and link that instead.
            vendor_patient = connector.sync_patient(clinician, snapshot, None)
        launch.url = connector.launch_url(clinician, vendor_patient)
    except TransientError as error:
        raise Refused(f"{connector.title} could not be reached: {error}") from error
    except IntegrationError as error:
        raise Refused(f"{connector.title} refused the patient: {error}") from error
    launch.origin = connector.screen_origin()
    with use_case():
        _remember(name, "patient", patient.id, vendor_patient)
        audit.record(
            actor,
            "eprescribing.launched",
            patient_id=patient.id,
            detail=name,
            category="e-prescribing",
        )
    return launch


@dataclass(frozen=True)
class QueuesLaunch:
    url: str
    origin: str
    connector_title: str


def open_notifications(actor) -> QueuesLaunch:
    """A launch URL of the vendor's queues (refill requests, errors) for the prescriber."""
    name, connector, clinician = _connector_and_clinician(actor)
    end_read()
    try:
        url = connector.launch_url(clinician, None)
    except IntegrationError as error:
        raise Refused(f"{connector.title} could not be reached: {error}") from error
    with use_case():
        audit.record(actor, "eprescribing.queues_opened", detail=name, category="e-prescribing")
    return QueuesLaunch(url, connector.screen_origin(), connector.title)


# The top bar asks on every page; the vendor is asked at most this often per prescriber and
# process (its GET limit is shared by the whole clinic).
COUNT_CACHE_SECONDS = 60.0
_counts: dict[tuple[str, str], tuple[float, int]] = {}
_counts_lock = threading.Lock()


def notification_total(actor) -> int | None:
    """How many items wait in the prescriber's vendor queues (None: not available)."""
    try:
        name, connector, clinician = _connector_and_clinician(actor)
    except Refused:  # not switched on, or this prescriber not linked: no count to show
        return None
    end_read()
    key = (name, clinician)
    now = time.monotonic()
    with _counts_lock:
        cached = _counts.get(key)
    if cached is not None and now - cached[0] < COUNT_CACHE_SECONDS:
        return cached[1]
    try:
        total = sum(connector.notification_counts(clinician).values())
    except IntegrationError:
        return None
    with _counts_lock:
        _counts[key] = (now, total)
    return total


# The patient's prescriptions page lists at most this many (newest first): years of a
# patient's prescriptions fit; more would be a page nobody reads.
PRESCRIPTIONS_PAGE_LIMIT = 500
# Past prescriptions shown before "Show all": the newest first. A patient with hundreds of past
# prescriptions gets a page that opens quickly (each row is a table row with its actions, most
# of the page's cost), and the rest is one link away.
PAST_SHOWN_FIRST = 50


@dataclass(frozen=True)
class PrescriptionRow:
    """One prescription on the patient's page, with what may be done to it there."""

    rx: Prescription
    prescriber_name: str | None
    may_print: bool  # its signer, after a failed transmission or without e-prescribing
    has_printout: bool  # printed, and the viewer signed it: the PDF (a copy) is theirs
    may_cancel: bool  # the pharmacy holds it: a cancel request can be sent


@dataclass(frozen=True)
class PrescriptionsPage:
    patient: Patient
    drafts: list[PrescriptionRow]  # the viewer's own drafts
    active: list[PrescriptionRow]  # open states (states.OPEN_STATES)
    past: list[PrescriptionRow]  # the newest PAST_SHOWN_FIRST, or all of them when asked
    past_total: int  # how many past prescriptions there are


def prescriptions_page(actor, patient_id: int, all_past: bool = False) -> PrescriptionsPage:
    """The patient's prescriptions page: the viewer's drafts, then the active ones, then the
    past ones (the newest ``PAST_SHOWN_FIRST`` unless ``all_past``), newest first, each with
    its prescriber; two queries however many there are (a patient may have hundreds).
    Other prescribers' drafts are theirs alone and are not listed. Audited."""
    connector = eprescribing_connector_name()
    current = or_(
        Prescription.state.in_(states.OPEN_STATES),
        and_(Prescription.state == states.DRAFT, Prescription.origin == "portal"),
    )
    newest_first = (Prescription.written_on.desc().nulls_last(), Prescription.id.desc())
    with use_case():
        patient = get_patient_for(actor, patient_id)
        listed = (
            select(Prescription, User.full_name)
            .outerjoin(User, User.id == Prescription.prescriber_id)
            .where(Prescription.patient_id == patient.id)
            .order_by(*newest_first)
        )
        found = db.session.execute(listed.where(current).limit(PRESCRIPTIONS_PAGE_LIMIT)).all()
        past_limit = PRESCRIPTIONS_PAGE_LIMIT if all_past else PAST_SHOWN_FIRST
        # The count of all past ones rides on each row shown (a window is counted before
        # the LIMIT): one round trip fewer, which a loaded database server makes costly.
        found_past = db.session.execute(
            listed.add_columns(func.count().over()).where(not_(current)).limit(past_limit)
        ).all()
        past_total = found_past[0][2] if found_past else 0
        audit.record(
            actor,
            "prescription.list_view",
            patient_id=patient.id,
            category="e-prescribing",
        )
    drafts, active, past = [], [], []
    for rx, prescriber_name, *_count in [*found, *found_past]:
        if rx.state == states.DRAFT and rx.origin == "portal":
            if rx.prescriber_id == actor.id:
                drafts.append(PrescriptionRow(rx, prescriber_name, False, False, False))
            continue
        mine = rx.origin == "portal" and rx.signed_by_id is not None and rx.signed_by_id == actor.id
        row = PrescriptionRow(
            rx,
            prescriber_name,
            may_print=mine and may_print(rx, connector),
            has_printout=mine and rx.printed_at is not None,
            may_cancel=may_cancel(rx),
        )
        (active if rx.state in states.OPEN_STATES else past).append(row)
    return PrescriptionsPage(patient, drafts, active, past, past_total)


# Why a prescription is on paper, as stored in ``print_reason`` and printed.
NO_CONNECTOR_REASON = "No e-prescribing connector"
TRANSMISSION_FAILED = "Transmission failed"
PRINT_REASON_MAX = 200


def print_reason(rx: Prescription, connector: str | None) -> str:
    """Why ``rx`` may be printed now, in the words the printout gives; or ``Refused`` saying
    why not."""
    if rx.signed_at is None:
        raise Refused("Only a signed prescription can be printed: sign it first.")
    if rx.printed_at is not None:
        raise Conflict("This prescription was already printed; open its copy instead.")
    if rx.state == states.ERROR:
        reason = rx.transmission_error or "the e-prescribing service gave no reason"
        return f"{TRANSMISSION_FAILED}: {reason}"[:PRINT_REASON_MAX]
    if rx.state == states.SIGNED and rx.vendor_id is None:
        if connector is None:
            return NO_CONNECTOR_REASON
        raise Refused(
            "E-prescribing is switched on: this prescription is sent electronically. It can "
            "be printed only if its transmission fails."
        )
    raise Refused(
        f"A prescription that is {states.label(rx.state).lower()} cannot be printed: only "
        "one whose transmission failed, or one signed without e-prescribing, is printed."
    )


def may_print(rx: Prescription, connector: str | None) -> bool:
    """Whether the list offers "Print" for ``rx`` (``print_reason``'s rule; printing itself
    checks again)."""
    try:
        print_reason(rx, connector)
    except Refused:
        return False
    return True


# States in which the pharmacy holds a prescription and may still act on it: a cancel
# request can be sent (``portal.prescriptions.cancelling`` uses the same set).
CANCELLABLE_STATES = frozenset(
    {
        states.SENT,
        states.PHARMACY_VERIFIED,
        states.FILLED,
        states.PARTIALLY_FILLED,
        states.NOT_FILLED,
        states.CANCEL_DENIED,
    }
)


def may_cancel(rx: Prescription) -> bool:
    """Whether a cancel request may be sent for ``rx`` (the list and the cancel form offer
    it; the use case checks again): the pharmacy holds it, and it was never printed."""
    return rx.vendor_id is not None and rx.printed_at is None and rx.state in CANCELLABLE_STATES


@dataclass(frozen=True)
class ExchangedMessage:
    """One message sent or received about the patient, as the chart lists it."""

    direction: str  # "sent" or "received"
    id: int
    connector: str
    kind: str  # the operation or event type
    status: str
    at: object


def messages_of(actor, patient_id: int, limit: int = 100):
    """The integration messages about this patient (newest first), without their content;
    the view is audited like any look at the chart."""
    with use_case():
        patient = get_patient_for(actor, patient_id)
        sent = db.session.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.connector,
                OutboxMessage.operation,
                OutboxMessage.status,
                OutboxMessage.created_at,
            )
            .where(OutboxMessage.patient_id == patient.id)
            .order_by(OutboxMessage.id.desc())
            .limit(limit)
        ).all()
        received = db.session.execute(
            select(
                InboxMessage.id,
                InboxMessage.connector,
                InboxMessage.event_type,
                InboxMessage.status,
                InboxMessage.received_at,
            )
            .where(InboxMessage.patient_id == patient.id)
            .order_by(InboxMessage.id.desc())
            .limit(limit)
        ).all()
        audit.record(
            actor, "integrations.messages_viewed", patient_id=patient.id, category="e-prescribing"
        )
    rows = [ExchangedMessage("sent", *row) for row in sent]
    rows += [
        ExchangedMessage("received", r[0], r[1], r[2] or "unknown", r[3], r[4]) for r in received
    ]
    rows.sort(key=lambda row: row.at, reverse=True)
    return patient, rows[:limit]


def message_content(actor, patient_id: int, direction: str, message_id: int):
    """One message's content (it holds patient data): only for this patient's messages, and
    every opening is audited."""
    model = OutboxMessage if direction == "sent" else InboxMessage
    with use_case():
        patient = get_patient_for(actor, patient_id)
        message = db.session.get(model, message_id)
        if message is None or message.patient_id != patient.id:
            raise NotFound()  # another patient's message is as good as none
        content = (
            json.dumps(message.payload, indent=2, ensure_ascii=False, sort_keys=True)
            if direction == "sent"
            else _pretty(message.body)
        )
        audit.record(
            actor,
            "integrations.payload_viewed",
            patient_id=patient.id,
            object_type=model.__tablename__,
            object_id=message.id,
            detail=message.connector,
            category="e-prescribing",
        )
        return patient, message, content


def _pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False, sort_keys=True)
    except ValueError:
        return body


def refresh_patient(name: str, connector: EPrescribingConnector, patient_id: int) -> int:
    """Re-read one patient's prescriptions from the vendor and write what changed; returns
    how many prescriptions were new or changed."""
    vendor_patient = vendor_id(name, "patient", patient_id)
    end_read()
    if vendor_patient is None:
        return 0
    since = date.today() - timedelta(days=365)
    items = connector.chart_prescriptions(vendor_patient, since)
    # The worker does this (for a webhook or the sweep), on the vendor's word.
    actor = integration(name, source=SOURCE_WORKER)
    changed = 0
    with use_case():
        lock_patient(patient_id)  # one writer per patient: no duplicate list entry
        patient = db.session.get(Patient, patient_id)
        # An approval's new prescription at the vendor is linked first (exactly one fits),
        # so the read below updates it; what still may be an approval is held back.
        held = approvals.link_awaiting(actor, name, patient_id, items)
        for item in items:
            if str(item["vendor_id"]) not in held:
                changed += _write_back(actor, name, patient, item)
    return changed


def record_vendor_read(actor, name: str, patient: Patient, item: dict) -> int:
    """One vendor prescription as read (``chart_prescriptions``' shape) written back, as the
    patient's re-read writes each: for a read made elsewhere (the Rx inbox links an approval
    from the read its delivery made). The caller holds the patient's row."""
    return _write_back(actor, name, patient, item)


def _write_back(actor, name: str, patient: Patient, item: dict) -> int:
    """Insert or update one vendor prescription; a new, live one goes on the medication list.
    Returns 1 when something changed."""
    row = db.session.scalars(
        select(Prescription).where(
            Prescription.connector == name, Prescription.vendor_id == str(item["vendor_id"])
        )
    ).first()
    if row is None:
        row = _portal_prescription_carrying(name, patient, item)
    values = {
        "drug": item["drug"][:300],
        "rxcui": item.get("rxcui"),
        "ndc": item.get("ndc"),
        "quantity": item.get("quantity"),
        "refills": item.get("refills"),
        "days_supply": item.get("days_supply"),
        "directions": item.get("directions"),
        "status": item["status"],
        "medication_status": item.get("medication_status"),
        "fhir_status": item["fhir_status"],
        "written_on": item.get("written_on"),
    }
    if row is not None and row.origin == "portal":
        # Composed and signed here: the vendor's read moves only the statuses (what was signed
        # is fixed, by triggers too).
        values = {key: values[key] for key in ("status", "medication_status", "fhir_status")}
        if values["status"] in ("Error", "EpcsError"):
            values["transmission_error"] = item.get("error_details") or (
                f"{name} reports a transmission error without a reason."
            )
        elif item.get("error_details") is None:
            values["transmission_error"] = None
    values["state"] = state_from_vendor(values["status"], values["medication_status"])
    values.update(_fill_values(row, item))
    if row is not None and row.printed_at is not None:
        values["state"] = states.PRINTED  # printed is for good, whatever the vendor says
    prescriber = item.get("prescriber_vendor_id")
    if row is None:
        row = Prescription(
            patient_id=patient.id, connector=name, vendor_id=str(item["vendor_id"]), origin="vendor"
        )
        row.prescriber_id = local_id(name, "clinician", prescriber) if prescriber else None
        db.session.add(row)
        action = "prescription.recorded"
    elif all(getattr(row, key) == value for key, value in values.items()):
        return 0
    else:
        action = "prescription.updated"
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    db.session.flush()
    if row.medication_id is None and row.fhir_status not in ("entered-in-error",):
        medication = record_prescribed_medication(
            actor,
            patient,
            {
                "drug": row.drug,
                "rxnorm_code": row.rxcui,
                "frequency": (row.directions or "")[:100],
                "start_date": row.written_on,
                "prescriber": _prescriber_name(row.prescriber_id),
            },
        )
        row.medication_id = medication.id
    audit.record(
        actor,
        action,
        patient_id=patient.id,
        obj=row,
        detail=f"{name} {row.vendor_id} {row.status}",
        category="e-prescribing",
    )
    return 1


FILL_STATUSES = ("FullFill", "PartialFill")


def _fill_values(row: Prescription | None, item: dict) -> dict:
    """The fill columns after this read: the vendor's last fill date as it gave it, the day
    of it, and one more fill counted when that date is new and the pharmacy reports a
    (full or partial) fill. Reads repeat (webhooks are hints, the sweep re-reads), so a fill
    is counted once per distinct date, never per read."""
    reported = item.get("last_fill")
    if not reported or (row is not None and row.last_fill_reported == reported):
        return {}
    counted = (row.fills or 0) if row is not None else 0
    if item.get("medication_status") in FILL_STATUSES or counted == 0:
        counted += 1
    return {
        "last_fill_reported": reported[:40],
        "last_filled_on": _day_of(reported),
        "fills": counted,
    }


def _day_of(value: str) -> date | None:
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _portal_prescription_carrying(name: str, patient: Patient, item: dict):
    """The prescription composed here that the vendor's item carries our id of ("rx-<id>"),
    not yet linked to it: the vendor's read can arrive before the send's outcome is
    recorded, and must land on the same row, never make a second one. The link is made
    here (the outcome then finds it made)."""
    ours = item.get("ours") or ""
    if not ours.startswith("rx-") or not ours[3:].isdigit():
        return None
    row = db.session.get(Prescription, int(ours[3:]))
    if row is None or row.origin != "portal" or row.patient_id != patient.id:
        return None
    linked = (row.connector, row.vendor_id)
    if row.vendor_id is not None and linked != (name, str(item["vendor_id"])):
        return None
    if row.printed_at is not None:  # printed: never transmitted, never linked to a send
        return None
    row.connector, row.vendor_id = name, str(item["vendor_id"])
    return row


def _prescriber_name(user_id: int | None) -> str | None:
    if user_id is None:
        return None
    return db.session.scalar(select(User.full_name).where(User.id == user_id))


def handle_event(connector: EPrescribingConnector, event_type: str, data: dict) -> int | None:
    """The inbox handler: any event about a patient's prescriptions is a hint to re-read
    them (events carry no reliable state of their own). Returns our patient's id."""
    name = connector.name
    vendor_patient = connector.event_patient_id(data)
    if vendor_patient is None:
        return None
    patient_id = local_id(name, "patient", vendor_patient)
    if patient_id is None:
        log.info("%s event %s for a patient not known here: ignored", name, event_type)
        return None
    refresh_patient(name, connector, patient_id)
    return patient_id


def sweep(limit: int = 200) -> str | None:
    """Re-read the patients with open activity: prescriptions not yet final, a launch in
    the last day (what the prescriber did there may have been missed), or an approval whose
    prescription at the vendor is not linked yet."""
    name = eprescribing_connector_name()
    if name is None:
        return None
    connector = active_connectors(include_paused=True)[name]
    recent = utcnow() - RECENT_LAUNCH
    open_patients = set(
        db.session.scalars(
            select(Prescription.patient_id)
            .where(
                Prescription.connector == name,
                Prescription.fhir_status.not_in(FINAL_FHIR_STATUSES),
                # No vendor status yet (an approval just linked to the vendor's prescription)
                # is open too: NULL != 'PharmacyVerified' is not true in SQL.
                or_(Prescription.status.is_(None), Prescription.status != "PharmacyVerified"),
            )
            .distinct()
            .limit(limit)
        )
    )
    open_patients |= set(
        db.session.scalars(
            select(ExternalId.local_id)
            .where(
                ExternalId.connector == name,
                ExternalId.kind == "patient",
                ExternalId.updated_at >= recent,
            )
            .limit(limit)
        )
    )
    # Approvals whose prescription at the vendor is not linked yet: the match is tried again.
    open_patients |= set(approvals.patients_awaiting(name, limit))
    end_read()
    changed = 0
    for patient_id in sorted(open_patients):
        try:
            changed += refresh_patient(name, connector, patient_id)
        except IntegrationError as error:
            log.warning("%s sweep: patient %s not re-read: %s", name, patient_id, error)
    if changed:
        return f"e-prescribing sweep: {changed} prescriptions updated"
    return None


# --- the prescriber's EPCS credential at the vendor ------------------------------------------


@dataclass(frozen=True)
class EpcsCredentialState:
    connector: str | None  # the enabled e-prescribing connector, if any
    on_file: bool


def epcs_credential_state(actor) -> EpcsCredentialState:
    """Whether the actor has an EPCS credential on file for the enabled connector."""
    name = eprescribing_connector_name()
    on_file = bool(name) and epcs_credentials.has_credential(name, actor.id)
    end_read()
    return EpcsCredentialState(name, on_file)


def set_epcs_credential(actor, pin: str, otp_secret: str, totp_code: str) -> None:
    """The prescriber stores (or replaces) their own EPCS credential at the enabled
    connector, after a fresh code from their authenticator (its own use case first, as at
    signing). Audited; the values are never shown back or logged."""
    name = eprescribing_connector_name()
    if name is None:
        raise Refused("E-prescribing is not enabled in this clinic.")
    confirm_factors(actor.id, totp_code=totp_code, purpose="EPCS credential", source=actor.source)
    with use_case():
        epcs_credentials.set_credential(actor, name, pin, otp_secret)
