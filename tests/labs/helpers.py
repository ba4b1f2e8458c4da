"""What the labs' tests share: sample result messages, an MLLP client, rows to match to."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from sqlalchemy import select

from portal.auth.models import User
from portal.extensions import db
from portal.labs.listener import END_BLOCK, START_BLOCK, frame
from portal.labs.models import RECEIVED, LabMessage, LabOrder, LabOrderTest
from tests.support.database import AUDIT_KEY, DATA_KEY
from tests.support.factories import patient_row

ROOT = Path(__file__).resolve().parents[2]


def oru(
    *,
    control_id: str = "MSG00001",
    version: str = "2.5.1",
    facility: str = "ACME LAB",
    mrn: str = "",
    family: str = "Doe",
    given: str = "Jane",
    birth_date: str = "19800102",
    placer: str = "",
    filler: str = "F1001",
    obr_code: str = "24331-1^Lipid panel^LN",
    observations: list[str] | None = None,
    extra: str = "",
) -> str:
    """An ORU^R01 in the shape labs send: MSH, PID, ORC, OBR, OBX (and ``extra`` after)."""
    observations = observations or [
        "OBX|1|NM|2093-3^Cholesterol^LN||212|mg/dL|<200|H|||F|||20240102080000",
        "OBX|2|NM|2085-9^HDL Cholesterol^LN||45|mg/dL|>39|N|||F|||20240102080000",
    ]
    segments = [
        f"MSH|^~\\&|LIS|{facility}|PORTAL|CLINIC|20240102120000||ORU^R01|{control_id}|P|{version}",
        f"PID|1||{mrn}^^^CLINIC^MR||{family}^{given}||{birth_date}|F",
        f"ORC|RE|{placer}|{filler}",
        f"OBR|1|{placer}|{filler}|{obr_code}|||20240102080000||||||||||||||||F",
        *observations,
    ]
    return "\r".join(segments) + "\r" + extra


def send(port: int, payload: bytes, *, framed: bool = True, timeout: float = 30) -> bytes:
    """Send one message over MLLP on loopback and return the ACK's bytes (unframed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(frame(payload) if framed else payload)
        return read_frame(sock)


def read_frame(sock: socket.socket) -> bytes:
    data = b""
    while END_BLOCK not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    if not data.startswith(START_BLOCK):
        raise AssertionError(f"no MLLP frame in the answer: {data[:40]!r}")
    return data[1 : data.index(END_BLOCK)]


def msa(ack: bytes) -> list[str]:
    """The MSA segment's fields of an ACK: [MSA, code, control id, text]."""
    for segment in ack.decode().split("\r"):
        if segment.startswith("MSA"):
            return segment.split("|")
    raise AssertionError(f"no MSA in {ack!r}")


def add_patient(given="Jane", family="Doe", birth_date=date(1980, 1, 2), mrn=None):
    patient = patient_row(given, family, birth_date)
    if mrn:
        patient.mrn = mrn
    db.session.add(patient)
    db.session.commit()
    return patient.id, patient.mrn


def add_order(patient_id: int, placer: str, tests=(("24331-1", "Lipid panel"),), provider_id=None):
    provider_id = provider_id or db.session.scalar(select(User.id).where(User.username == "drlee"))
    order = LabOrder(
        placer_order_number=placer,
        patient_id=patient_id,
        ordering_provider_id=provider_id,
        status="sent",
        priority="routine",
        fasting=False,
    )
    order.tests = [LabOrderTest(loinc=code, name=name) for code, name in tests]
    db.session.add(order)
    db.session.commit()
    return order.id


def stored_messages() -> list[LabMessage]:
    rows = db.session.scalars(select(LabMessage).order_by(LabMessage.id)).all()
    db.session.rollback()
    return rows


def filed_messages(timeout: float = 60) -> list[LabMessage]:
    """The stored messages once none waits to be filed: the listener files a message right
    after its ACK, so a test that read the ACK waits here for the filing (polls the table;
    the deadline is for a loaded machine, the poll ends as soon as nothing waits)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = stored_messages()
        if all(row.state != RECEIVED for row in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_listener(app, port: int, *extra: str) -> subprocess.Popen:
    """``flask lab-listener`` as deployed (its own process) on the test database."""
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
    while not _listens_on(process.pid, port):  # until it listens (itself: see below)
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the listener did not start on port {port}")
        time.sleep(0.1)
    return process


def _listens_on(pid: int, port: int) -> bool:
    """Process ``pid`` holds the socket listening on ``port`` (Linux's /proc).

    ``free_port`` can only say that a port was free a moment ago: on a machine running other
    test suites, something else may take it before the listener binds it. A connection that
    succeeds would then reach that other program, and the test would talk to a stranger; the
    socket's owner says whose it is.
    """
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    listening.add(f"socket:[{fields[9]}]")
    if not listening:
        return False
    with contextlib.suppress(OSError):  # the process may be gone, or a descriptor closed
        return any(os.readlink(fd) in listening for fd in Path(f"/proc/{pid}/fd").iterdir())
    return False
