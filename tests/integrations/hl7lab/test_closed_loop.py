"""The loop closed at the service level, over real sockets: an order row made here, its
ORM^O01 built by ``portal.labs.hl7.orm``, sent by the connector to the lab sandbox, whose
ORU^R01 results the real listener (``portal.labs.listener``) stores and files to the order's
patient; preliminary then final, corrected, duplicated results; results sent while the
listener is down, or killed between storing and acknowledging, are not lost."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

from sqlalchemy import func, select

from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.integrations.sandbox.hl7lab.server import LabSandbox
from portal.labs.hl7.orm import OrderedTest, OrderMessage, build_orm
from portal.labs.listener import MllpServer
from portal.labs.models import PROCESSED, RECEIVED, LabMessage, LabOrder, LabResult
from portal.patients.models import Patient
from tests.integrations.hl7lab.helpers import (
    FAST,
    HBA1C,
    LIPID_PANEL,
    analytes_of,
    connector_for,
    control,
    set_faults,
    wait_for,
)
from tests.labs.helpers import add_order, add_patient, start_listener

ROOT = Path(__file__).resolve().parents[3]
TESTS = ((LIPID_PANEL, "Lipid panel"), (HBA1C, "Hemoglobin A1c"))


def _order_text(app, order_id: int, connector) -> str:
    """The ORM of a stored order, made as the labs domain makes it: from the rows, with the
    connector's identities and lab codes."""
    with app.app_context():
        order = db.session.get(LabOrder, order_id)
        patient = db.session.get(Patient, order.patient_id)
        identities = connector.identities()
        tests = []
        for test in order.tests:
            lab_code = connector.lab_code_for(test.loinc)
            tests.append(
                OrderedTest(test.loinc, test.name, lab_code=lab_code[0] if lab_code else None)
            )
        text = build_orm(
            OrderMessage(
                control_id=f"O{order.id}-1",
                placer_order_number=order.placer_order_number,
                patient_mrn=patient.mrn,
                patient_family_name=patient.family_name,
                patient_given_name=patient.given_name,
                patient_birth_date=patient.birth_date,
                patient_sex="F",
                provider_id=str(order.ordering_provider_id),
                provider_family_name="Lee",
                provider_given_name="Ann",
                tests=tuple(tests),
                receiving_application=identities["receiving_application"],
                receiving_facility=identities["receiving_facility"],
            )
        )
        db.session.rollback()
        return text


def _place_order(app, placer: str, tests=TESTS) -> tuple[int, int]:
    with app.app_context():
        patient_id, _mrn = add_patient(given="Rosa", family="Alvarez")
        order_id = add_order(patient_id, placer, tests=tests)
    return patient_id, order_id


def _results(app, order_id: int) -> list[LabResult]:
    with app.app_context():
        rows = db.session.scalars(
            select(LabResult).where(LabResult.order_id == order_id).order_by(LabResult.id)
        ).all()
        db.session.expunge_all()
        db.session.rollback()
        return rows


def _order_status(app, order_id: int) -> str:
    with app.app_context():
        status = db.session.get(LabOrder, order_id).status
        db.session.rollback()
        return status


def _messages(app) -> list[LabMessage]:
    with app.app_context():
        rows = db.session.scalars(select(LabMessage).order_by(LabMessage.id)).all()
        db.session.expunge_all()
        db.session.rollback()
        return rows


def _all_filed(app, count: int) -> bool:
    rows = _messages(app)
    return len(rows) >= count and all(row.state == PROCESSED for row in rows)


def test_an_order_sent_comes_back_as_results_filed_to_its_patient(app, lab):
    set_faults(lab, results="final", abnormal="all")
    patient_id, order_id = _place_order(app, "PL-LOOP")
    connector = connector_for(lab.mllp_port)
    assert connector.send_order(_order_text(app, order_id, connector)).accepted

    expected = analytes_of(LIPID_PANEL, HBA1C)
    wait_for(lambda: len(_results(app, order_id)) == len(expected), what="the results")
    results = _results(app, order_id)
    assert sorted(r.loinc for r in results) == sorted(expected)
    assert {r.patient_id for r in results} == {patient_id}
    assert all(r.status == "F" and r.superseded_at is None for r in results)
    assert all(r.abnormal_flag in ("H", "L") and r.is_abnormal for r in results)
    assert all(r.performing_lab == "Sandbox Reference Laboratory" for r in results)
    assert all(r.order_test_id is not None for r in results)  # each to its ordered test
    a1c = next(r for r in results if r.loinc == HBA1C)
    assert a1c.units == "%" and a1c.value_numeric is not None
    # what the lab says it sent is what was filed
    sent = {
        o["loinc"]: o["value"]
        for record in control(lab, "/_sandbox/results")["results"]
        for o in record["observations"]
    }
    assert all(float(sent[r.loinc]) == r.value_numeric for r in results)
    wait_for(lambda: _order_status(app, order_id) == "resulted", what="the order resulted")
    assert _all_filed(app, 2)  # one result message per ordered test
    with app.app_context():
        filed = db.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "lab.results_filed", AuditEvent.patient_id == patient_id)
        )
        assert filed == 2


def test_a_preliminary_result_is_superseded_by_the_final_one(app, lab):
    set_faults(lab, results="preliminary_then_final", abnormal="none")
    _patient_id, order_id = _place_order(app, "PL-PF", tests=((HBA1C, "Hemoglobin A1c"),))
    connector = connector_for(lab.mllp_port)
    assert connector.send_order(_order_text(app, order_id, connector)).accepted
    wait_for(lambda: len(_results(app, order_id)) == 2, what="the preliminary and final")
    preliminary, final = _results(app, order_id)
    assert (preliminary.status, final.status) == ("P", "F")
    assert preliminary.superseded_at is not None and final.superseded_at is None
    assert final.supersedes_id == preliminary.id
    wait_for(lambda: _order_status(app, order_id) == "resulted", what="resulted")


def test_a_corrected_result_supersedes_the_final_and_says_so(app, lab):
    set_faults(lab, results="corrected", abnormal="none")
    _patient_id, order_id = _place_order(app, "PL-C", tests=((HBA1C, "Hemoglobin A1c"),))
    connector = connector_for(lab.mllp_port)
    assert connector.send_order(_order_text(app, order_id, connector)).accepted
    wait_for(lambda: len(_results(app, order_id)) == 2, what="the final and the correction")
    final, corrected = _results(app, order_id)
    assert (final.status, corrected.status) == ("F", "C")
    assert corrected.supersedes_id == final.id and final.superseded_at is not None
    assert corrected.value_numeric != final.value_numeric
    assert f"previously reported as {final.value_numeric:.1f}" in corrected.notes


def test_results_sent_twice_are_filed_once(app, lab):
    set_faults(lab, results="final", duplicate_results=True)
    _patient_id, order_id = _place_order(app, "PL-DUP", tests=((HBA1C, "Hemoglobin A1c"),))
    connector = connector_for(lab.mllp_port)
    assert connector.send_order(_order_text(app, order_id, connector)).accepted
    wait_for(
        lambda: (
            len([r for r in control(lab, "/_sandbox/results")["results"] if r["ack_code"]]) == 2
        ),
        what="both copies acknowledged",
    )
    sent = control(lab, "/_sandbox/results")["results"]
    assert [r["ack_code"] for r in sent] == ["AA", "AA"]
    assert sent[0]["control_id"] == sent[1]["control_id"]
    wait_for(lambda: _all_filed(app, 1), what="filing")
    assert len(_messages(app)) == 1
    assert len(_results(app, order_id)) == 1


def test_the_control_api_sends_a_message_to_the_listener(app, lab):
    with app.app_context():
        _patient_id, mrn = add_patient(given="Ana", family="Ruiz")
    message = (
        "MSH|^~\\&|LIS|OTHER LAB|PORTAL|CLINIC|20240102120000||ORU^R01|HAND-1|P|2.3\n"
        f"PID|1||{mrn}^^^CLINIC^MR||Ruiz^Ana||19800102|F\n"
        "OBR|1||F9|2345-7^Glucose^LN|||20240102080000||||||||||||||||F\n"
        "OBX|1|NM|2345-7^Glucose^LN||250|mg/dL|70-99|H|||F\n"
    )
    assert control(lab, "/_sandbox/send", {"message": message}) == {
        "ack_code": "AA",
        "ack_text": "",
    }
    refused = control(lab, "/_sandbox/send", {"message": "MSH|^~\\&|X\nPID|1"})
    assert refused["ack_code"] == "AR" and refused["ack_text"]
    wait_for(lambda: [m.state for m in _messages(app)] == [PROCESSED, "rejected"], what="filing")
    with app.app_context():
        (glucose,) = db.session.scalars(select(LabResult)).all()
        assert (glucose.loinc, glucose.value_numeric, glucose.abnormal_flag) == ("2345-7", 250, "H")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_results_wait_while_the_listener_is_down_and_arrive_once_it_is_up(app):
    port = _free_port()
    lab = LabSandbox({**FAST, "results_port": port}).start()
    try:
        set_faults(lab, results="final")
        _patient_id, order_id = _place_order(app, "PL-DOWN", tests=((HBA1C, "Hemoglobin A1c"),))
        connector = connector_for(lab.mllp_port)
        assert connector.send_order(_order_text(app, order_id, connector)).accepted
        wait_for(
            lambda: any(r["attempts"] >= 2 for r in control(lab, "/_sandbox/results")["results"]),
            what="the lab trying again",
        )
        assert _results(app, order_id) == []
        listener = MllpServer(app, "127.0.0.1", port)
        thread = listener.serve_in_thread()
        try:
            wait_for(lambda: len(_results(app, order_id)) == 1, what="the results")
            (record,) = control(lab, "/_sandbox/results")["results"]
            assert record["ack_code"] == "AA" and record["attempts"] >= 3
        finally:
            listener.shutdown()
            listener.server_close()
            thread.join(5)
    finally:
        lab.stop()


def test_a_listener_killed_mid_delivery_loses_nothing_and_files_once(app):
    """SIGKILL after the listener stored the lab's result and before its ACK left: the lab
    never heard, sends the same message again to the restarted listener, which answers it
    from the stored row; the results are filed once."""
    port = _free_port()
    lab = LabSandbox({**FAST, "results_port": port, "results_timeout": 30}).start()
    first = start_listener(app, port, "--ack-delay", "60")
    second = None
    try:
        set_faults(lab, results="final")
        _patient_id, order_id = _place_order(app, "PL-KILL", tests=((HBA1C, "Hemoglobin A1c"),))
        connector = connector_for(lab.mllp_port)
        assert connector.send_order(_order_text(app, order_id, connector)).accepted
        wait_for(lambda: _messages(app), timeout=30, what="the listener storing the result")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        (stored,) = _messages(app)
        assert stored.state == RECEIVED  # committed, never acknowledged, not yet filed
        second = start_listener(app, port)
        wait_for(lambda: len(_results(app, order_id)) == 1, timeout=30, what="the results")
        wait_for(
            lambda: control(lab, "/_sandbox/results")["results"][0]["ack_code"] == "AA",
            timeout=30,
            what="the lab hearing AA",
        )
        (record,) = control(lab, "/_sandbox/results")["results"]
        assert record["attempts"] >= 2  # sent again after the kill
        (message,) = _messages(app)  # stored once
        assert message.state == PROCESSED and message.control_id == record["control_id"]
        assert len(_results(app, order_id)) == 1  # filed once
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)
        lab.stop()
