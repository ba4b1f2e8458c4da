"""What the lab ordering tests share: a small lab over MLLP on a real loopback socket (it
answers AA, AE, AR, nothing, or hangs up), a lab connector that talks to it through the lab
connector's interface (the contract labslink's ``hl7lab`` keeps: ``send_order``,
``identities``, ``lab_code_for``), and rows to order on."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select, update

from portal.charting.models import Problem
from portal.extensions import db
from portal.integrations import registry
from portal.integrations.base import Field, LabConnector, PermanentError, TransientError
from portal.integrations.delivery import deliver_due
from portal.integrations.models import OutboxMessage
from portal.integrations.settings import Submitted, save_and_enable
from portal.labs.listener import END_BLOCK, START_BLOCK, frame
from portal.labs.models import LabOrder
from portal.timeutil import utcnow
from tests.support.clients import actor_of
from tests.support.factories import patient_row

XSS = "<script>alert('lab')</script>"


@dataclass(frozen=True)
class Ack:
    code: str
    text: str
    control_id: str


class MllpLab:
    """An MLLP server on a free loopback port; ``mode`` decides its answer to each order:
    "AA", "AE", "AR", "silent" (reads, never answers) or "hangup" (closes at once)."""

    def __init__(self):
        self.mode = "AA"
        self.reason = "Unknown test code"
        self.received: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        with conn:
            if self.mode == "hangup":
                return
            data = b""
            conn.settimeout(10)
            try:
                while END_BLOCK not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
            except OSError:
                return
            text = data[data.index(START_BLOCK) + 1 : data.index(END_BLOCK)].decode()
            self.received.append(text)
            if self.mode == "silent":
                self.stopped.wait(5)
                return
            control = text.split("\r")[0].split("|")[9]
            reason = "" if self.mode == "AA" else self.reason
            ack = (
                "MSH|^~\\&|LIS|TESTLAB|PORTAL|CLINIC|20261206120000||ACK^O01|"
                f"A{len(self.received)}|P|2.5.1\rMSA|{self.mode}|{control}|{reason}\r"
            )
            conn.sendall(frame(ack))

    def stop(self):
        """Stop listening: a connection to the port is refused from now on."""
        self.stopped.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in its thread
        self.sock.close()
        self.thread.join(timeout=5)


class MllpLabConnector(LabConnector):
    """A lab connector speaking MLLP to ``MllpLab``, through the lab connector's interface."""

    name = "testlab"
    title = "Test Lab"
    fields = (
        Field("host", "Host"),
        Field("port", "Port", type="integer"),
        Field("timeout", "Timeout (seconds)", type="integer", required=False, default=2),
        Field("lab_codes", "Lab codes", required=False, default=""),
    )

    def check(self) -> None:
        return None

    def deliver(self, operation, payload, idempotency_key):
        raise PermanentError(f"testlab does not {operation} by itself")

    def identities(self) -> dict:
        return {
            "sending_application": "PORTAL",
            "sending_facility": "RIVERSIDE",
            "receiving_application": "LIS",
            "receiving_facility": "TESTLAB",
        }

    def lab_code_for(self, loinc: str):
        for line in (self.settings.get("lab_codes") or "").splitlines():
            code, _, mapped = line.partition("=")
            if code.strip() == loinc:
                lab_code, _, name = mapped.partition("^")
                return lab_code.strip(), name.strip()
        return None

    def send_order(self, message: str) -> Ack:
        timeout = float(self.settings.get("timeout") or 2)
        try:
            sock = socket.create_connection(
                (self.settings["host"], int(self.settings["port"])), timeout=timeout
            )
        except OSError as error:
            raise TransientError(
                f"the lab refused the connection ({type(error).__name__})"
            ) from None
        with sock:
            try:
                sock.sendall(frame(message))
                data = b""
                while END_BLOCK not in data:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise TransientError("the lab closed the connection without an ACK")
                    data += chunk
            except TimeoutError:
                raise TransientError("no ACK from the lab within the timeout") from None
            except OSError as error:
                raise TransientError(f"the connection dropped ({type(error).__name__})") from None
        for segment in data.strip(START_BLOCK + END_BLOCK).decode().split("\r"):
            if segment.startswith("MSA|"):
                fields = [*segment.split("|"), "", "", ""]
                return Ack(fields[1], fields[3], fields[2])
        raise TransientError("the lab's answer had no MSA")


def register_test_lab():
    registry.register(MllpLabConnector)


def unregister_test_lab():
    registry.unregister(MllpLabConnector.name)


def enable_test_lab(app, lab: MllpLab, *, lab_codes: str = ""):
    with app.app_context():
        save_and_enable(
            actor_of("admin"),
            "testlab",
            Submitted(
                values={
                    "host": "127.0.0.1",
                    "port": str(lab.port),
                    "timeout": "1",
                    "lab_codes": lab_codes,
                },
                secrets={},
            ),
        )
        db.session.remove()


def a_patient(app, *, problems=(("E11.9", "Type 2 diabetes mellitus"),)) -> int:
    with app.app_context():
        patient = patient_row("Ada", "Lovelace", date(1985, 12, 10))
        db.session.add(patient)
        db.session.flush()
        for code, description in problems:
            db.session.add(Problem(patient_id=patient.id, icd10_code=code, description=description))
        db.session.commit()
        return patient.id


def load(app, order_id: int) -> LabOrder:
    with app.app_context():
        order = db.session.get(LabOrder, order_id)
        db.session.expunge(order)
        return order


def outbox_of(app, order_id: int) -> list[OutboxMessage]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.order_id == order_id)
                .order_by(OutboxMessage.id)
            )
        )
        for row in rows:
            db.session.expunge(row)
        return rows


def deliver(app, **options):
    """One turn of the worker's delivery job."""
    with app.app_context():
        run = deliver_due(seconds=5.0, **options)
        db.session.remove()
        return run


def due_now(app, order_id: int) -> None:
    """Make the order's waiting messages due (a retry's back-off elapsed)."""
    with app.app_context():
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.order_id == order_id)
            .values(next_attempt_at=utcnow())
        )
        db.session.commit()


# The pages, as a prescriber's browser would post them.

ORDER_URL = re.compile(r"/labs/orders/(\d+)$")


def start(client, patient_id: int, encounter_id: int | None = None) -> int:
    data = {"encounter_id": str(encounter_id)} if encounter_id else {}
    response = client.post_form(f"/labs/patients/{patient_id}/orders", data)
    assert response.status_code == 303, response.status_code
    return int(ORDER_URL.search(response.location).group(1))


def add(client, order_id: int, *loincs: str) -> None:
    for loinc in loincs:
        response = client.post_form(f"/labs/orders/{order_id}/tests", {"loinc": loinc})
        assert response.status_code == 303, response.get_data(as_text=True)[:500]


def details(**overrides) -> dict:
    data = {"priority": "routine", "connector": "", "note": "", "collection_date": ""}
    data.update(overrides)
    return data


def set_status(app, order_id: int, status: str) -> None:
    """Move an order to ``status`` behind the app's back (as the lab's answers would)."""
    with app.app_context():
        db.session.execute(update(LabOrder).where(LabOrder.id == order_id).values(status=status))
        db.session.commit()


def sign(client, order_id: int, **overrides):
    return client.post_form(f"/labs/orders/{order_id}", details(action="sign", **overrides))


def field_error(html: str, field_id: str) -> str:
    match = re.search(rf'id="{field_id}-error">([^<]*)<', html)
    return match.group(1) if match else ""
