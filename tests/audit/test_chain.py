"""The trail cannot be quietly rewritten: `audit verify` names every tampering that someone
with write access to the database, but without the audit key, could try.

To play that attacker, the tests get past the append-only guard the way such a person would
(``tests.audit.helpers.tamper``): on SQLite by dropping the triggers, on PostgreSQL with
session_replication_role = replica. Each test checks that verify fails *and* names the
event, so a check that stopped working, or found something else, fails the test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import DatabaseError

import portal
from portal.actors import SOURCE_CLI, Actor
from portal.audit import integrity, sealing
from portal.audit import services as audit
from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.transaction import use_case
from tests.audit.helpers import events, stored_time, tamper

TESTER = Actor(id=None, username="tester", source=SOURCE_CLI)


def verify(app) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    return result.exit_code, result.output


def broken(app) -> str:
    """verify's output, which must be a failure; its first problem comes first."""
    code, output = verify(app)
    assert code == 1, output
    assert output.startswith("Audit trail BROKEN: ") or "\nAudit trail BROKEN: " in output
    return output


def first_problem(output: str) -> str:
    return output.split("Audit trail BROKEN: ", 1)[1].splitlines()[0]


def record_events(app, count: int, start: int = 0) -> None:
    with app.app_context():
        for number in range(start, start + count):
            with use_case():
                audit.record(TESTER, "test.event", detail=f"event {number}", patient_id=number)
        db.session.remove()


def seal(app) -> sealing.SealResult:
    with app.app_context():
        result = sealing.seal_all()
        db.session.remove()
    return result


def checkpoint(app):
    with app.app_context():
        written = sealing.checkpoint()
        db.session.remove()
    return written


def event_id(app, seq: int) -> int:
    with app.app_context():
        found = db.session.scalar(select(AuditEvent.id).where(AuditEvent.seq == seq))
        db.session.remove()
    return found


@pytest.fixture
def trail(app):
    """Six events written the application's way, sealed, and a checkpoint of the head."""
    record_events(app, 6)
    assert seal(app).sealed == 6
    assert checkpoint(app).seq == 6
    return app


# --- writing ---------------------------------------------------------------------------------


def test_writing_an_event_takes_no_lock_and_reads_nothing(app):
    """One INSERT, nothing else: no advisory lock, no read of the chain's head."""
    statements = []
    with app.app_context():
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            with use_case():
                statements.clear()
                audit.record(TESTER, "test.event", patient_id=7, detail="one")
                audit.record_many(
                    TESTER, "test.many", [{"patient_id": n, "detail": f"p{n}"} for n in (1, 2, 3)]
                )
                written = [s for s in statements if not s.startswith("BEGIN")]  # SQLite's own
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
    assert len(written) == 2, written
    assert all(s.lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS") for s in written)
    rows = events(app)
    assert [(e.action, e.patient_id) for e in rows] == [
        ("test.event", 7),
        ("test.many", 1),
        ("test.many", 2),
        ("test.many", 3),
    ]
    assert all(e.seq is None and e.entry_hash is None and e.previous_hash is None for e in rows)
    assert all(e.scheme == "hmac" and re.fullmatch(r"[0-9a-f]{64}", e.event_mac) for e in rows)
    assert len({e.nonce for e in rows}) == 4  # one instant, one actor: still four MACs
    assert len({e.event_mac for e in rows}) == 4


def test_the_event_mac_is_a_keyed_hmac_of_the_fields(app):
    record_events(app, 1)
    (stored,) = events(app)
    values = [getattr(stored, name) for name in integrity.MAC_FIELDS]
    values[0] = integrity.format_time(stored.occurred_at)
    payload = json.dumps(values, separators=(",", ":"), ensure_ascii=False)
    with app.app_context():
        key = integrity.current_keys().event
    assert stored.event_mac == hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
    # Not a plain hash of the same text: without the key it cannot be made.
    assert stored.event_mac != hashlib.sha256(payload.encode()).hexdigest()


def test_an_event_commits_with_its_use_case_or_not_at_all(app):
    with app.app_context(), pytest.raises(RuntimeError, match="changed my mind"), use_case():
        audit.record(TESTER, "test.rolled_back")
        raise RuntimeError("changed my mind")
    assert events(app) == []


def test_record_names_objects_flushing_only_new_ones(app):
    from portal.clinic.models import Clinic, Location

    statements = []
    with app.app_context():
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        clinic = db.session.scalars(select(Clinic)).first()
        with use_case():
            location = Location(clinic_id=clinic.id, name="Annex")
            db.session.add(location)
            audit.record(TESTER, "location.create", obj=location)  # new: flushed for its id
            event.listen(db.engine, "before_cursor_execute", listener)
            try:
                audit.record(TESTER, "clinic.view", obj=clinic)  # has its id: just the INSERT
            finally:
                event.remove(db.engine, "before_cursor_execute", listener)
        location_id = location.id
    assert len(statements) == 1 and statements[0].lstrip().upper().startswith("INSERT")
    created, viewed = events(app)
    assert (created.object_type, created.object_id) == ("locations", str(location_id))
    assert viewed.object_type == "clinics"


# --- sealing -------------------------------------------------------------------------------


def test_the_sealer_numbers_and_links_the_events(trail):
    rows = events(trail)
    assert [e.seq for e in rows] == list(range(1, 7))
    assert rows[0].previous_hash == integrity.GENESIS_HASH
    for before, after in pairwise(rows):
        assert after.previous_hash == before.entry_hash
    with trail.app_context():
        keys = integrity.current_keys()
    for row in rows:
        assert row.entry_hash == integrity.chain_link(
            keys, row.previous_hash, row.seq, row.event_mac, None
        )
        assert row.seal_problem is None


def test_verify_passes_on_an_intact_trail(trail, signed_in):
    signed_in("admin").get("/admin/users")  # events written by real requests too
    seal(trail)
    code, output = verify(trail)
    assert code == 0, output
    assert f"{len(events(trail)) - 1} events verified" in output  # less verify's own event
    assert "the newest being #6" in output


def test_verify_passes_on_an_empty_trail(app):
    code, output = verify(app)
    assert code == 0, output
    assert "0 events verified" in output


def test_verify_checks_unsealed_events_and_records_its_own_run(trail):
    record_events(trail, 2, start=6)
    code, output = verify(trail)
    assert code == 0, output
    assert "8 events verified (6 sealed, 0 of them legacy; 2 awaiting the sealer" in output
    (run,) = events(trail, "audit.verify")
    assert run.username.startswith("cli:") and run.outcome == "success"
    assert run.detail == "8 events, 0 problems"


# --- tampering with sealed events ----------------------------------------------------------


def test_verify_names_an_edited_event(trail):
    third = event_id(trail, 3)
    tamper(trail, "UPDATE audit_events SET detail = 'nothing to see' WHERE seq = 3")
    output = broken(trail)
    assert first_problem(output) == (
        f"event #3 (id {third}) was altered: its MAC does not match its fields (or it was forged)"
    )


def test_verify_names_an_event_whose_time_was_moved(trail):
    moved = events(trail)[2].occurred_at - timedelta(hours=5)
    tamper(
        trail,
        "UPDATE audit_events SET occurred_at = :moved WHERE seq = 3",
        moved=stored_time(trail, moved),
    )
    assert first_problem(broken(trail)).startswith("event #3 ")


def test_verify_names_a_removed_event(trail):
    tamper(trail, "DELETE FROM audit_events WHERE seq = 4")
    assert first_problem(broken(trail)) == "event #4 removed (the chain jumps to #5)"


def test_verify_names_a_run_of_removed_events(trail):
    tamper(trail, "DELETE FROM audit_events WHERE seq IN (2, 3)")
    assert first_problem(broken(trail)) == "events #2-3 removed (the chain jumps to #4)"


def test_verify_names_the_newest_events_removed_after_a_checkpoint(trail):
    """The chain that is left is intact in itself: only the checkpoint shows the loss."""
    tamper(trail, "DELETE FROM audit_events WHERE seq IN (5, 6)")
    problem = first_problem(broken(trail))
    assert problem.startswith("the chain ends at #4 but the checkpoint of ")
    assert problem.endswith("recorded #6: events #5-6 were removed")


def _reattribute_and_rechain(app, mac_of, link_of) -> int:
    """Give event #3 to another user and recompute its MAC and every later link with the
    functions given (what an attacker without the audit key can do)."""
    rows = events(app)
    victim = rows[2]
    statements, params = [], {}
    previous = rows[1].entry_hash
    for row in rows[2:]:
        fields = {name: getattr(row, name) for name in integrity.MAC_FIELDS}
        if row.seq == 3:
            fields.update(user_id=4, username="drlee", user_roles="prescriber")
        mac = mac_of(fields) if row.seq == 3 else row.event_mac
        entry = link_of(previous, row.seq, mac)
        statements.append(
            f"UPDATE audit_events SET user_id = :u{row.seq}, username = :n{row.seq}, "
            f"user_roles = :r{row.seq}, event_mac = :m{row.seq}, previous_hash = :p{row.seq}, "
            f"entry_hash = :e{row.seq} WHERE id = {row.id}"
        )
        params.update(
            {
                f"u{row.seq}": fields["user_id"],
                f"n{row.seq}": fields["username"],
                f"r{row.seq}": fields["user_roles"],
                f"m{row.seq}": mac,
                f"p{row.seq}": previous,
                f"e{row.seq}": entry,
            }
        )
        previous = entry
    tamper(app, *statements, **params)
    return victim.id


def _plain_sha256(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def test_verify_names_an_event_reattributed_with_every_hash_recomputed_by_sha256(trail):
    victim = _reattribute_and_rechain(
        trail,
        mac_of=lambda fields: hashlib.sha256(repr(fields).encode()).hexdigest(),
        link_of=_plain_sha256,
    )
    assert (events(trail)[2].username, events(trail)[2].user_id) == ("drlee", 4)
    problem = first_problem(broken(trail))
    assert problem.startswith(f"event #3 (id {victim}) ")


def test_verify_names_an_event_reattributed_and_rechained_with_a_wrong_key(trail):
    """The attacker knows the whole algorithm and uses it, with a key of their own."""
    wrong = integrity.keys_from("an attacker's guess at the key, long enough")
    victim = _reattribute_and_rechain(
        trail,
        mac_of=lambda fields: integrity.event_mac(wrong, fields),
        link_of=lambda previous, seq, mac: integrity.chain_link(wrong, previous, seq, mac, None),
    )
    output = broken(trail)
    assert first_problem(output).startswith(f"event #3 (id {victim}) has a wrong chain hash")
    # The later events, relinked with the wrong key, are each named too.
    for seq in (4, 5, 6):
        assert f"event #{seq} (id {event_id(trail, seq)}) has a wrong chain hash" in output


def test_verify_names_a_removed_event_hidden_by_renumbering_and_relinking(trail):
    """Delete #3, renumber the rest, relink them with a guessed key: the links are wrong."""
    wrong = integrity.keys_from("an attacker's guess at the key, long enough")
    rows = events(trail)
    statements = ["DELETE FROM audit_events WHERE seq = 3"]
    previous = rows[1].entry_hash
    for row in rows[3:]:
        entry = integrity.chain_link(wrong, previous, row.seq - 1, row.event_mac, None)
        statements.append(
            f"UPDATE audit_events SET seq = {row.seq - 1}, previous_hash = '{previous}', "
            f"entry_hash = '{entry}' WHERE id = {row.id}"
        )
        previous = entry
    tamper(trail, *statements)
    output = broken(trail)
    assert first_problem(output) == (
        f"event #3 (id {rows[3].id}) has a wrong chain hash: the chain was rewritten without "
        "the audit key, or the event's seal was altered"
    )
    assert "recorded #6: event #6 were removed" not in output
    assert "the chain ends at #5 but the checkpoint" in output


def _forged_values(app, seq, previous) -> dict:
    genuine = events(app)[0]
    return {
        "seq": seq,
        "occurred": stored_time(app, genuine.occurred_at),
        "previous": previous,
        "entry": "e" * 64,
        "mac": "f" * 64,
    }


FORGED_INSERT = (
    "INSERT INTO audit_events (seq, occurred_at, username, action, outcome, detail, scheme, "
    "nonce, event_mac, previous_hash, entry_hash) VALUES (:seq, :occurred, 'tester', "
    "'test.event', 'success', 'forged', 'hmac', 'n', :mac, :previous, :entry)"
)


def test_verify_names_an_event_forged_into_the_middle(trail):
    """A forged event slipped in after #2, the later ones renumbered to make room."""
    second = events(trail)[1]
    tamper(
        trail,
        # Two steps, so the unique seq never collides while renumbering.
        "UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 3",
        "UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1003",
        FORGED_INSERT,
        **_forged_values(trail, 3, second.entry_hash),
    )
    forged = event_id(trail, 3)
    assert first_problem(broken(trail)).startswith(f"event #3 (id {forged}) has a wrong chain hash")


def test_verify_names_an_event_forged_onto_the_end(trail):
    tamper(trail, FORGED_INSERT, **_forged_values(trail, 7, events(trail)[-1].entry_hash))
    forged = event_id(trail, 7)
    assert first_problem(broken(trail)).startswith(f"event #7 (id {forged}) ")


def test_verify_names_a_keyed_event_passed_off_as_legacy(trail):
    """Marking an event 'sha256' and giving it a plain SHA-256 does not make it legacy."""
    row = events(trail)[3]
    fields = {
        name: getattr(row, name) for name in integrity.LEGACY_FIELDS if name != "source_address"
    }
    fields.update(source_address=row.source, detail="rewritten")
    tamper(
        trail,
        f"UPDATE audit_events SET scheme = 'sha256', detail = 'rewritten', entry_hash = "
        f"'{integrity.legacy_hash(fields)}' WHERE seq = 4",
    )
    assert first_problem(broken(trail)) == (
        f"event #4 (id {row.id}) claims the legacy (unkeyed) scheme after the keyed chain began "
        "at #1: it was forged"
    )


# --- tampering before sealing --------------------------------------------------------------


def test_an_event_edited_before_sealing_is_named_then_sealed_with_its_problem(trail):
    record_events(trail, 1, start=6)
    unsealed = events(trail)[-1]
    tamper(trail, f"UPDATE audit_events SET user_id = 1 WHERE id = {unsealed.id}")
    assert first_problem(broken(trail)) == (
        f"unsealed event id {unsealed.id} was altered or forged: its MAC does not match its fields"
    )
    result = seal(trail)
    assert result.problem_ids == [unsealed.id]  # (verify's own event is sealed too, soundly)
    sealed = events(trail)[6]
    assert (sealed.id, sealed.seq, sealed.seal_problem) == (unsealed.id, 7, "mac_mismatch")
    assert first_problem(broken(trail)) == (
        f"event #7 (id {unsealed.id}) was altered or forged before it was sealed: its MAC did "
        "not match its fields when the sealer reached it"
    )


# What ``record`` writes, forged: no seal values yet.
FORGED_UNSEALED = (
    "INSERT INTO audit_events (occurred_at, username, action, outcome, detail, scheme, nonce, "
    "event_mac) VALUES (:occurred, 'tester', 'test.event', 'success', 'forged', 'hmac', 'n', "
    ":mac)"
)


def test_clearing_the_sealers_note_breaks_the_link(trail):
    tamper(trail, FORGED_UNSEALED, **_forged_values(trail, None, None))
    forged = events(trail)[-1].id
    assert seal(trail).problem_ids == [forged]
    tamper(trail, f"UPDATE audit_events SET seal_problem = NULL WHERE id = {forged}")
    assert first_problem(broken(trail)).startswith(f"event #7 (id {forged}) has a wrong chain hash")


def test_a_forged_unsealed_event_is_named_before_and_after_sealing(trail):
    tamper(trail, FORGED_UNSEALED, **_forged_values(trail, None, None))
    forged = events(trail)[-1].id
    assert first_problem(broken(trail)).startswith(
        f"unsealed event id {forged} was altered or forged"
    )
    seal(trail)
    assert first_problem(broken(trail)).startswith(
        f"event #7 (id {forged}) was altered or forged before it was sealed"
    )


def test_an_unsealed_row_with_seal_values_is_named_and_does_not_stall_the_sealer(trail):
    """The guard refuses to seal such a row; the sealer passes it by and seals the rest."""
    tamper(trail, FORGED_INSERT.replace(":seq", "NULL"), **_forged_values(trail, None, None))
    forged = events(trail)[-1].id
    record_events(trail, 2, start=6)
    assert seal(trail).sealed == 2
    assert [e.seq for e in events(trail)] == [1, 2, 3, 4, 5, 6, 7, 8, None]
    assert first_problem(broken(trail)) == (
        f"unsealed event id {forged} carries seal values but no seq: it was forged, or its seq "
        "was removed"
    )


def test_a_replayed_copy_of_a_genuine_event_is_named(trail):
    """A copy carries a valid MAC (the attacker cannot make one, but can copy one): the
    sealer seals it, and verify finds two events with one MAC."""
    columns = ", ".join(["occurred_at", "scheme", "event_mac", *integrity.MAC_FIELDS[1:]])
    original = event_id(trail, 2)
    tamper(
        trail,
        f"INSERT INTO audit_events ({columns}) SELECT {columns} FROM audit_events "
        f"WHERE id = {original}",
    )
    copy = events(trail)[-1].id
    assert seal(trail).problem_ids == []
    assert first_problem(broken(trail)) == (
        f"event id {copy} is a copy of event id {original} (the same MAC; an event in all): "
        "a genuine event was replayed"
    )


# --- the database's own guard --------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET detail = 'changed' WHERE seq = 2",
        "UPDATE audit_events SET seq = 99 WHERE seq = 2",  # re-sealing
        "UPDATE audit_events SET seal_problem = 'x' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 2",
        "DELETE FROM audit_events",
    ],
)
def test_the_database_refuses_to_change_or_remove_sealed_events(trail, statement):
    with trail.app_context(), pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(text(statement))
        db.session.commit()
    assert len(events(trail)) == 6
    assert verify(trail)[0] == 0


@pytest.mark.parametrize(
    "assignments",
    [
        "detail = 'changed'",  # an unsealed event is no more editable than a sealed one
        "event_mac = NULL",
        # A seal that also changes a field.
        "seq = 7, previous_hash = 'p', entry_hash = 'e', detail = 'changed'",
        "seq = 7, entry_hash = 'e'",  # an incomplete seal
    ],
)
def test_the_database_lets_only_the_seal_change_an_unsealed_event(trail, assignments):
    record_events(trail, 1, start=6)
    unsealed = events(trail)[-1].id
    with trail.app_context(), pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(text(f"UPDATE audit_events SET {assignments} WHERE id = {unsealed}"))
        db.session.commit()
    with trail.app_context():
        db.session.execute(
            text(
                "UPDATE audit_events SET seq = 7, previous_hash = 'p', entry_hash = 'e' "
                f"WHERE id = {unsealed}"
            )
        )
        db.session.rollback()  # the seal alone would pass; not kept (it is not a real one)


@pytest.mark.postgres_only
def test_postgres_refuses_truncate(trail):
    with trail.app_context(), pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(text("TRUNCATE audit_events"))
        db.session.commit()
    assert len(events(trail)) == 6


def test_the_orm_cannot_change_or_delete_an_event_either(trail):
    with trail.app_context():
        stored = db.session.scalars(select(AuditEvent).where(AuditEvent.seq == 2)).one()
        stored.detail = "changed through the ORM"
        with pytest.raises(DatabaseError, match="append-only"):
            db.session.commit()
        db.session.rollback()
        stored = db.session.scalars(select(AuditEvent).where(AuditEvent.seq == 2)).one()
        db.session.delete(stored)
        with pytest.raises(DatabaseError, match="append-only"):
            db.session.commit()
        db.session.rollback()
    assert verify(trail)[0] == 0


# Writing to the events table other than by INSERT, in any spelling the code might use.
CHANGING_EVENTS = re.compile(
    r"(update|delete)\(\s*(AuditEvent|_TABLE)|(UPDATE|DELETE\s+FROM|TRUNCATE)\s+audit_events"
    r"|session\.delete\(\s*event",
    re.IGNORECASE,
)


def test_no_application_code_changes_events_but_the_sealer():
    package = Path(portal.__file__).parent
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if CHANGING_EVENTS.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == ["audit/sealing.py"]
    sealer = (package / "audit" / "sealing.py").read_text(encoding="utf-8")
    assert len(CHANGING_EVENTS.findall(sealer)) == 2  # its seal: one for each database
