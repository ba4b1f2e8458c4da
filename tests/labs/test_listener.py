"""The MLLP listener over real sockets: store before ACK, the right ACK for everything a lab
(or anything else) may send, nothing lost, duplicates filed once, connections in parallel."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.labs.listener import frame
from portal.labs.models import PROCESSED, REJECTED, LabMessage, LabResult
from tests.labs.helpers import (
    add_order,
    add_patient,
    filed_messages,
    msa,
    oru,
    read_frame,
    send,
    stored_messages,
)

GOOD = oru(control_id="GOOD-1")
BIG_TEXT = "A" * (1024 * 1024)
BAD_OBX_TIME = GOOD.replace("F|||20240102080000", "F|||2024-01-02", 1)
LATIN_1_DECLARED = GOOD.replace("|2.5.1", "|2.5.1||||||8859/1").replace("Doe", "Doë")
UNKNOWN_CHARSET = GOOD.replace("|2.5.1", "|2.5.1||||||EBCDIC")
BIG_OBX = oru(control_id="BIG", observations=[f"OBX|1|TX|11502-2^Report^LN||{BIG_TEXT}||||||F"])
WITH_Z_SEGMENTS = oru(control_id="Z1", extra="ZXY|1|custom\rQQQ|what\r")

CORPUS = [
    ("empty message", b"", "AR"),
    ("binary garbage", bytes(range(256)) * 4, "AR"),
    ("a NUL inside a message", GOOD.replace("Doe", "D\x00e").encode(), "AR"),
    ("truncated inside OBR", GOOD[: GOOD.index("OBR") + 20].encode(), "AE"),
    ("truncated before any OBX", GOOD[: GOOD.index("OBX")].encode(), "AE"),
    ("segments ended by LF", GOOD.replace("\r", "\n").encode(), "AA"),
    ("segments ended by CRLF", GOOD.replace("\r", "\r\n").encode(), "AA"),
    ("MSH with no field separator", b"MSH\rPID|1\r", "AR"),
    ("MSH-9 missing", GOOD.replace("ORU^R01", "").encode(), "AR"),
    ("MSH-10 missing", GOOD.replace("|GOOD-1|", "||").encode(), "AR"),
    ("MSH-12 missing", GOOD.replace("|P|2.5.1", "|P|").encode(), "AR"),
    ("version 2.6", GOOD.replace("|2.5.1", "|2.6").encode(), "AR"),
    ("an ADT message", GOOD.replace("ORU^R01", "ADT^A01").encode(), "AR"),
    ("ORU^R30", GOOD.replace("ORU^R01", "ORU^R30").encode(), "AR"),
    ("a birth date that is no date", GOOD.replace("19800102", "19801302").encode(), "AE"),
    (
        "an observation time that is no time",
        GOOD.replace("20240102080000|||", "2024-01-02|||", 1)
        .replace("F|||20240102080000", "F|||2024-01-02", 1)
        .encode(),
        "AE",
    ),
    ("latin-1 bytes with no charset", GOOD.replace("Doe", "Doë").encode("latin-1"), "AR"),
    ("latin-1 bytes, MSH-18 says 8859/1", LATIN_1_DECLARED.encode("latin-1"), "AA"),
    ("a character set we do not know", UNKNOWN_CHARSET.encode(), "AR"),
    ("a 1 MB OBX", BIG_OBX.encode(), "AA"),
    ("unknown and Z segments", WITH_Z_SEGMENTS.encode(), "AA"),
    ("an OBX before any OBR", GOOD.replace("OBR|", "XBR|").encode(), "AE"),
    ("junk before MSH", b"\xff\xfe junk " + GOOD.encode(), "AA"),
]


@pytest.mark.parametrize(("case", "payload", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
def test_the_malformed_corpus_gets_the_right_ack_and_is_kept(
    app, listener, case, payload, expected
):
    answer = send(listener.port, payload)
    fields = msa(answer)
    assert fields[1] == expected, (case, fields)
    if expected != "AA":
        assert fields[3], "a refusal says why in MSA-3"
        assert b"\rERR|" in answer
    with app.app_context():
        (stored,) = filed_messages()
        assert stored.raw == payload  # kept byte for byte, whatever it was
        assert stored.ack_code == expected
        assert stored.state == (PROCESSED if expected == "AA" else REJECTED)
    # and the listener still serves the next message
    assert msa(send(listener.port, oru(control_id="NEXT").encode()))[1] == "AA"


def test_a_1mb_result_is_filed_whole(app, listener):
    with app.app_context():
        add_patient(mrn="M-BIG")
    big = f"OBX|1|TX|11502-2^Report^LN||{BIG_TEXT}||||||F"
    payload = oru(control_id="BIG", mrn="M-BIG", observations=[big])
    assert msa(send(listener.port, payload.encode()))[1] == "AA"
    with app.app_context():
        filed_messages()
        (result,) = db.session.scalars(select(LabResult)).all()
        assert len(result.value_text) == len(BIG_TEXT) and result.patient_id is not None


def test_a_resent_message_is_acknowledged_again_and_filed_once(app, listener):
    with app.app_context():
        patient_id, mrn = add_patient()
        add_order(patient_id, "P-77")
    message = oru(control_id="DUP-1", mrn=mrn, placer="P-77").encode()
    first, second = send(listener.port, message), send(listener.port, message)
    assert msa(first)[1:3] == ["AA", "DUP-1"]
    assert msa(second)[1:3] == ["AA", "DUP-1"]
    with app.app_context():
        assert len(filed_messages()) == 1
        assert db.session.scalar(select(func.count()).select_from(LabResult)) == 2
    # The same control id from another lab is another message.
    other = oru(control_id="DUP-1", mrn=mrn, placer="P-77", facility="OTHER LAB").encode()
    assert msa(send(listener.port, other))[1] == "AA"
    with app.app_context():
        assert len(stored_messages()) == 2


def test_several_messages_on_one_connection_and_connections_in_parallel(app, listener):
    def connection(number: int, answers: list):
        with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as sock:
            for index in range(5):
                sock.sendall(frame(oru(control_id=f"C{number}-{index}").encode()))
                answers.append(msa(read_frame(sock))[1])

    answers: list[str] = []
    threads = [threading.Thread(target=connection, args=(n, answers)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == ["AA"] * 30
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LabMessage)) == 30


def test_a_connection_closed_inside_a_frame_keeps_what_came_and_answers_nothing(app, listener):
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(b"\x0b" + GOOD.encode()[:100])
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b""  # no ACK for a message that never ended
    with app.app_context():
        # The handler stores it as the connection ends (a moment later; longer on a loaded
        # machine: the deadline is generous and the poll ends as soon as the row is there).
        deadline = time.monotonic() + 30
        while not (rows := stored_messages()):
            assert time.monotonic() < deadline, "the listener never stored the cut message"
            threading.Event().wait(0.05)
        (stored,) = rows
        assert stored.raw == GOOD.encode()[:100] and stored.state == REJECTED
    assert msa(send(listener.port, GOOD.encode()))[1] == "AA"


def test_bytes_outside_any_frame_do_not_stop_the_listener(app, listener):
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b""
    assert msa(send(listener.port, GOOD.encode()))[1] == "AA"
