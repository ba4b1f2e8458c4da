"""The trail is chained and append-only; `audit verify` names the first broken event.

To play the attacker who edits the database directly, the tests get past the append-only
guard the way such a person would: on SQLite (someone with the file) by dropping the triggers,
on PostgreSQL (a DBA) with session_replication_role = replica, which skips ordinary triggers.
"""

from __future__ import annotations

import re
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

import portal
from portal.audit import services as audit
from portal.audit.models import AuditEvent
from portal.extensions import db
from tests.audit.helpers import events


def verify(app):
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    return result.exit_code, result.output + (getattr(result, "stderr", "") or "")


@pytest.fixture
def trail(app):
    """Six chained events written the application's way."""
    with app.app_context():
        for number in range(6):
            audit.record("test.event", username="tester", detail=f"event {number}")
        db.session.commit()
    return app


def tamper(app, *statements: str, **params) -> None:
    """Run raw SQL past the append-only guard, as an attacker with database access would."""
    with app.app_context():
        connection = db.session.connection()
        if connection.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            connection.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update"))
            connection.execute(text("DROP TRIGGER IF EXISTS audit_events_no_delete"))
        for statement in statements:
            connection.execute(text(statement), params)
        db.session.commit()
        db.session.remove()


def test_events_are_chained_by_seq_and_previous_hash(trail):
    rows = events(trail)
    assert [e.seq for e in rows] == list(range(1, 7))
    assert rows[0].previous_hash == audit.GENESIS_HASH
    for before, after in pairwise(rows):
        assert after.previous_hash == before.entry_hash
    assert len({e.entry_hash for e in rows}) == 6
    assert all(re.fullmatch(r"[0-9a-f]{64}", e.entry_hash) for e in rows)


def test_verify_passes_on_an_intact_trail(trail, signed_in):
    signed_in("admin").get("/admin/users")  # events written by real requests too
    code, output = verify(trail)
    assert code == 0, output
    assert f"{len(events(trail))} events verified" in output


def test_verify_passes_on_an_empty_trail(app):
    code, output = verify(app)
    assert code == 0 and "0 events verified" in output


def test_verify_names_an_altered_event(trail):
    tamper(trail, "UPDATE audit_events SET detail = 'nothing to see' WHERE seq = 3")
    code, output = verify(trail)
    assert code != 0
    assert "event #3" in output and "altered" in output


def stored_time(app, value):
    """A time as raw SQL must write it: timestamptz on PostgreSQL, UTC text on SQLite."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        return value
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def test_verify_names_an_event_whose_time_was_moved(trail):
    moved = events(trail)[2].occurred_at - timedelta(hours=5)
    tamper(
        trail,
        "UPDATE audit_events SET occurred_at = :moved WHERE seq = 3",
        moved=stored_time(trail, moved),
    )
    code, output = verify(trail)
    assert code != 0 and "event #3" in output


def test_verify_names_a_removed_event(trail):
    tamper(trail, "DELETE FROM audit_events WHERE seq = 4")
    code, output = verify(trail)
    assert code != 0
    assert "event #4 removed" in output


def test_verify_names_a_run_of_removed_events(trail):
    tamper(trail, "DELETE FROM audit_events WHERE seq IN (2, 3)")
    code, output = verify(trail)
    assert code != 0 and "#2-3 removed" in output


def test_verify_names_an_event_inserted_in_the_middle(trail):
    """A forged event slipped in after #2, later events renumbered to close the gap."""
    second = events(trail)[1]
    forged = {
        "seq": 3,
        "occurred_at": second.occurred_at,
        "user_id": None,
        "username": "tester",
        "user_roles": None,
        "action": "test.event",
        "patient_id": None,
        "object_type": None,
        "object_id": None,
        "category": None,
        "source_address": None,
        "outcome": "success",
        "detail": "forged",
        "previous_hash": second.entry_hash,
    }
    entry_hash = audit.compute_hash(forged)  # the forger even computes a valid hash
    tamper(
        trail,
        # Two steps, so the unique seq never collides while renumbering.
        "UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 3",
        "UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1003",
        "INSERT INTO audit_events (seq, occurred_at, username, action, outcome, detail, "
        "previous_hash, entry_hash) VALUES (3, :occurred, 'tester', 'test.event', 'success', "
        "'forged', :previous, :entry)",
        occurred=stored_time(trail, forged["occurred_at"]),
        previous=second.entry_hash,
        entry=entry_hash,
    )
    code, output = verify(trail)
    assert code != 0
    # The forged #3 hashes correctly, but the real event after it (now #4) no longer follows.
    assert "event #4" in output and "does not follow event #3" in output


def test_verify_names_an_event_appended_without_the_chain(trail):
    tamper(
        trail,
        "INSERT INTO audit_events (seq, occurred_at, username, action, outcome, "
        "previous_hash, entry_hash) VALUES (7, :occurred, 'ghost', 'test.event', 'success', "
        ":previous, :entry)",
        occurred=stored_time(trail, events(trail)[-1].occurred_at),
        previous="f" * 64,
        entry="e" * 64,
    )
    code, output = verify(trail)
    assert code != 0 and "event #7" in output


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET detail = 'changed' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 2",
        "DELETE FROM audit_events",
    ],
)
def test_the_database_refuses_to_change_or_remove_events(trail, statement):
    with trail.app_context(), pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(text(statement))
        db.session.commit()
    assert len(events(trail)) == 6
    assert verify(trail)[0] == 0


@pytest.mark.postgres_only
def test_postgres_refuses_truncate(trail):
    with trail.app_context(), pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(text("TRUNCATE audit_events"))
        db.session.commit()
    assert len(events(trail)) == 6


def test_the_orm_cannot_change_or_delete_an_event_either(trail):
    with trail.app_context():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.seq == 2)).one()
        event.detail = "changed through the ORM"
        with pytest.raises(DatabaseError, match="append-only"):
            db.session.commit()
        db.session.rollback()
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.seq == 2)).one()
        db.session.delete(event)
        with pytest.raises(DatabaseError, match="append-only"):
            db.session.commit()
        db.session.rollback()
    assert verify(trail)[0] == 0


# Writing to the events table other than by INSERT, in any spelling the code might use.
CHANGING_EVENTS = re.compile(
    r"(update|delete)\(\s*AuditEvent|(UPDATE|DELETE\s+FROM|TRUNCATE)\s+audit_events"
    r"|session\.delete\(\s*event",
    re.IGNORECASE,
)


def test_no_application_code_updates_or_deletes_events():
    package = Path(portal.__file__).parent
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if CHANGING_EVENTS.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
