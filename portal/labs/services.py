"""The labs' use cases for results: receive a raw HL7 message (stored before it is
acknowledged), file its results (matched to an order or a patient, or queued), attach a
queued message's results to a patient, and retry what failed.

Receiving and filing are two use cases on purpose. ``receive`` only reads the message in
memory and stores it with the answer it gets; its commit is what lets the listener send the
ACK, so an acknowledged message is never lost. ``file_message`` then works from the stored
copy: if it fails (a bug, the database going away), the message stays stored and marked
``failed`` and ``process_pending`` (the listener's start, the worker, ``flask lab-process``)
files it later. A message is claimed by a conditional UPDATE, so two processes never file
it twice, and a resent duplicate is answered from the stored row and never filed again.

Matching (issue 12, section 3): by the placer order number when it names one of our orders
(and the message's identifiers, when it has any, must be that order's patient's); otherwise
by MRN and date of birth together, with the family name as a check. Anything else (unknown
MRN, birth date missing or different, two candidates, another name, an order of another
patient) goes to the unmatched queue with the reason; nothing is attached by a guess.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer
from werkzeug.exceptions import NotFound

from portal.actors import Actor, integration
from portal.audit import services as audit
from portal.clinic.clock import clinic_zone
from portal.extensions import db
from portal.labs.hl7 import ack, oru
from portal.labs.models import (
    FAILED,
    PROCESSED,
    RECEIVED,
    REJECTED,
    LabMessage,
    LabOrder,
    LabResult,
    UnmatchedResult,
    review_rank_of,
)
from portal.patients.models import Patient
from portal.patients.services import get_patient_for
from portal.terminology import lab_tests
from portal.timeutil import utcnow
from portal.transaction import Conflict, use_case

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
DEFAULT_CONNECTOR = "hl7lab"


class DuplicateMessage(Conflict):
    """The same sender's control id is stored already (the lab resent it)."""

    def __init__(self) -> None:
        super().__init__("this message was received before")


class NotStored(Exception):
    """A message the database would not store: it must not be acknowledged."""


@dataclass(frozen=True)
class Received:
    """What ``receive`` stored and what to answer."""

    message_id: int
    ack_code: str
    ack: str
    duplicate: bool

    @property
    def to_file(self) -> bool:
        return self.ack_code == "AA" and not self.duplicate


def _ack_for(header: oru.Header, ack_code: str, problem: ack.Problem | None, ack_id: str) -> str:
    return ack.build_ack(
        ack_code=ack_code,
        control_id=header.control_id,
        version=header.version,
        receiving_application=header.sending_application,
        receiving_facility=header.sending_facility,
        trigger=header.trigger or "R01",
        problem=problem,
        ack_control_id=ack_id,
    )


def _stored_row(raw: bytes, reading: oru.Reading, connector: str) -> dict:
    """The ``lab_messages`` row of an inbound message, as ``receive`` stores it."""
    header = reading.header
    control_id = header.control_id[:199] or None
    problem = reading.problem
    return {
        "direction": "in",
        "connector": connector,
        # With a control id, an empty facility still deduplicates ('' is a value, NULL is not).
        "sending_facility": header.sending_facility[:227] if control_id else None,
        "control_id": control_id,
        "message_type": f"{header.message_type}^{header.trigger}".strip("^")[:32] or None,
        "version": header.version[:16] or None,
        "raw": raw,
        "received_at": utcnow(),
        "state": RECEIVED if problem is None else REJECTED,
        "ack_code": reading.ack_code,
        "error": problem.text[:500] if problem else None,
        "attempts": 0,
    }


def _answer(reading: oru.Reading, message_id: int) -> Received:
    return Received(
        message_id=message_id,
        ack_code=reading.ack_code,
        ack=_ack_for(reading.header, reading.ack_code, reading.problem, f"A{message_id}"),
        duplicate=False,
    )


def receive(
    raw: bytes, *, connector: str = DEFAULT_CONNECTOR, reading: oru.Reading | None = None
) -> Received:
    """Store an inbound message with the answer it gets, and return the ACK to send.

    One use case: when it returns, the raw message is committed. A duplicate (same sending
    facility and control id) is answered as the first one was, and not stored again.
    ``reading``: the message read already (``oru.read_message(raw)``), to read it once."""
    reading = reading or oru.read_message(raw)
    row = _stored_row(raw, reading, connector)
    try:
        with use_case(conflict=DuplicateMessage()):
            message = LabMessage(**row)
            db.session.add(message)
            db.session.flush()
            message_id = message.id
    except DuplicateMessage as duplicate:
        db.session.rollback()
        stored_id = db.session.scalar(
            select(LabMessage.id).where(
                LabMessage.direction == "in",
                LabMessage.sending_facility == row["sending_facility"],
                LabMessage.control_id == row["control_id"],
                LabMessage.ack_code == "AA",
            )
        )
        db.session.rollback()
        if stored_id is None:  # the database refused it for another reason: not stored
            raise NotStored("refused by the database, not stored") from duplicate
        return Received(
            message_id=stored_id,
            ack_code="AA",
            ack=_ack_for(reading.header, "AA", None, f"A{stored_id}"),
            duplicate=True,
        )
    return _answer(reading, message_id)


def receive_many(
    items: list[tuple[bytes, oru.Reading]], *, connector: str = DEFAULT_CONNECTOR
) -> list[Received | None]:
    """Store several inbound messages (each with its reading) in one transaction: the
    listener's group commit. Messages that arrive on several connections while the previous
    commit is under way wait for the next one, so a burst costs one commit (one disk flush)
    instead of one each; every message is committed when this returns, so each may be
    acknowledged. One multi-row INSERT through Core (no ORM unit of work on the hot path),
    its ids returned in the order of ``items``.

    A duplicate among them (a lab resending what is stored, or the same message twice in
    one batch) makes the INSERT fail as a whole: the batch is then stored one message at a
    time by ``receive``, which answers duplicates as before (resends are rare, so the slow
    way is the exception). None in the answer: that message could not be stored (the
    database refused it) and must not be acknowledged; the others are stored."""
    if not items:
        return []
    rows = [_stored_row(raw, reading, connector) for raw, reading in items]
    table = LabMessage.__table__
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    try:
        with use_case():
            ids = db.session.execute(statement, rows).scalars().all()
    except IntegrityError:
        db.session.rollback()
        return [_receive_alone(raw, reading, connector) for raw, reading in items]
    readings = [reading for _raw, reading in items]
    return [_answer(reading, message_id) for reading, message_id in zip(readings, ids, strict=True)]


def _receive_alone(raw: bytes, reading: oru.Reading, connector: str) -> Received | None:
    try:
        return receive(raw, connector=connector, reading=reading)
    except Exception as error:
        db.session.rollback()
        log.warning("an inbound lab message could not be stored: %s", type(error).__name__)
        return None


def keep_unfinished(data: bytes, why: str, *, connector: str = DEFAULT_CONNECTOR) -> int:
    """Keep bytes that never became a whole message (a connection closed inside a frame):
    no ACK was sent, so the lab sends the message again; these bytes are kept for the
    record with no control id, so they never pass for that message."""
    with use_case():
        message = LabMessage(
            direction="in",
            connector=connector,
            raw=data,
            received_at=utcnow(),
            state=REJECTED,
            error=why[:500],
            attempts=0,
        )
        db.session.add(message)
        db.session.flush()
        return message.id


def file_message(message_id: int, *, zone: ZoneInfo | None = None) -> str | None:
    """File a stored message's results (one use case). Returns the message's new state, or
    None when another process has it or it was filed already. A failure marks the message
    ``failed`` (kept, retried) and is logged by type only."""
    zone = zone or clinic_zone()
    try:
        with use_case():
            claimed = db.session.execute(
                update(LabMessage)
                .where(LabMessage.id == message_id, LabMessage.state.in_((RECEIVED, FAILED)))
                .values(
                    state=PROCESSED,
                    processed_at=utcnow(),
                    attempts=LabMessage.attempts + 1,
                    error=None,
                )
            ).rowcount
            if not claimed:
                return None
            message = db.session.get(LabMessage, message_id)
            reading = oru.read_message(message.raw)
            if reading.problem is not None:  # stored as accepted, yet unreadable now
                message.state = REJECTED
                message.error = reading.problem.text[:500]
                return REJECTED
            _file_results(message, reading, zone)
            return PROCESSED
    except Exception as error:
        log.warning("lab message %s could not be filed: %s", message_id, type(error).__name__)
        with use_case():
            db.session.execute(
                update(LabMessage)
                .where(LabMessage.id == message_id, LabMessage.state.in_((RECEIVED, FAILED)))
                .values(
                    state=FAILED,
                    attempts=LabMessage.attempts + 1,
                    error=f"filing failed: {type(error).__name__}",
                )
            )
        return FAILED


def file_many(
    items: list[tuple[int, oru.Reading | None]], *, zone: ZoneInfo | None = None
) -> dict[int, str | None]:
    """File several stored messages in one use case (the listener's filer: one commit for
    a batch instead of one each), each by ``_file_results`` as ``file_message`` files it.
    ``items``: (message id, its reading when the caller has it, else None: read from the
    stored copy). Returns each message's new state, None for one another process has.

    Claimed together by one conditional UPDATE, so nothing is filed twice. If filing any
    of them raises, the whole batch rolls back and each is filed on its own by
    ``file_message``, which keeps a failing one ``failed`` (retried) without holding back
    the others."""
    if not items:
        return {}
    zone = zone or clinic_zone()
    readings = dict(items)
    outcomes: dict[int, str | None] = dict.fromkeys(readings)
    try:
        with use_case():
            claimed = set(
                db.session.scalars(
                    update(LabMessage)
                    .where(
                        LabMessage.id.in_(list(readings)),
                        LabMessage.state.in_((RECEIVED, FAILED)),
                    )
                    .values(
                        state=PROCESSED,
                        processed_at=utcnow(),
                        attempts=LabMessage.attempts + 1,
                        error=None,
                    )
                    .returning(LabMessage.id)
                    .execution_options(synchronize_session=False)
                )
            )
            if not claimed:
                return outcomes
            messages = db.session.scalars(
                select(LabMessage)
                .options(defer(LabMessage.raw))
                .where(LabMessage.id.in_(claimed))
                .order_by(LabMessage.id)
            ).all()
            for message in messages:
                reading = readings[message.id] or oru.read_message(message.raw)
                if reading.problem is not None:  # stored as accepted, yet unreadable now
                    message.state = REJECTED
                    message.error = reading.problem.text[:500]
                    outcomes[message.id] = REJECTED
                    continue
                _file_results(message, reading, zone)
                outcomes[message.id] = PROCESSED
    except Exception as error:
        log.info("lab messages filed one by one after %s", type(error).__name__)
        db.session.rollback()
        return {message_id: file_message(message_id, zone=zone) for message_id in readings}
    return outcomes


def process_pending(limit: int = 100, *, zone: ZoneInfo | None = None) -> tuple[int, int]:
    """File stored messages still waiting (the filer stopped between ACK and filing) or
    failed (fewer than ``MAX_ATTEMPTS`` times), oldest first: (filed, failed)."""
    ids = db.session.scalars(
        select(LabMessage.id)
        .where(
            LabMessage.direction == "in",
            LabMessage.state.in_((RECEIVED, FAILED)),
            LabMessage.attempts < MAX_ATTEMPTS,
        )
        .order_by(LabMessage.id)
        .limit(limit)
    ).all()
    db.session.rollback()
    filed = failed = 0
    for message_id in ids:
        outcome = file_message(message_id, zone=zone)
        filed += outcome == PROCESSED
        failed += outcome == FAILED
    return filed, failed


# --- filing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    patient_id: int | None
    order: LabOrder | None = None
    reason: str | None = None  # set when unmatched
    detail: str | None = None
    candidates: tuple[int, ...] = ()


def _plain(name: str) -> str:
    """A name compared without case, accents, spaces, hyphens or apostrophes."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(ch for ch in decomposed if ch.isalnum()).casefold()


def match_patient(identity: oru.PatientIdentity, placer_order_number: str) -> Match:
    """Which patient (and order) a result group belongs to, or why none (module notes)."""
    order = None
    if placer_order_number:
        order = db.session.scalars(
            select(LabOrder).where(LabOrder.placer_order_number == placer_order_number[:22])
        ).first()
    if order is not None:
        patient = db.session.get(Patient, order.patient_id)
        mrns = identity.mrns
        if mrns and patient.mrn not in mrns:
            return Match(
                None,
                reason="order_patient_differs",
                detail="the order is another patient's than the message's identifiers",
                candidates=(patient.id,),
            )
        if identity.birth_date and identity.birth_date != patient.birth_date:
            return Match(
                None,
                reason="birth_date_differs",
                detail="the message's date of birth is not the order's patient's",
                candidates=(patient.id,),
            )
        return Match(patient.id, order=order)
    mrns = identity.mrns
    if not mrns:
        return Match(None, reason="no_identifier", detail="no MRN in PID-3")
    found = db.session.scalars(select(Patient).where(Patient.mrn.in_(mrns))).all()
    if not found:
        return Match(None, reason="unknown_mrn", detail="no patient has this MRN")
    if len(found) > 1:
        return Match(
            None,
            reason="two_candidates",
            detail="the message's identifiers name more than one patient",
            candidates=tuple(sorted(p.id for p in found)),
        )
    patient = found[0]
    if identity.birth_date is None:
        return Match(
            None,
            reason="no_birth_date",
            detail="no date of birth to confirm the MRN",
            candidates=(patient.id,),
        )
    if identity.birth_date != patient.birth_date:
        return Match(
            None,
            reason="birth_date_differs",
            detail="the MRN's patient has another date of birth",
            candidates=(patient.id,),
        )
    if identity.family_name and _plain(identity.family_name) != _plain(patient.family_name):
        return Match(
            None,
            reason="name_differs",
            detail="the MRN's patient has another family name",
            candidates=(patient.id,),
        )
    return Match(patient.id)


def _utc(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A lab's time in UTC: as given when it carries an offset, else the clinic's wall time."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(ZoneInfo("UTC"))


def _order_test_for(order: LabOrder, group: oru.ResultGroup, observation: oru.Observation):
    """The order's test this observation reports: the OBR's code (LOINC or the lab's own),
    else the test whose panel lists the observation's LOINC code, else the test itself."""
    for test in order.tests:
        if group.code and group.code in (test.loinc, test.lab_code):
            return test
    loinc = observation.loinc
    for test in order.tests:
        catalog_test = lab_tests.get(test.loinc)
        if loinc and (loinc == test.loinc or (catalog_test and loinc in catalog_test.members)):
            return test
    return None


def _current_results_of(
    patient_id: int | None,
    sending_facility: str | None,
    order_id: int | None,
    filler_order_number: str | None,
) -> dict:
    """The current results a new result group may replace, by (code, sub-id): the same
    patient's, from the same sending lab, of the same order (or, with no order, of the same
    filler order number). Only a known patient's: an unmatched result replaces nothing, and
    another patient's (or another lab's) results with the same filler number are never
    touched. One query per result group; none when there is nothing to key on."""
    if patient_id is None or (order_id is None and not filler_order_number):
        return {}
    query = (
        select(LabResult)
        .join(LabMessage, LabMessage.id == LabResult.message_id)
        .where(
            LabResult.superseded_at.is_(None),
            LabResult.patient_id == patient_id,
            LabMessage.sending_facility.is_not_distinct_from(sending_facility),
        )
    )
    if order_id is not None:
        query = query.where(LabResult.order_id == order_id)
    else:
        query = query.where(LabResult.filler_order_number == filler_order_number)
    return {(row.code, row.sub_id): row for row in db.session.scalars(query.order_by(LabResult.id))}


def _file_results(message: LabMessage, reading: oru.Reading, zone: ZoneInfo) -> None:
    actor = integration(message.connector, source="mllp")
    now = utcnow()
    performing_default = reading.header.sending_facility[:200] or None
    orders_touched: dict[int, LabOrder] = {}
    for group in reading.groups:
        found = match_patient(reading.patient, group.placer_order_number)
        unmatched = None
        if found.patient_id is None:
            unmatched = UnmatchedResult(
                message_id=message.id,
                reason=found.reason,
                detail=found.detail,
                candidate_patient_ids=" ".join(map(str, found.candidates)) or None,
                placer_order_number=group.placer_order_number[:22] or None,
                created_at=now,
            )
            db.session.add(unmatched)
            db.session.flush()
        order_id = found.order.id if found.order else None
        filler = group.filler_order_number[:50] or None
        current = _current_results_of(found.patient_id, message.sending_facility, order_id, filler)
        for observation in group.observations:
            order_test = _order_test_for(found.order, group, observation) if found.order else None
            notes = observation.notes + group.notes
            result = LabResult(
                message_id=message.id,
                patient_id=found.patient_id,
                order_id=order_id,
                order_test_id=order_test.id if order_test else None,
                unmatched_id=unmatched.id if unmatched else None,
                filler_order_number=filler,
                loinc=observation.loinc,
                code=observation.code or "?",
                code_system=observation.code_system or None,
                sub_id=observation.sub_id or None,
                name=observation.name or observation.code or "Result",
                value_type=observation.value_type,
                value_text=observation.value_text,
                value_numeric=observation.value_numeric,
                units=observation.units,
                reference_range=observation.reference_range,
                abnormal_flag=observation.abnormal_flag,
                review_rank=review_rank_of(observation.abnormal_flag),
                reviewer_id=found.order.ordering_provider_id if found.order else None,
                status=observation.status,
                observed_at=_utc(observation.observed_at, zone),
                performing_lab=observation.performing_lab or performing_default,
                notes="\n".join(notes) or None,
                received_at=now,
            )
            earlier = current.get((result.code, result.sub_id))
            if earlier is not None:  # a later result of the same observation replaces it
                if earlier.id is None:  # one of this message's own (P then F in one message)
                    db.session.flush()
                result.supersedes_id = earlier.id
                earlier.superseded_at = now
            current[(result.code, result.sub_id)] = result
            db.session.add(result)
        if found.order is not None:
            orders_touched[found.order.id] = found.order
        if unmatched is not None:
            audit.record(
                actor,
                "lab.results_unmatched",
                obj=unmatched,
                category="labs",
                detail=f"message {message.id}; {found.reason}",
            )
        else:
            audit.record(
                actor,
                "lab.results_filed",
                patient_id=found.patient_id,
                obj=found.order or message,
                category="labs",
                detail=f"message {message.id}; {len(group.observations)} results",
            )
    db.session.flush()
    for order in orders_touched.values():
        _update_order_status(order)


def _update_order_status(order: LabOrder) -> None:
    """Resulted when every test has a current final (or corrected, or cancelled) result;
    partially resulted when some results came. A cancelled order stays cancelled; a reviewed
    one that gets a correction goes back to resulted (the correction waits for review)."""
    if order.status == "cancelled":
        return
    # Two messages of one order filed at once (a lab reports each test on its own
    # connection): the second waits here for the first's commit and then counts its results
    # too; without the lock each counted only its own and both left "partially_resulted".
    # FOR NO KEY UPDATE: the results' foreign keys hold KEY SHARE on the order, which FOR
    # UPDATE would wait on (a deadlock between the two); the status UPDATE needs no more.
    db.session.execute(
        select(LabOrder.id).where(LabOrder.id == order.id).with_for_update(key_share=True)
    )
    statuses = db.session.execute(
        select(LabResult.order_test_id, LabResult.status).where(
            LabResult.order_id == order.id, LabResult.superseded_at.is_(None)
        )
    ).all()
    final_tests = {test_id for test_id, status in statuses if status in ("F", "C", "X")}
    every_test_final = all(test.id in final_tests for test in order.tests)
    order.status = "resulted" if statuses and every_test_final else "partially_resulted"


# --- the unmatched queue --------------------------------------------------------------------


class AttachedAlready(Conflict):
    """Someone attached the queued results meanwhile (two people at once)."""

    def __init__(self) -> None:
        super().__init__("These results were attached already.")


def _order_test_of(order: LabOrder, result: LabResult):
    """The order's test a queued result reports (its OBR is not kept, so by the result's own
    code): the test's LOINC or lab code, else the test whose panel lists the result's LOINC."""
    for test in order.tests:
        if result.code in (test.loinc, test.lab_code) or (
            result.loinc and result.loinc == test.loinc
        ):
            return test
    for test in order.tests:
        catalog_test = lab_tests.get(test.loinc)
        if result.loinc and catalog_test and result.loinc in catalog_test.members:
            return test
    return None


def attach_unmatched(actor: Actor, unmatched_id: int, patient_id: int) -> UnmatchedResult:
    """Attach a queued message's results to the patient a person chose (audited), and to
    that patient's order when the message named one (the order's status follows, as when
    filed). Refused when someone attached them already; the queue item is claimed by a
    conditional UPDATE, so of two people attaching at once only one succeeds."""
    with use_case():
        unmatched = db.session.get(UnmatchedResult, unmatched_id)
        if unmatched is None:
            raise NotFound()
        if unmatched.resolved_at is not None:
            raise AttachedAlready()
        patient = get_patient_for(actor, patient_id)
        claimed = db.session.execute(
            update(UnmatchedResult)
            .where(UnmatchedResult.id == unmatched.id, UnmatchedResult.resolved_at.is_(None))
            .values(resolved_at=utcnow(), resolved_by_id=actor.id, patient_id=patient.id)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            raise AttachedAlready()
        db.session.refresh(unmatched)
        order = None
        if unmatched.placer_order_number:
            order = db.session.scalars(
                select(LabOrder).where(
                    LabOrder.placer_order_number == unmatched.placer_order_number,
                    LabOrder.patient_id == patient.id,
                )
            ).first()
        queued = db.session.scalars(
            select(LabResult).where(LabResult.unmatched_id == unmatched.id)
        ).all()
        for result in queued:
            result.patient_id = patient.id
            if order is not None:
                result.order_id = order.id
                result.reviewer_id = order.ordering_provider_id
                order_test = _order_test_of(order, result)
                result.order_test_id = order_test.id if order_test else None
        db.session.flush()
        if order is not None:
            _update_order_status(order)
        audit.record(
            actor,
            "lab.unmatched_attached",
            patient=patient,
            obj=unmatched,
            category="labs",
            detail=f"reason {unmatched.reason}",
        )
    return unmatched
