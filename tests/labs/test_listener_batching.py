"""The listener's group commit and batched filing, over real sockets and the real database:
each ACK names the row that stores its own message, a duplicate inside a batch is stored
once, a database that refuses to store gets no ACK sent, one message that cannot be filed
does not hold back the others, and a connection's messages are filed in the order sent."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select, text

from portal.extensions import db
from portal.labs import services
from portal.labs.hl7 import oru as hl7_oru
from portal.labs.listener import frame
from portal.labs.models import FAILED, PROCESSED, LabMessage, LabResult
from tests.labs.helpers import (
    add_patient,
    filed_messages,
    free_port,
    msa,
    oru,
    read_frame,
    send,
    start_listener,
    stored_messages,
)


def _ack_control_id(answer: bytes) -> str:
    """MSH-10 of an ACK: ``A<id of the row that stores the message>``."""
    msh = answer.decode().split("\r", 1)[0].split("|")
    return msh[9]


@contextmanager
def refusing(table: str, when: str = ""):
    """A trigger that makes the database refuse inserts into ``table`` (only rows where
    ``when``, a condition on NEW, holds): a real refusal, as a full disk or a broken
    constraint gives one. Dropped afterwards (PostgreSQL's test database is shared)."""
    dialect = db.engine.dialect.name
    with db.engine.begin() as connection:
        if dialect == "sqlite":
            condition = f"WHEN {when}" if when else ""
            connection.execute(
                text(
                    f"CREATE TRIGGER refuse_insert BEFORE INSERT ON {table} {condition} "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
                )
            )
            condition = f"WHEN ({when})" if when else ""
            connection.execute(
                text(
                    f"CREATE TRIGGER refuse_insert BEFORE INSERT ON {table} FOR EACH ROW "
                    f"{condition} EXECUTE FUNCTION refuse_insert()"
                )
            )
    try:
        yield
    finally:
        with db.engine.begin() as connection:
            if dialect == "sqlite":
                connection.execute(text("DROP TRIGGER refuse_insert"))
            else:
                connection.execute(text(f"DROP TRIGGER refuse_insert ON {table}"))
                connection.execute(text("DROP FUNCTION refuse_insert()"))


def test_every_ack_names_the_row_that_stores_its_own_message(app, listener):
    """Many connections at once share commits; each ACK must still be for its own row."""

    def connection(number: int, answers: list):
        with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as sock:
            for index in range(15):
                control_id = f"G{number}-{index}"
                sock.sendall(frame(oru(control_id=control_id).encode()))
                answers.append((control_id, read_frame(sock)))

    answers: list[tuple[str, bytes]] = []
    threads = [threading.Thread(target=connection, args=(n, answers)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 120
    with app.app_context():
        by_id = {f"A{row.id}": row for row in filed_messages()}
        assert len(by_id) == 120
        for control_id, answer in answers:
            assert msa(answer)[1:3] == ["AA", control_id]
            assert by_id[_ack_control_id(answer)].control_id == control_id
            assert by_id[_ack_control_id(answer)].state == PROCESSED


def test_a_duplicate_inside_a_batch_is_stored_once_and_the_rest_of_the_batch_too(app):
    with app.app_context():
        earlier = oru(control_id="EARLY").encode()
        stored_before = services.receive(earlier)
        batch = [oru(control_id=c).encode() for c in ("B-1", "B-2", "B-1")] + [earlier]
        answers = services.receive_many([(raw, hl7_oru.read_message(raw)) for raw in batch])
        first, second, again, resent = answers
        assert (first.duplicate, second.duplicate, again.duplicate) == (False, False, True)
        assert again.message_id == first.message_id and "MSA|AA|B-1" in again.ack
        assert resent.duplicate and resent.message_id == stored_before.message_id
        rows = stored_messages()
        assert sorted(row.control_id for row in rows) == ["B-1", "B-2", "EARLY"]
        assert not again.to_file and first.to_file


def test_a_message_the_database_refuses_to_store_gets_no_ack(app, listener):
    payload = oru(control_id="REFUSED-1").encode()
    with app.app_context(), refusing("lab_messages"):
        with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as sock:
            sock.sendall(frame(payload))
            try:
                answer = sock.recv(100)
            except ConnectionResetError:
                answer = b""
        assert answer == b""  # closed without an ACK: the lab will send it again
        assert stored_messages() == []
    # the database takes it again: the resent message is stored and acknowledged once
    assert msa(send(listener.port, payload))[1:3] == ["AA", "REFUSED-1"]
    with app.app_context():
        (stored,) = filed_messages()
        assert stored.raw == payload and stored.state == PROCESSED


def test_a_message_that_cannot_be_filed_does_not_hold_back_its_batch(app):
    with app.app_context():
        _patient_id, mrn = add_patient(mrn="M-BATCH")
        good = oru(control_id="OK-1", mrn=mrn).encode()
        bad = oru(
            control_id="BAD-1",
            mrn=mrn,
            filler="F-BAD",
            observations=["OBX|1|NM|BOOM^Breaks filing^L||1|mg/dL|||||F"],
        ).encode()
        items = [(raw, hl7_oru.read_message(raw)) for raw in (bad, good)]
        bad_id, good_id = (answer.message_id for answer in services.receive_many(items))
        with refusing("lab_results", "NEW.code = 'BOOM'"):
            outcomes = services.file_many([(bad_id, items[0][1]), (good_id, items[1][1])])
        assert outcomes == {bad_id: FAILED, good_id: PROCESSED}
        states = {row.id: (row.state, row.attempts) for row in stored_messages()}
        assert states == {bad_id: (FAILED, 1), good_id: (PROCESSED, 1)}
        codes = db.session.scalars(select(LabResult.code).order_by(LabResult.id)).all()
        assert codes == ["2093-3", "2085-9"]  # the good message's results, and only those
        db.session.rollback()
        # the failed one is filed by the retry once the database takes it
        assert services.process_pending() == (1, 0)


def test_a_correction_sent_right_after_its_result_on_one_connection_replaces_it(app, listener):
    with app.app_context():
        _patient_id, mrn = add_patient(mrn="M-CORR")
    first = oru(
        control_id="P-1",
        mrn=mrn,
        observations=["OBX|1|NM|2093-3^Cholesterol^LN||212|mg/dL|<200|H|||P"],
    )
    corrected = oru(
        control_id="C-1",
        mrn=mrn,
        observations=["OBX|1|NM|2093-3^Cholesterol^LN||198|mg/dL|<200|N|||C"],
    )
    with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as sock:
        for message in (first, corrected):  # back to back: filed in one batch or two
            sock.sendall(frame(message.encode()))
            assert msa(read_frame(sock))[1] == "AA"
    with app.app_context():
        assert [row.state for row in filed_messages()] == [PROCESSED, PROCESSED]
        results = db.session.scalars(select(LabResult).order_by(LabResult.id)).all()
        assert [(r.status, r.value_numeric) for r in results] == [("P", 212), ("C", 198)]
        assert results[0].superseded_at is not None and results[1].superseded_at is None
        assert results[1].supersedes_id == results[0].id


def test_messages_stored_but_not_filed_when_the_listener_stops_are_filed_later(app):
    """Stopping the listener leaves what it had not filed ``received`` (stored, ACKed):
    ``process_pending`` (the worker, the next start) files it."""
    from portal.labs.listener import MllpServer

    server = MllpServer(app, "127.0.0.1", 0)
    for filer in server._filers:  # no filer: what is acknowledged waits, stored
        filer.stop()
    thread = server.serve_in_thread()
    try:
        assert msa(send(server.port, oru(control_id="LATE-1").encode()))[1] == "AA"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    with app.app_context():
        (stored,) = stored_messages()
        assert stored.state == "received"
        assert services.process_pending() == (1, 0)
        assert db.session.scalar(select(LabMessage.state)) == PROCESSED


def _children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_the_deployed_listener_files_in_processes_of_its_own_that_end_with_it(app):
    """``flask lab-listener`` (as ``make run`` starts it) files in filer processes: what
    two connections send is filed, and the filers end when the listener does."""
    with app.app_context():
        _patient_id, mrn = add_patient(mrn="M-PROC")
    port = free_port()
    listener = start_listener(app, port)
    try:
        deadline = time.monotonic() + 30
        while not (filers := _children_of(listener.pid)):
            assert time.monotonic() < deadline, "no filer process"
            time.sleep(0.1)

        def connection(number: int, answers: list):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                for index in range(10):
                    control_id = f"PROC{number}-{index}"
                    sock.sendall(frame(oru(control_id=control_id, mrn=mrn).encode()))
                    answers.append(msa(read_frame(sock))[1])

        answers: list[str] = []
        threads = [threading.Thread(target=connection, args=(n, answers)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert answers == ["AA"] * 20
        with app.app_context():
            rows = filed_messages(timeout=60)
            assert [row.state for row in rows] == [PROCESSED] * 20
            results = db.session.scalars(select(LabResult)).all()
            assert len(results) == 40 and {r.patient_id for r in results} != {None}
    finally:
        listener.terminate()
        listener.wait(10)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in filers):
        assert time.monotonic() < deadline, "a filer process outlived its listener"
        time.sleep(0.1)
