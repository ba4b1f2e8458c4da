"""The HL7 lab connector against the lab sandbox over real sockets: an order acknowledged,
refused (AE/AR with the lab's reason), and every way the lab can fail us (down, slow, no
ACK, garbage, a dropped connection, a duplicated ACK, an ACK to another message), over
plain TCP and TLS; its settings' checks; its outbox operations."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from portal.integrations import registry
from portal.integrations.base import PermanentError, SettingRefused, TransientError
from portal.integrations.hl7lab.acks import parse_ack
from portal.integrations.hl7lab.connector import Hl7LabConnector, LabAck
from portal.integrations.hl7lab.mllp import Garbage, frame
from portal.integrations.sandbox.hl7lab.server import LabSandbox
from tests.integrations.hl7lab.helpers import (
    FAST,
    HBA1C,
    LIPID_PANEL,
    connector_for,
    control,
    order_message,
    self_signed_certificate,
    set_faults,
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_order_is_acknowledged_and_the_lab_has_it(lone_lab):
    connector = connector_for(lone_lab.mllp_port)
    ack = connector.send_order(order_message(control_id="ORD-AA", placer="PL-AA"))
    assert ack == LabAck(code="AA", text="", control_id="ORD-AA")
    (order,) = control(lone_lab, "/_sandbox/orders")["orders"]
    assert order["placer_order_number"] == "PL-AA"
    assert order["tests"] == [LIPID_PANEL, HBA1C]
    assert order["ack"] == "AA"


@pytest.mark.parametrize("code", ["AE", "AR"])
def test_a_refusal_comes_back_with_the_labs_reason(lone_lab, code):
    set_faults(lone_lab, ack=code, ack_text="Specimen source | missing", times=1)
    connector = connector_for(lone_lab.mllp_port)
    ack = connector.send_order(order_message(control_id="ORD-R"))
    assert (ack.code, ack.text, ack.control_id) == (code, "Specimen source | missing", "ORD-R")
    assert not ack.accepted
    # ``times`` spent: the next order is taken again
    assert connector.send_order(order_message(control_id="ORD-R2", placer="PL-2")).code == "AA"


def test_a_test_the_lab_does_not_offer_is_answered_ae_with_its_reason(lone_lab):
    message = order_message(control_id="ORD-X").replace(f"{HBA1C}^", "99999-9^", 1)
    ack = connector_for(lone_lab.mllp_port).send_order(message)
    assert ack.code == "AE"
    assert "99999-9" in ack.text


def test_a_lab_that_is_down_is_worth_retrying():
    connector = connector_for(_free_port())
    with pytest.raises(TransientError, match="cannot connect"):
        connector.send_order(order_message())


def test_no_ack_within_the_time_out_is_worth_retrying(lone_lab):
    set_faults(lone_lab, ack="none")
    connector = connector_for(lone_lab.mllp_port, timeout_seconds=1)
    started = time.monotonic()
    with pytest.raises(TransientError, match="no whole answer"):
        connector.send_order(order_message())
    assert 0.9 < time.monotonic() - started < 5


def test_a_slow_lab_is_waited_for_within_the_time_out_and_not_beyond(lone_lab):
    set_faults(lone_lab, slow_seconds=0.5)
    assert (
        connector_for(lone_lab.mllp_port, timeout_seconds=3)
        .send_order(order_message(control_id="SLOW-1"))
        .accepted
    )
    set_faults(lone_lab, slow_seconds=3)
    with pytest.raises(TransientError):
        connector_for(lone_lab.mllp_port, timeout_seconds=1).send_order(
            order_message(control_id="SLOW-2")
        )


def test_garbage_is_worth_retrying(lone_lab):
    set_faults(lone_lab, ack="garbage")
    with pytest.raises(TransientError, match="not an MLLP frame"):
        connector_for(lone_lab.mllp_port).send_order(order_message())


def test_a_dropped_connection_is_worth_retrying(lone_lab):
    set_faults(lone_lab, ack="drop")
    with pytest.raises(TransientError, match="closed before an answer"):
        connector_for(lone_lab.mllp_port).send_order(order_message())


def test_a_duplicated_ack_is_read_once(lone_lab):
    set_faults(lone_lab, duplicate_ack=True)
    connector = connector_for(lone_lab.mllp_port)
    first = connector.send_order(order_message(control_id="DUP-1"))
    second = connector.send_order(order_message(control_id="DUP-2", placer="PL-3"))
    assert (first.code, first.control_id) == ("AA", "DUP-1")
    assert (second.code, second.control_id) == ("AA", "DUP-2")  # not the first one's echo


def test_a_resent_order_is_acknowledged_again_and_reported_once(lone_lab):
    connector = connector_for(lone_lab.mllp_port)
    message = order_message(control_id="AGAIN", placer="PL-AGAIN")
    assert connector.send_order(message).accepted
    assert connector.send_order(message).accepted
    orders = control(lone_lab, "/_sandbox/orders")["orders"]
    assert [order.get("duplicate") for order in orders] == [False, True]


class _OneAnswerServer:
    """A peer that answers every message with the given bytes (a lab gone wrong)."""

    def __init__(self, answer: bytes):
        self.answer = answer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                peer, _ = self.sock.accept()
            except OSError:
                return
            with peer:
                data = b""
                while b"\x1c\r" not in data:
                    chunk = peer.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                peer.sendall(self.answer)

    def close(self):
        self.sock.close()


ACK_TEMPLATE = "MSH|^~\\&|LIS|LAB|PORTAL|CLINIC|20250101||ACK^O01^ACK|A1|P|{version}\r{rest}\r"


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ("MSA|CA|ORD-1", ("AA", "")),
        ("MSA|CE|ORD-1|Bad OBR", ("AE", "Bad OBR")),
        (
            "MSA|CR|ORD-1\rERR||OBR^1^4|103^Table value not found^HL70357|E",
            ("AR", "Table value not found"),
        ),
        (
            "MSA|AE|ORD-1\rERR||||E||||Collection date in the future",
            ("AE", "Collection date in the future"),
        ),
    ],
)
def test_enhanced_mode_codes_and_err_reasons_are_read(rest, expected):
    peer = _OneAnswerServer(frame(ACK_TEMPLATE.format(version="2.5.1", rest=rest)))
    try:
        ack = connector_for(peer.port).send_order(order_message(control_id="ORD-1"))
    finally:
        peer.close()
    assert (ack.code, ack.text) == expected


def test_an_older_labs_err_1_reason_is_read():
    answer = ACK_TEMPLATE.format(
        version="2.3", rest="MSA|AR|ORD-1\rERR|OBR^1^4^103&Unknown test&HL70357"
    )
    assert parse_ack(answer.encode()).text == "Unknown test"


@pytest.mark.parametrize(
    "answer",
    [
        frame(
            ACK_TEMPLATE.format(version="2.5.1", rest="MSA|AA|SOMEONE-ELSE")
        ),  # another message's
        frame(ACK_TEMPLATE.format(version="2.5.1", rest="PID|1")),  # no MSA
        frame(ACK_TEMPLATE.format(version="2.5.1", rest="MSA|OK|ORD-1")),  # no such code
        frame(b"\x00\x01\x02 binary"),
    ],
    ids=["another control id", "no MSA", "unknown code", "binary"],
)
def test_an_answer_that_is_no_ack_of_this_order_is_worth_retrying(answer):
    peer = _OneAnswerServer(answer)
    try:
        with pytest.raises(TransientError):
            connector_for(peer.port).send_order(order_message(control_id="ORD-1"))
    finally:
        peer.close()


def test_a_huge_answer_is_not_read_forever():
    peer = _OneAnswerServer(b"\x0b" + b"A" * (2 * 1024 * 1024))
    try:
        with pytest.raises(TransientError, match="without a whole frame"):
            connector_for(peer.port, timeout_seconds=10).send_order(order_message())
    finally:
        peer.close()


def test_parse_ack_refuses_what_is_not_an_ack():
    with pytest.raises(Garbage):
        parse_ack(b"")
    with pytest.raises(Garbage):
        parse_ack(b"hello")


# TLS ---------------------------------------------------------------------------------------


@pytest.fixture
def tls_lab(tmp_path):
    cert, key, pem = self_signed_certificate(tmp_path)
    sandbox = LabSandbox(
        {**FAST, "results_port": 9, "result_delay": 600, "tls_cert": str(cert), "tls_key": str(key)}
    ).start()
    yield sandbox, pem
    sandbox.stop()


def test_over_tls_with_the_labs_certificate(tls_lab):
    sandbox, pem = tls_lab
    connector = connector_for(sandbox.mllp_port, use_tls=True, tls_ca_pem=pem)
    connector.check()
    assert connector.send_order(order_message(control_id="TLS-1")).accepted


def test_tls_refuses_a_certificate_it_cannot_trust(tls_lab):
    sandbox, _pem = tls_lab
    connector = connector_for(sandbox.mllp_port, use_tls=True)  # the system's authorities only
    with pytest.raises(TransientError, match="TLS handshake"):
        connector.send_order(order_message())
    with pytest.raises(SettingRefused) as refused:
        connector.check()
    assert refused.value.field == "tls_ca_pem"
    assert control(sandbox, "/_sandbox/orders")["orders"] == []  # nothing went out


def test_tls_to_a_plain_lab_fails_as_retryable(lone_lab, tmp_path):
    _cert, _key, pem = self_signed_certificate(tmp_path)
    connector = connector_for(lone_lab.mllp_port, use_tls=True, tls_ca_pem=pem, timeout_seconds=1)
    with pytest.raises(TransientError):
        connector.send_order(order_message())


# Settings ----------------------------------------------------------------------------------


def test_check_connects_and_says_which_field_is_wrong(lone_lab):
    connector_for(lone_lab.mllp_port).check()
    with pytest.raises(SettingRefused) as down:
        connector_for(_free_port()).check()
    assert down.value.field == "host"
    assert control(lone_lab, "/_sandbox/orders")["arrived"] == 0  # check sends nothing


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"host": ""}, "host", "host name"),
        ({"host": "lab .example"}, "host", "host name"),
        ({"port": 0}, "port", "1 to 65535"),
        ({"port": 70000}, "port", "1 to 65535"),
        ({"timeout_seconds": 0}, "timeout_seconds", "1 to 120"),
        ({"timeout_seconds": 121}, "timeout_seconds", "1 to 120"),
        ({"sending_facility": ""}, "sending_facility", "required"),
        ({"receiving_application": "LAB|X"}, "receiving_application", "without"),
        ({"lab_codes": "24331-1 LIPID"}, "lab_codes", "Line 1: write LOINC=LABCODE"),
        ({"lab_codes": "# ours\n\n24331-2=LIPID"}, "lab_codes", "Line 3: '24331-2' is not a valid"),
        ({"lab_codes": "12345-5=X"}, "lab_codes", "not a test of our catalog"),
        (
            {"lab_codes": "24331-1=LIPID\n24331-1=LIP2"},
            "lab_codes",
            "Line 2: 24331-1 is mapped twice",
        ),
        ({"lab_codes": "24331-1=^Lipids"}, "lab_codes", "code is missing"),
        ({"lab_codes": "24331-1=LI&P^Lipids"}, "lab_codes", "may not hold"),
        ({"use_tls": True, "tls_ca_pem": "not a certificate"}, "tls_ca_pem", "PEM"),
    ],
)
def test_settings_are_refused_beside_their_field(overrides, field, words):
    with pytest.raises(SettingRefused) as refused:
        connector_for(2576, **overrides).validate_settings()
    assert refused.value.field == field
    assert words in str(refused.value)


def test_the_lab_codes_and_identities_come_from_the_settings():
    connector = connector_for(
        2576,
        lab_codes="# our lab's list\n24331-1 = LIPID ^ Lipid profile\n4548-4=A1C\n",
        sending_facility="NORTH CLINIC",
    )
    connector.validate_settings()
    assert connector.lab_code_for(LIPID_PANEL) == ("LIPID", "Lipid profile")
    assert connector.lab_code_for(HBA1C) == ("A1C", "Hemoglobin A1c")  # our name when none given
    assert connector.lab_code_for("2345-7") is None  # not listed: sent as LOINC
    assert connector.identities() == {
        "sending_application": "PRACTICE_PORTAL",
        "sending_facility": "NORTH CLINIC",
        "receiving_application": "SANDBOX_LIS",
        "receiving_facility": "SANDBOX_LAB",
    }


def test_an_order_under_the_labs_own_codes_is_understood_by_the_lab(lone_lab):
    connector = connector_for(lone_lab.mllp_port, lab_codes="24331-1=LIPID^Lipid profile")
    message = order_message(control_id="CODES", connector=connector)
    assert "^LIPID^^L" in message
    assert connector.send_order(message).accepted


# Outbox operations -------------------------------------------------------------------------


def test_an_operation_it_does_not_know_fails_for_good(lone_lab):
    """The connector has no operation of its own: the labs domain's reach its deliverer
    first, and anything else (a raw message in a payload included) is refused for good,
    with nothing sent to the lab."""
    connector = connector_for(lone_lab.mllp_port)
    for operation, payload in (
        ("send_lab_order", {"order_id": 5}),
        ("send_hl7", {"message": order_message(control_id="OB-1")}),
    ):
        with pytest.raises(PermanentError, match=f"no operation '{operation}'"):
            connector.deliver(operation, payload, "key-5")
    assert control(lone_lab, "/_sandbox/orders")["orders"] == []


def test_the_connector_is_a_built_in_lab_connector(app):
    assert registry.connector_class("hl7lab") is Hl7LabConnector
    assert Hl7LabConnector.kind == "lab"
