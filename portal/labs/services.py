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

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer, selectinload
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
            _file_results([(message, reading)], zone)
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
            filings = []
            for message in messages:
                reading = readings[message.id] or oru.read_message(message.raw)
                if reading.problem is not None:  # stored as accepted, yet unreadable now
                    message.state = REJECTED
                    message.error = reading.problem.text[:500]
                    outcomes[message.id] = REJECTED
                    continue
                filings.append((message, reading))
                outcomes[message.id] = PROCESSED
            _file_results(filings, zone)
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
    return match_patients([(identity, placer_order_number)])[0]


def match_patients(groups: list[tuple[oru.PatientIdentity, str]]) -> list[Match]:
    """``match_patient`` for a batch's result groups (each its identity and placer order
    number): the orders named and the patients they or the MRNs name are read in one query
    each, then every group is matched by the same rules as alone."""
    placers = {placer[:22] for _identity, placer in groups if placer}
    orders: dict[str, LabOrder] = {}
    if placers:
        for order in db.session.scalars(
            select(LabOrder)
            .options(selectinload(LabOrder.tests))
            .where(LabOrder.placer_order_number.in_(placers))
        ):
            orders[order.placer_order_number] = order
    patient_ids = {order.patient_id for order in orders.values()}
    mrns = {mrn for identity, _placer in groups for mrn in identity.mrns}
    by_id: dict[int, Patient] = {}
    by_mrn: dict[str, list[Patient]] = {}
    if patient_ids or mrns:
        for patient in db.session.scalars(
            select(Patient).where(or_(Patient.id.in_(patient_ids), Patient.mrn.in_(mrns)))
        ):
            by_id[patient.id] = patient
            by_mrn.setdefault(patient.mrn, []).append(patient)
    matches = []
    for identity, placer in groups:
        order = orders.get(placer[:22]) if placer else None
        if order is not None:
            matches.append(_match_order(identity, order, by_id[order.patient_id]))
        else:
            found = {p.id: p for mrn in identity.mrns for p in by_mrn.get(mrn, ())}
            matches.append(_match_mrn(identity, list(found.values())))
    return matches


def _match_order(identity: oru.PatientIdentity, order: LabOrder, patient: Patient) -> Match:
    """A group that names one of our orders: the order's patient, if the message agrees."""
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


def _match_mrn(identity: oru.PatientIdentity, found: list[Patient]) -> Match:
    """A group with no order of ours: the patient its MRNs name (``found``), confirmed by
    the date of birth and checked against the family name."""
    if not identity.mrns:
        return Match(None, reason="no_identifier", detail="no MRN in PID-3")
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


class _CurrentResults:
    """The current results a new result may replace, for a whole batch: a result group's are
    the same patient's, from the same sending lab, of the same order (or, with no order, of
    the same filler order number). Only a known patient's: an unmatched result replaces
    nothing, and another patient's (or another lab's) results with the same filler number
    are never touched.

    Read in one query for the batch; the batch's own new results join them as they are
    made (a correction in the same batch, or a P then an F in one message, replaces the
    earlier one as it would have had that been filed and committed first). A result is
    ``("db", id)`` or ``("new", index in the batch's rows)``; the last current one of a
    key and (code, sub-id) is the one replaced, as when read ordered by id."""

    def __init__(self, keys: list[tuple[int, str | None, int | None, str | None]]) -> None:
        self._by_key: dict[tuple, list[tuple[str, int]]] = {}
        self.superseded: set[tuple[str, int]] = set()
        patient_ids = {key[0] for key in keys}
        order_ids = {key[2] for key in keys if key[2] is not None}
        fillers = {key[3] for key in keys if key[2] is None}
        if not patient_ids:
            return
        by_order_or_filler = []
        if order_ids:
            by_order_or_filler.append(LabResult.order_id.in_(order_ids))
        if fillers:
            by_order_or_filler.append(LabResult.filler_order_number.in_(fillers))
        rows = db.session.execute(
            select(
                LabResult.id,
                LabResult.patient_id,
                LabMessage.sending_facility,
                LabResult.order_id,
                LabResult.filler_order_number,
                LabResult.code,
                LabResult.sub_id,
            )
            .join(LabMessage, LabMessage.id == LabResult.message_id)
            .where(
                LabResult.superseded_at.is_(None),
                LabResult.patient_id.in_(patient_ids),
                or_(*by_order_or_filler),
            )
            .order_by(LabResult.id)
        )
        for row in rows:
            self.add(("db", row.id), row[1], row[2], row[3], row[4], row.code, row.sub_id)

    def add(self, handle, patient_id, facility, order_id, filler, code, sub_id) -> None:
        """A current result, findable by its order and by its filler order number (with
        neither, by its code alone: a group's own results, in a group's own index)."""
        keys = [key for key in (("order", order_id), ("filler", filler)) if key[1] is not None]
        for key in keys or [("none", None)]:
            self._by_key.setdefault((patient_id, facility, *key, code, sub_id), []).append(handle)

    def latest(self, patient_id, facility, order_id, filler, code, sub_id):
        """The result a new one of this key replaces, or None."""
        if order_id is not None:
            key = ("order", order_id)
        else:
            key = ("filler", filler) if filler is not None else ("none", None)
        for handle in reversed(self._by_key.get((patient_id, facility, *key, code, sub_id), ())):
            if handle not in self.superseded:
                return handle
        return None


def _file_results(filings: list[tuple[LabMessage, oru.Reading]], zone: ZoneInfo) -> None:
    """File the results of a batch of claimed messages (each with its reading) in the
    caller's transaction, as filing each alone in turn would, in a few statements for the
    whole batch: the orders and patients read in one query each, the results a correction
    replaces in one, then one INSERT each for the unmatched queue's rows, the results and
    the audit events, and the touched orders' statuses."""
    now = utcnow()
    groups = [(message, reading, group) for message, reading in filings for group in reading.groups]
    matches = match_patients(
        [(reading.patient, group.placer_order_number) for _m, reading, group in groups]
    )
    keys = [
        (
            found.patient_id,
            message.sending_facility,
            found.order.id if found.order else None,
            group.filler_order_number[:50] or None,
        )
        for (message, _r, group), found in zip(groups, matches, strict=True)
        if found.patient_id is not None
    ]
    current = _CurrentResults([key for key in keys if key[2] is not None or key[3] is not None])
    unmatched_rows = [
        {
            "message_id": message.id,
            "reason": found.reason,
            "detail": found.detail,
            "candidate_patient_ids": " ".join(map(str, found.candidates)) or None,
            "placer_order_number": group.placer_order_number[:22] or None,
            "created_at": now,
        }
        for (message, _r, group), found in zip(groups, matches, strict=True)
        if found.patient_id is None
    ]
    unmatched_ids = iter(_insert_returning_ids(UnmatchedResult, unmatched_rows))
    rows: list[dict] = []
    supersedes_new: list[tuple[int, int]] = []  # (row, row it replaces), both of this batch
    superseded_ids: list[int] = []  # results stored before that this batch replaces
    events: dict[str, list[dict]] = {}  # by connector: its integration is the actor
    orders_touched: dict[int, LabOrder] = {}
    for (message, reading, group), found in zip(groups, matches, strict=True):
        unmatched_id = next(unmatched_ids) if found.patient_id is None else None
        order = found.order
        order_id = order.id if order else None
        filler = group.filler_order_number[:50] or None
        performing_default = reading.header.sending_facility[:200] or None
        facility = message.sending_facility
        keyed = found.patient_id is not None and (order_id is not None or filler is not None)
        # With nothing to key on, only this group's own results replace one another.
        local = _CurrentResults([]) if not keyed else current
        for observation in group.observations:
            order_test = _order_test_for(order, group, observation) if order else None
            code = observation.code or "?"
            sub_id = observation.sub_id or None
            index = len(rows)
            row = {
                "message_id": message.id,
                "patient_id": found.patient_id,
                "order_id": order_id,
                "order_test_id": order_test.id if order_test else None,
                "unmatched_id": unmatched_id,
                "filler_order_number": filler,
                "loinc": observation.loinc,
                "code": code,
                "code_system": observation.code_system or None,
                "sub_id": sub_id,
                "name": observation.name or observation.code or "Result",
                "value_type": observation.value_type,
                "value_text": observation.value_text,
                "value_numeric": observation.value_numeric,
                "units": observation.units,
                "reference_range": observation.reference_range,
                "abnormal_flag": observation.abnormal_flag,
                "review_rank": review_rank_of(observation.abnormal_flag),
                "reviewer_id": order.ordering_provider_id if order else None,
                "status": observation.status,
                "observed_at": _utc(observation.observed_at, zone),
                "performing_lab": observation.performing_lab or performing_default,
                "notes": "\n".join(observation.notes + group.notes) or None,
                "received_at": now,
                "supersedes_id": None,
                "superseded_at": None,
            }
            # A later result of the same observation replaces the current one.
            key = (found.patient_id, facility, order_id, filler, code, sub_id)
            earlier = local.latest(*key)
            if earlier is not None:
                local.superseded.add(earlier)
                kind, at = earlier
                if kind == "db":
                    row["supersedes_id"] = at
                    superseded_ids.append(at)
                else:
                    rows[at]["superseded_at"] = now
                    supersedes_new.append((index, at))
            local.add(("new", index), *key)
            rows.append(row)
        if order is not None:
            orders_touched[order.id] = order
        if unmatched_id is not None:
            event = {
                "action": "lab.results_unmatched",
                "object_type": UnmatchedResult.__tablename__,
                "object_id": unmatched_id,
                "detail": f"message {message.id}; {found.reason}",
            }
        else:
            event = {
                "action": "lab.results_filed",
                "patient_id": found.patient_id,
                "object_type": (order or message).__tablename__,
                "object_id": (order or message).id,
                "detail": f"message {message.id}; {len(group.observations)} results",
            }
        events.setdefault(message.connector, []).append(event)
    table = LabResult.__table__
    if supersedes_new:  # their ids are needed to link them
        result_ids = _insert_returning_ids(LabResult, rows)
    elif rows:
        db.session.execute(insert(table).returning(table.c.id), rows)  # one INSERT (module notes)
    if superseded_ids:
        db.session.execute(
            update(table).where(table.c.id == bindparam("old_id")).values(superseded_at=now),
            [{"old_id": at} for at in sorted(set(superseded_ids))],
        )
    if supersedes_new:
        db.session.execute(
            update(table)
            .where(table.c.id == bindparam("new_id"))
            .values(supersedes_id=bindparam("old_id")),
            [{"new_id": result_ids[new], "old_id": result_ids[old]} for new, old in supersedes_new],
        )
    for connector, entries in events.items():
        actor = integration(connector, source="mllp")
        audit.record_many(actor, "lab.results_filed", entries, category="labs")
    _update_order_statuses(list(orders_touched.values()))


def _insert_returning_ids(model, rows: list[dict]) -> list[int]:
    """INSERT the rows (Core, no unit of work): their ids, in their order. On SQLite, ids in
    the rows' order cost a statement a row; ``insert().returning()`` with the order left
    free is one multi-row INSERT on both databases (a plain executemany is a statement a
    row on PostgreSQL, pipelined)."""
    if not rows:
        return []
    table = model.__table__
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return list(db.session.execute(statement, rows).scalars())


def _update_order_status(order: LabOrder) -> None:
    """One order's status after its results changed (``_update_order_statuses``)."""
    db.session.flush()
    _update_order_statuses([order])


def _update_order_statuses(orders: list[LabOrder]) -> None:
    """Resulted when every test has a current final (or corrected, or cancelled) result;
    partially resulted when some results came. A cancelled order stays cancelled; a reviewed
    one that gets a correction goes back to resulted (the correction waits for review)."""
    orders = sorted(orders, key=lambda o: o.id)
    if not orders:
        return
    ids = [order.id for order in orders]
    # Two messages of one order filed at once (a lab reports each test on its own
    # connection): the second waits here for the first's commit and then counts its results
    # too; without the lock each counted only its own and both left "partially_resulted".
    # FOR NO KEY UPDATE: the results' foreign keys hold KEY SHARE on the order, which FOR
    # UPDATE would wait on (a deadlock between the two); the status UPDATE needs no more.
    # Locked in id order, so two batches touching the same orders never wait on each other
    # crosswise. The status is decided from what the lock reads, not from the order loaded
    # at matching: a cancel that committed since (while this batch waited for the lock, or
    # between its matching and its results' INSERT) stays cancelled; the results stay filed
    # against the order, as those of an order cancelled earlier are.
    locked = dict(
        db.session.execute(
            select(LabOrder.id, LabOrder.status)
            .where(LabOrder.id.in_(ids))
            .order_by(LabOrder.id)
            .with_for_update(key_share=True)
        ).all()
    )
    orders = [order for order in orders if locked.get(order.id, "cancelled") != "cancelled"]
    ids = [order.id for order in orders]
    statuses: dict[int, list[tuple[int | None, str]]] = {order_id: [] for order_id in ids}
    for order_id, test_id, status in db.session.execute(
        select(LabResult.order_id, LabResult.order_test_id, LabResult.status).where(
            LabResult.order_id.in_(ids), LabResult.superseded_at.is_(None)
        )
    ):
        statuses[order_id].append((test_id, status))
    for order in orders:
        final_tests = {
            test_id for test_id, status in statuses[order.id] if status in ("F", "C", "X")
        }
        every_test_final = all(test.id in final_tests for test in order.tests)
        order.status = (
            "resulted" if statuses[order.id] and every_test_final else "partially_resulted"
        )


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
