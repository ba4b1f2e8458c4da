"""Migration 0008 on a trail written before it: the legacy events keep their SHA-256 chain,
verify checks them the old way, and the keyed chain (and its checkpoints) bind them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic import command
from flask import current_app
from flask_migrate import downgrade, upgrade
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from portal.actors import SOURCE_CLI, Actor
from portal.audit import integrity, sealing
from portal.audit import services as audit
from portal.extensions import db
from portal.timeutil import utcnow
from portal.transaction import use_case
from tests.audit.helpers import events, stored_time, tamper

TESTER = Actor(id=None, username="tester", source=SOURCE_CLI)

# As 0001 to 0007 wrote an event (source_address, seq and hashes at write time).
LEGACY_INSERT = text(
    "INSERT INTO audit_events (seq, occurred_at, user_id, username, user_roles, action, "
    "patient_id, object_type, object_id, category, source_address, outcome, detail, "
    "previous_hash, entry_hash) VALUES (:seq, :occurred_at, :user_id, :username, :user_roles, "
    ":action, :patient_id, :object_type, :object_id, :category, :source_address, :outcome, "
    ":detail, :previous_hash, :entry_hash)"
)


def legacy_events(app, count: int) -> list[dict]:
    """``count`` events chained the way main did before 0008."""
    previous = integrity.GENESIS_HASH
    start = utcnow() - timedelta(minutes=2)
    written = []
    for seq in range(1, count + 1):
        fields = {
            "seq": seq,
            "occurred_at": start + timedelta(seconds=seq),
            "user_id": 3,
            "username": "drlee",
            "user_roles": "prescriber",
            "action": "chart.view",
            "patient_id": 40 + seq,
            "object_type": "patients",
            "object_id": str(40 + seq),
            "category": "chart",
            "source_address": "192.0.2.5",
            "outcome": "success",
            "detail": f"legacy {seq}",
            "previous_hash": previous,
        }
        fields["entry_hash"] = previous = integrity.legacy_hash(fields)
        written.append(fields)
    return written


@pytest.fixture
def upgraded(app):
    """A trail of three events written at revision 0007, then upgraded to the head."""
    with app.app_context():
        downgrade(revision="0007")
        try:
            for fields in legacy_events(app, 3):
                db.session.execute(
                    LEGACY_INSERT,
                    {**fields, "occurred_at": stored_time(app, fields["occurred_at"])},
                )
            db.session.commit()
        finally:
            db.session.rollback()
            db.session.remove()
            upgrade()
        db.session.remove()
    return app


def verify(app) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    return result.exit_code, result.output


def first_problem(output: str) -> str:
    return output.split("Audit trail BROKEN: ", 1)[1].splitlines()[0]


def test_legacy_events_survive_the_upgrade_and_verify_the_old_way(upgraded):
    rows = events(upgraded)
    assert [(e.seq, e.scheme, e.source, e.detail) for e in rows] == [
        (1, "sha256", "192.0.2.5", "legacy 1"),
        (2, "sha256", "192.0.2.5", "legacy 2"),
        (3, "sha256", "192.0.2.5", "legacy 3"),
    ]
    assert all(e.event_mac is None and e.nonce is None for e in rows)
    code, output = verify(upgraded)
    assert code == 0, output
    assert "3 events verified (3 sealed, 3 of them legacy;" in output


def test_the_first_keyed_seal_follows_the_legacy_head(upgraded):
    with upgraded.app_context():
        for number in range(2):
            with use_case():
                audit.record(TESTER, "test.event", detail=f"keyed {number}")
        assert sealing.checkpoint().seq == 5
        db.session.remove()
    rows = events(upgraded)
    assert [(e.seq, e.scheme) for e in rows] == [
        (1, "sha256"),
        (2, "sha256"),
        (3, "sha256"),
        (4, "hmac"),
        (5, "hmac"),
    ]
    assert rows[3].previous_hash == rows[2].entry_hash
    code, output = verify(upgraded)
    assert code == 0, output
    assert "5 events verified (5 sealed, 3 of them legacy;" in output


def test_a_legacy_event_is_still_guarded_and_its_alteration_named(upgraded):
    with upgraded.app_context(), pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(text("UPDATE audit_events SET detail = 'changed' WHERE seq = 2"))
        db.session.commit()
    second = events(upgraded)[1]
    tamper(upgraded, "UPDATE audit_events SET detail = 'changed' WHERE seq = 2")
    code, output = verify(upgraded)
    assert code == 1
    assert first_problem(output) == (
        f"event #2 (id {second.id}) was altered: its hash does not match its fields"
    )


def test_rewriting_the_legacy_chain_is_caught_by_the_keyed_link_after_it(upgraded):
    """Main's verify accepted a legacy chain recomputed with SHA-256 after an edit; the first
    keyed event still names the legacy head it followed, so the rewrite shows."""
    with upgraded.app_context():
        with use_case():
            audit.record(TESTER, "test.event")
        sealing.checkpoint()
        db.session.remove()
    rows = events(upgraded)
    previous = rows[0].entry_hash
    statements = []
    for row in rows[1:3]:
        fields = {
            name: getattr(row, name)
            for name in integrity.LEGACY_FIELDS
            if name not in ("source_address", "previous_hash")
        }
        fields.update(
            source_address=row.source,
            previous_hash=previous,
            username="frontdesk" if row.seq == 2 else row.username,
        )
        previous = integrity.legacy_hash(fields)
        statements.append(
            f"UPDATE audit_events SET username = '{fields['username']}', previous_hash = "
            f"'{fields['previous_hash']}', entry_hash = '{previous}' WHERE id = {row.id}"
        )
    tamper(upgraded, *statements)
    code, output = verify(upgraded)
    assert code == 1
    assert first_problem(output) == (
        f"event #4 (id {rows[3].id}) does not follow event #3: an event was inserted, replaced "
        "or removed"
    )


def test_the_downgrade_refuses_to_drop_keyed_events(upgraded):
    with upgraded.app_context():
        with use_case():
            audit.record(TESTER, "test.event")
        config = current_app.extensions["migrate"].migrate.get_config()
        with pytest.raises(RuntimeError, match="0008 cannot be undone: 1 audit events are keyed"):
            command.downgrade(config, "0007")
        db.session.remove()
    assert [e.scheme for e in events(upgraded)] == ["sha256"] * 3 + ["hmac"]
