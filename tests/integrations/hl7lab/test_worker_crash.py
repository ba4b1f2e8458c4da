"""The outbox worker killed while the lab holds its order (SIGKILL while waiting for the
ACK): after the lease the next worker sends the order again, as the same message (same
control id); the lab acknowledges the repeat and reports once; the portal files the
results once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from portal.extensions import db
from portal.integrations import outbox
from portal.integrations.models import OutboxMessage
from portal.integrations.settings import Submitted, save_and_enable
from portal.labs.models import LabOrder, LabResult
from portal.transaction import use_case
from tests.integrations.hl7lab.helpers import (
    HBA1C,
    control,
    set_faults,
    settings_for,
    wait_for,
)
from tests.labs.helpers import add_order, add_patient
from tests.support.clients import actor_of
from tests.support.database import AUDIT_KEY, DATA_KEY

ROOT = Path(__file__).resolve().parents[3]


def _message(app, message_id: int) -> OutboxMessage:
    with app.app_context():
        row = db.session.get(OutboxMessage, message_id)
        db.session.expunge(row)
        db.session.rollback()
        return row


def _results(app) -> list[LabResult]:
    with app.app_context():
        rows = db.session.scalars(select(LabResult)).all()
        db.session.expunge_all()
        db.session.rollback()
        return rows


def test_a_worker_killed_mid_delivery_loses_nothing_and_the_lab_reports_once(app, lab):
    with app.app_context():
        save_and_enable(
            actor_of("admin"),
            "hl7lab",
            Submitted(values=settings_for(lab.mllp_port, timeout_seconds=30), secrets={}),
        )
        patient_id, _mrn = add_patient(given="Ines", family="Moreau")
        order_id = add_order(patient_id, "PL-W", tests=((HBA1C, "Hemoglobin A1c"),))
        with use_case():
            message_id = outbox.enqueue(
                "hl7lab",
                "send_lab_order",
                {"order_id": order_id},
                idempotency_key=f"hl7lab:send_lab_order:order-{order_id}",
                patient_id=patient_id,
                order_id=order_id,
            ).id
        db.session.remove()
    # The first try hangs past the second worker's start and lease (so the order is still
    # waiting for results when the second worker finds it, and is sent again).
    set_faults(lab, slow_seconds=20, times=1, results="final")
    environment = {
        **os.environ,
        "PORTAL_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "PORTAL_INSTANCE_PATH": app.instance_path,
        "PORTAL_AUDIT_KEY": AUDIT_KEY,
        "PORTAL_DATA_ENCRYPTION_KEY": DATA_KEY,
        "PORTAL_OUTBOX_LEASE_SECONDS": "2",
    }
    command = [sys.executable, "-m", "flask", "--app", "portal", "worker"]
    first = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL)
    try:
        wait_for(
            lambda: control(lab, "/_sandbox/orders")["arrived"] == 1,
            timeout=60,
            what="the worker sending the order",
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    in_flight = _message(app, message_id)
    assert (in_flight.status, in_flight.attempts) == ("in_flight", 1)

    second = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(
            lambda: _message(app, message_id).status == "delivered",
            timeout=60,
            what="delivery after the lease",
        )
        wait_for(lambda: len(_results(app)) == 1, timeout=30, what="the results")
        # the hung first try ends too, and is seen as the repeat it is
        wait_for(lambda: len(control(lab, "/_sandbox/orders")["orders"]) == 2, what="both tries")
        second.send_signal(signal.SIGTERM)
        output, _ = second.communicate(timeout=30)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate()
    delivered = _message(app, message_id)
    assert (delivered.status, delivered.attempts) == ("delivered", 2)
    same = f"PL-W-N{message_id}"  # every try of the message under one control id
    assert delivered.result == {"ack_code": "AA", "control_id": same, "ack_control_id": same}
    orders = control(lab, "/_sandbox/orders")["orders"]
    assert sorted(order["duplicate"] for order in orders) == [False, True]
    assert {order["control_id"] for order in orders} == {same}
    with app.app_context():
        assert db.session.get(LabOrder, order_id).status == "resulted"  # the ACK, then results
        db.session.rollback()
    assert len(control(lab, "/_sandbox/results")["results"]) == 1  # reported once
    (result,) = _results(app)
    assert result.loinc == HBA1C and result.patient_id is not None
    assert "Moreau" not in output and "PL-W" not in output  # nothing of the order logged
