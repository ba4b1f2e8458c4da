"""The listener killed (SIGKILL) after it stored a message and before its ACK left: the lab
got no ACK and sends the message again; it is stored once and filed once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from portal.extensions import db
from portal.labs.listener import frame
from portal.labs.models import PROCESSED, RECEIVED, LabResult
from tests.labs.helpers import (
    add_order,
    add_patient,
    filed_messages,
    msa,
    oru,
    send,
    stored_messages,
)
from tests.support.database import AUDIT_KEY, DATA_KEY

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_listener(app, port: int, *extra: str) -> subprocess.Popen:
    environment = {
        **os.environ,
        "PORTAL_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "PORTAL_INSTANCE_PATH": app.instance_path,
        "PORTAL_AUDIT_KEY": AUDIT_KEY,
        "PORTAL_DATA_ENCRYPTION_KEY": DATA_KEY,
    }
    command = [
        sys.executable,
        "-m",
        "flask",
        "--app",
        "portal",
        "lab-listener",
        "--port",
        str(port),
        *extra,
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while True:  # until it listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError("the listener did not start") from None
            time.sleep(0.1)


def test_a_listener_killed_between_store_and_ack_loses_nothing(app):
    with app.app_context():
        patient_id, mrn = add_patient()
        add_order(patient_id, "P-KILL")
    message = oru(control_id="KILL-1", mrn=mrn, placer="P-KILL").encode()
    port = _free_port()
    first = _start_listener(app, port, "--ack-delay", "60")
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

    second = _start_listener(app, port)
    try:
        assert msa(send(port, message))[1:3] == ["AA", "KILL-1"]  # the lab resends
        with app.app_context():
            (stored,) = filed_messages()
            assert stored.state == PROCESSED
            assert db.session.scalar(select(func.count()).select_from(LabResult)) == 2
    finally:
        second.terminate()
        second.wait(10)
