"""Delivering a lab order (the worker's side): build the ORM^O01 from the order as it stands,
hand it to the lab connector, and apply the lab's ACK.

``deliver_order`` is the outbox's deliverer for ``send_lab_order`` and ``cancel_lab_order``
(``outbox.register_deliverer``, wired by the app factory): it runs outside any transaction.
It reads the order and marks it ``sent`` (keeping the outbound message raw in
``lab_messages``) in one short use case, then calls ``connector.send_order`` (MLLP, waiting
for the ACK) holding no transaction. The connector's retryable error (refused, dropped,
garbage, no ACK in time) propagates and the outbox retries with back-off; an AE or AR is the
lab refusing the order as it is: a ``PermanentError`` with the lab's words, so the outbox
marks the message failed (replayable from the console) and ``record_outcome`` puts the order
in ``error`` with the same words. AA: ``acknowledged``.

The connector is reached only through the lab connector's interface (``identities()``,
``lab_code_for(loinc)``, ``send_order(text)``); it imports nothing of ours.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from portal.actors import SOURCE_WORKER, integration
from portal.audit import services as audit
from portal.auth.models import User
from portal.extensions import db
from portal.integrations import outbox
from portal.integrations.base import PermanentError
from portal.integrations.models import OutboxMessage
from portal.labs import states
from portal.labs.hl7.orm import OrderedTest, OrderMessage, build_orm
from portal.labs.models import SENT, LabMessage, LabOrder
from portal.labs.ordering.services import (
    CANCEL_OPERATION,
    CATEGORY,
    SEND_OPERATION,
    order_control_id,
)
from portal.patients.models import Patient
from portal.timeutil import utcnow
from portal.transaction import end_read, use_case

ERROR_MAX = 500


@dataclass(frozen=True)
class Prepared:
    text: str
    control_id: str
    message_id: int | None  # the outbound copy in lab_messages


def _order_message(
    order: LabOrder, patient: Patient, orderer: User, connector, order_control: str, control: str
):
    identities = dict(connector.identities() or {})
    tests = []
    for test in order.tests:
        mapped = connector.lab_code_for(test.loinc)
        lab_code = mapped[0] if mapped else None
        tests.append(OrderedTest(test.loinc, test.name, lab_code))
    given, _, family = (orderer.full_name or "").strip().rpartition(" ")
    return OrderMessage(
        control_id=control,
        placer_order_number=order.placer_order_number,
        patient_mrn=patient.mrn,
        patient_family_name=patient.family_name,
        patient_given_name=patient.given_name,
        patient_birth_date=patient.birth_date,
        patient_sex=patient.sex_at_birth,
        provider_id=str(orderer.id),
        provider_family_name=family,
        provider_given_name=given,
        tests=tuple(tests),
        priority=order.priority,
        collection_date=order.collection_date,
        fasting=order.fasting,
        note=order.note,
        diagnoses=tuple((order.diagnoses or "").split()),
        sending_application=identities.get("sending_application") or "",
        sending_facility=identities.get("sending_facility") or "",
        receiving_application=identities.get("receiving_application") or "",
        receiving_facility=identities.get("receiving_facility") or "",
        order_control=order_control,
    )


def _prepare(connector, claimed: outbox.Claimed) -> Prepared | None:
    """Build the message and record it sent, in one short use case; None when the order is
    no longer one to send (cancelled meanwhile, or already acknowledged).

    The order's row is locked (as ``cancel_order`` locks it) before its status is read, so
    a cancel either lands first (and this sees it and sends nothing) or waits until the
    outbound copy is kept and the order is ``sent`` (and then queues the CA). Without the
    lock a cancel committed between this read and the write below was overwritten with
    ``sent`` and the NW still went out. A retry of the same outbox message rebuilds the
    same message under the same control id and updates its one outbound copy."""
    cancel = claimed.operation == CANCEL_OPERATION
    with use_case():
        order = db.session.scalar(
            select(LabOrder)
            .where(LabOrder.id == int(claimed.payload["order_id"]))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if order is None:
            raise PermanentError("The order no longer exists.")
        if not cancel and order.status not in states.SENDABLE:
            return None
        patient = db.session.get(Patient, order.patient_id)
        orderer = db.session.get(User, order.ordering_provider_id)
        control = order_control_id(order.placer_order_number, claimed.operation, claimed.id)
        message = _order_message(
            order, patient, orderer, connector, "CA" if cancel else "NW", control
        )
        text = build_orm(message)
        stored = db.session.scalar(
            select(LabMessage).where(
                LabMessage.direction == "out",
                LabMessage.connector == claimed.connector,
                LabMessage.control_id == control,
            )
        )
        if stored is None:
            stored = LabMessage(
                direction="out",
                connector=claimed.connector,
                control_id=control,
                message_type="ORM^O01",
                version="2.5.1",
                attempts=0,
            )
            db.session.add(stored)
        stored.sending_facility = message.sending_facility or None
        stored.raw = text.encode("utf-8")
        stored.state = SENT
        stored.ack_code = None
        stored.error = None
        stored.attempts = (stored.attempts or 0) + 1
        if not cancel and order.status != states.SENT:
            order.status = states.SENT
            order.sent_at = utcnow()
        db.session.flush()
        return Prepared(text, control, stored.id)


def _record_ack(message_id: int, code: str, text: str) -> None:
    with use_case():
        stored = db.session.get(LabMessage, message_id)
        if stored is not None:
            stored.ack_code = code[:2]
            stored.error = text[:ERROR_MAX] or None


def deliver_order(connector, claimed: outbox.Claimed) -> dict:
    """Send one order (or its cancel) to the lab and read its ACK (see the module's
    docstring). Returns what the outbox keeps with the message: the ACK, no patient data."""
    prepared = _prepare(connector, claimed)
    if prepared is None:
        return {"skipped": "the order is no longer waiting to be sent"}
    end_read()
    ack = connector.send_order(prepared.text)  # retryable errors propagate to the outbox
    code = (ack.code or "").upper()
    if prepared.message_id is not None:
        _record_ack(prepared.message_id, code, ack.text or "")
    if code != "AA":
        words = (ack.text or "").strip() or "no reason given"
        raise PermanentError(f"The lab refused the order ({code or 'no code'}): {words}")
    return {"ack_code": code, "control_id": prepared.control_id, "ack_control_id": ack.control_id}


def record_outcome(result: outbox.Outcome) -> None:
    """The outbox's outcome handler for the send and the cancel (in the transaction that
    records the outcome). Send delivered -> ``acknowledged``; failed (AE/AR) or dead (no
    answer after every try) -> ``error`` with the reason. A cancel the lab refused leaves
    the order cancelled here, with the lab's words on it. Idempotent."""
    message = db.session.get(OutboxMessage, result.message_id)
    if message is None or message.order_id is None:
        return
    # Locked, as the cancel locks it: a cancel committed after an unlocked read here would
    # be overwritten with "acknowledged" (PostgreSQL; SQLite serialises writers).
    order = db.session.get(LabOrder, message.order_id, populate_existing=True, with_for_update=True)
    if order is None:
        return
    actor = integration(result.connector, source=SOURCE_WORKER)
    if result.operation == CANCEL_OPERATION:
        if result.status != "delivered":
            order.error = f"The lab did not take the cancel: {_reason(result)}"[:ERROR_MAX]
            audit.record(
                actor,
                "lab_order.cancel_failed",
                patient_id=order.patient_id,
                obj=order,
                category=CATEGORY,
            )
        return
    if result.status == "delivered":
        if (result.result or {}).get("skipped"):
            return
        if not states.may_move(order.status, states.ACKNOWLEDGED):
            return  # results got there first, or it was cancelled
        order.status = states.ACKNOWLEDGED
        order.acknowledged_at = utcnow()
        order.error = None
        action = "lab_order.acknowledged"
    else:
        if not states.may_move(order.status, states.ERROR):
            return
        order.status = states.ERROR
        order.error = _reason(result)[:ERROR_MAX]
        action = "lab_order.refused"
    audit.record(
        actor,
        action,
        patient_id=order.patient_id,
        obj=order,
        category=CATEGORY,
        detail=f"outbox={result.message_id}",
    )


def _reason(result: outbox.Outcome) -> str:
    if result.status == "dead":
        return f"The lab did not answer after every try ({result.error or 'no ACK'})."
    return result.error or "The lab refused the order."


def send_withheld(message_id: int) -> str | None:
    """The outbox's withholder for ``send_lab_order``: a cancelled order is never sent."""
    order_id = db.session.scalar(
        select(OutboxMessage.order_id).where(OutboxMessage.id == message_id)
    )
    status = db.session.scalar(select(LabOrder.status).where(LabOrder.id == order_id))
    if status == states.CANCELLED:
        return "the order was cancelled before it was sent"
    return None


OPERATIONS = (SEND_OPERATION, CANCEL_OPERATION)
