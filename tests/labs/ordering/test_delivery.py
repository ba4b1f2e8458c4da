"""A signed order on its way to the lab, over real loopback sockets: the worker builds the
ORM^O01 from the order with the connector's identities and lab codes, sends it over MLLP and
applies the lab's ACK (AA acknowledged; AE/AR error with the lab's words, on the order and in
the console's message log); no ACK, or a dropped connection, is retried; a cancel after the
lab has the order sends ORC-1 CA."""

from __future__ import annotations

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
    # Each try was one ORM with a control id of its own, for the same order number.
    controls = [hl7.parse(text).segment("MSH")[10] for text in lab.received]
    assert len(set(map(str, controls))) == len(controls)


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
