"""A signed order on its way to the lab, over real loopback sockets: the worker builds the
ORM^O01 from the order with the connector's identities and lab codes, sends it over MLLP and
applies the lab's ACK (AA acknowledged; AE/AR error with the lab's words, on the order and in
the console's message log); no ACK, or a dropped connection, is retried; a cancel after the
lab has the order sends ORC-1 CA."""

from __future__ import annotations

import threading

import hl7
import pytest

from portal.extensions import db
from portal.integrations.models import OutboxMessage
from portal.labs.models import LabMessage
from tests.labs.ordering.helpers import (
    a_patient,
    add,
    deliver,
    due_now,
    load,
    outbox_of,
    sign,
    start,
)
from tests.support.audit import audit_events


def signed_order(app, signed_in, *loincs, **details) -> int:
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    order_id = start(doctor, patient_id)
    add(doctor, order_id, *(loincs or ("24323-8", "24331-1")))
    assert sign(doctor, order_id, connector="testlab", **details).status_code == 303
    return order_id


def test_aa_acknowledges_and_the_order_went_out_as_built(app, signed_in, chart, lab):
    order_id = signed_order(
        app, signed_in, diagnoses="E11.9", fasting="y", priority="stat", note="Hemolysis & <b>"
    )
    run = deliver(app)
    assert run.delivered == 1
    order = load(app, order_id)
    assert order.status == "acknowledged" and order.sent_at and order.acknowledged_at
    [text] = lab.received
    message = hl7.parse(text)
    msh = message.segment("MSH")
    assert (str(msh[3]), str(msh[4]), str(msh[5]), str(msh[6])) == (
        "PORTAL",
        "RIVERSIDE",
        "LIS",
        "TESTLAB",
    )
    assert str(msh[9]) == "ORM^O01^ORM_O01" and str(msh[12]) == "2.5.1"
    orcs = message.segments("ORC")
    obrs = message.segments("OBR")
    assert [str(orc[1]) for orc in orcs] == ["NW", "NW"]
    assert {str(orc[2]) for orc in orcs} == {order.placer_order_number}
    services = [str(obr[4]) for obr in obrs]
    # The lab's own code where the clinic mapped one; LOINC alone otherwise.
    assert services[0] == "24323-8^Comprehensive metabolic panel (CMP)^LN^CMP14^^L"
    assert services[1] == "24331-1^Lipid panel^LN"
    assert str(obrs[0][5]) == "S"  # STAT
    assert str(message.segment("DG1")[3]) == "E11.9^^I10"
    nte = str(message.segment("NTE")[3])
    assert nte == "Hemolysis \\T\\ <b>" and message.unescape(nte) == "Hemolysis & <b>"
    pid = message.segment("PID")
    assert str(pid[5]) == "Lovelace^Ada" and str(pid[7]) == "19851210"
    with app.app_context():
        [stored] = db.session.query(LabMessage).filter_by(direction="out").all()
        assert stored.ack_code == "AA" and stored.raw.decode() == text
    [event] = audit_events(app, "lab_order.acknowledged")
    assert event.user_id is None and event.source == "worker"
    [message_row] = outbox_of(app, order_id)
    assert message_row.status == "delivered" and message_row.result["ack_code"] == "AA"


@pytest.mark.parametrize("code", ["AE", "AR"])
def test_ae_and_ar_put_the_order_in_error_with_the_labs_reason(app, signed_in, chart, lab, code):
    lab.mode = code
    lab.reason = "Unknown test code CMP14"
    order_id = signed_order(app, signed_in)
    run = deliver(app)
    assert run.failed == 1
    order = load(app, order_id)
    assert order.status == "error" and "Unknown test code CMP14" in order.error
    assert f"({code})" in order.error
    [message] = outbox_of(app, order_id)
    assert message.status == "failed" and "Unknown test code CMP14" in message.last_error
    doctor = signed_in("drlee")
    page = doctor.get(f"/labs/orders/{order_id}").get_data(as_text=True)
    assert "Unknown test code CMP14" in page and 'data-state="error"' in page
    admin = signed_in("admin")
    console = admin.get("/admin/integrations/testlab/messages").get_data(as_text=True)
    assert "Unknown test code CMP14" in console
    # Replayed from the console once the lab is fixed: acknowledged.
    lab.mode = "AA"
    with app.app_context():
        from portal.integrations import outbox
        from tests.support.clients import actor_of

        outbox.replay(actor_of("admin"), message.id)
    deliver(app)
    assert load(app, order_id).status == "acknowledged"


@pytest.mark.parametrize("fault", ["silent", "hangup", "refused"])
def test_no_ack_is_retried_then_acknowledged(app, signed_in, chart, lab, fault):
    order_id = signed_order(app, signed_in)
    if fault == "refused":
        lab.stop()  # nothing listens on the port any more
    else:
        lab.mode = fault
    run = deliver(app)
    assert run.retrying == 1
    [message] = outbox_of(app, order_id)
    assert message.status == "pending" and message.attempts == 1
    order = load(app, order_id)
    assert order.status == "sent" and order.error is None  # waiting for the lab's answer
    if fault == "refused":
        return
    lab.mode = "AA"
    due_now(app, order_id)
    assert deliver(app).delivered == 1
    assert load(app, order_id).status == "acknowledged"
    # Each try was the same message: one control id (from the order number and the outbox
    # message), so a lab that had the first and lost our ACK can answer the second as a
    # duplicate; one outbound copy kept, with the lab's last answer.
    [message] = outbox_of(app, order_id)
    controls = {str(hl7.parse(text).segment("MSH")[10]) for text in lab.received}
    assert len(lab.received) == (1 if fault == "hangup" else 2)  # a hangup reads nothing
    assert controls == {f"{load(app, order_id).placer_order_number}-N{message.id}"}
    with app.app_context():
        [stored] = db.session.query(LabMessage).filter_by(direction="out").all()
        assert stored.control_id in controls and stored.ack_code == "AA"
        assert stored.attempts == 2


def test_no_ack_after_every_try_is_an_error(app, signed_in, chart, lab):
    lab.mode = "silent"
    order_id = signed_order(app, signed_in)
    deliver(app, max_attempts=1)
    order = load(app, order_id)
    assert order.status == "error" and "did not answer" in order.error
    [message] = outbox_of(app, order_id)
    assert message.status == "dead"


def test_a_cancel_after_the_lab_has_it_sends_orc_ca(app, signed_in, chart, lab):
    order_id = signed_order(app, signed_in)
    deliver(app)
    assert load(app, order_id).status == "acknowledged"
    doctor = signed_in("drlee")
    assert doctor.post_form(f"/labs/orders/{order_id}/cancel").status_code == 303
    assert load(app, order_id).status == "cancelled"
    _send, cancel = outbox_of(app, order_id)
    assert cancel.operation == "cancel_lab_order" and cancel.payload == {"order_id": order_id}
    deliver(app)
    assert len(lab.received) == 2
    assert {str(orc[1]) for orc in hl7.parse(lab.received[1]).segments("ORC")} == {"CA"}
    assert load(app, order_id).status == "cancelled"
    [event] = audit_events(app, "lab_order.cancel")
    assert "cancel_sent=yes" in event.detail


def test_the_send_and_the_signing_commit_together(app, signed_in, chart, lab, monkeypatch):
    """A signing that fails after the outbox row was written leaves neither."""
    from portal.labs.ordering import services
    from portal.labs.ordering.services import OrderDetails
    from tests.support.clients import actor_of

    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    order_id = start(doctor, patient_id)
    add(doctor, order_id, "4548-4")
    with app.app_context():
        original = services.audit.record

        def failing_record(actor, action, **kwargs):
            if action == "lab_order.sign":
                raise RuntimeError("the audit write failed")
            return original(actor, action, **kwargs)

        monkeypatch.setattr(services.audit, "record", failing_record)
        with pytest.raises(RuntimeError):
            services.sign_order(actor_of("drlee"), order_id, OrderDetails(connector="testlab"))
        monkeypatch.undo()
        assert db.session.query(OutboxMessage).filter_by(order_id=order_id).count() == 0
    assert load(app, order_id).status == "draft"


def _cancel_in_another_thread(app, order_id: int) -> threading.Thread:
    """The prescriber's cancel, on its own connection (as a request would be)."""
    from portal.labs.ordering import services
    from tests.support.clients import actor_of

    def cancel():
        with app.app_context():
            try:
                services.cancel_order(actor_of("drlee"), order_id)
            finally:
                db.session.remove()

    thread = threading.Thread(target=cancel, name="cancel", daemon=True)
    thread.start()
    return thread


def test_a_cancel_while_the_order_is_being_prepared_is_never_overwritten(
    app, signed_in, chart, lab, monkeypatch
):
    """The worker has read the order and is building its ORM when the prescriber cancels.
    The cancel waits for the order's row lock; the ORM kept, the order is ``sent`` and the
    cancel then finds the lab has it and queues a CA. Before the lock, the cancel committed
    between the worker's read and its write, was overwritten with ``sent`` (then
    ``acknowledged``) and the lab was never told (PostgreSQL; SQLite serialises writers)."""
    from portal.labs.ordering import delivery

    order_id = signed_order(app, signed_in)
    threads = []
    original = delivery._order_message

    def cancel_midway(*args, **kwargs):
        if not threads:
            threads.append(_cancel_in_another_thread(app, order_id))
            # Long enough for an unlocked cancel to commit; a locked one stays waiting.
            threads[0].join(timeout=1.5)
        return original(*args, **kwargs)

    monkeypatch.setattr(delivery, "_order_message", cancel_midway)
    deliver(app)
    threads[0].join(timeout=30)
    assert not threads[0].is_alive()
    assert load(app, order_id).status == "cancelled"
    due_now(app, order_id)
    deliver(app)
    assert load(app, order_id).status == "cancelled"
    assert [{str(orc[1]) for orc in hl7.parse(text).segments("ORC")} for text in lab.received] == [
        {"NW"},
        {"CA"},
    ]
    [event] = audit_events(app, "lab_order.cancel")
    # From sent, or acknowledged when the lab's AA was applied before the waiting cancel ran.
    assert event.detail in ("from=sent cancel_sent=yes", "from=acknowledged cancel_sent=yes")


def test_a_cancel_between_claim_and_prepare_sends_nothing(app, signed_in, chart, lab, monkeypatch):
    """The send is claimed (its attempts already counted) but no ORM was built when the
    prescriber cancels: the lab never had the order, so nothing goes out, neither the NW
    nor a CA for an order it never received."""
    from portal.labs.ordering import delivery

    order_id = signed_order(app, signed_in)
    original = delivery._prepare

    def cancel_first(connector, claimed):
        _cancel_in_another_thread(app, order_id).join(timeout=30)
        return original(connector, claimed)

    monkeypatch.setattr(delivery, "_prepare", cancel_first)
    deliver(app)
    monkeypatch.undo()
    assert load(app, order_id).status == "cancelled"
    due_now(app, order_id)
    deliver(app)
    assert lab.received == []
    [send] = outbox_of(app, order_id)  # no cancel queued
    assert send.operation == "send_lab_order" and send.attempts == 1
    assert send.result == {"skipped": "the order is no longer waiting to be sent"}
    with app.app_context():
        assert db.session.query(LabMessage).filter_by(direction="out").count() == 0
    [event] = audit_events(app, "lab_order.cancel")
    assert "cancel_sent=no" in event.detail
