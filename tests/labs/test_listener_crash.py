"""The listener killed (SIGKILL) after it stored a message and before its ACK left: the lab
got no ACK and sends the message again; it is stored once and filed once."""

from __future__ import annotations

import signal
import socket
import time

from sqlalchemy import func, select

from portal.extensions import db
from portal.labs.listener import frame
from portal.labs.models import PROCESSED, RECEIVED, LabResult
from tests.labs.helpers import (
    add_order,
    add_patient,
    filed_messages,
    free_port,
    msa,
    oru,
    send,
    start_listener,
    stored_messages,
)


def test_a_listener_killed_between_store_and_ack_loses_nothing(app):
    with app.app_context():
        patient_id, mrn = add_patient()
        add_order(patient_id, "P-KILL")
    message = oru(control_id="KILL-1", mrn=mrn, placer="P-KILL").encode()
    port = free_port()
    first = start_listener(app, port, "--ack-delay", "60")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(frame(message))
            with app.app_context():
                deadline = time.monotonic() + 30
                while not stored_messages():  # stored and committed, the ACK not yet sent
                    assert time.monotonic() < deadline, "the listener never stored the message"
                    time.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            try:
                answer = sock.recv(100)
            except ConnectionResetError:
                answer = b""
            assert answer == b""  # the lab got no ACK
    finally:
        if first.poll() is None:
            first.kill()
    with app.app_context():
        (stored,) = stored_messages()
        assert stored.state == RECEIVED and stored.raw == message

    second = start_listener(app, port)
    try:
        assert msa(send(port, message))[1:3] == ["AA", "KILL-1"]  # the lab resends
        with app.app_context():
            (stored,) = filed_messages()
            assert stored.state == PROCESSED
            assert db.session.scalar(select(func.count()).select_from(LabResult)) == 2
    finally:
        second.terminate()
        second.wait(10)
