"""Reading the audit trail from tests, writing events at chosen times, playing the attacker."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

from sqlalchemy import insert, select, text

from portal.audit import integrity
from portal.audit.models import AuditEvent
from portal.extensions import db


def events(app, action: str | None = None) -> list[AuditEvent]:
    """The trail (sealed events in chain order, then unsealed ones by id), optionally one
    action, detached from the session."""
    with app.app_context():
        query = select(AuditEvent).order_by(AuditEvent.seq.is_(None), AuditEvent.seq, AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
        db.session.remove()
    return rows


def append_event(occurred_at: datetime, action: str, **fields) -> SimpleNamespace:
    """Write a genuine (keyed, unsealed) event at a chosen time (inside an app context).

    ``audit.record`` always stamps "now"; reports filtered by date need events on other days.
    The event carries a valid MAC, so ``audit verify`` still passes afterwards.
    """
    values = {
        "occurred_at": occurred_at,
        "user_id": None,
        "username": None,
        "user_roles": None,
        "action": action,
        "patient_id": None,
        "object_type": None,
        "object_id": None,
        "category": None,
        "source": None,
        "outcome": "success",
        "detail": None,
        "nonce": integrity.new_nonce(),
    }
    values.update(fields)
    values["event_mac"] = integrity.event_mac(integrity.current_keys(), values)
    values["scheme"] = integrity.SCHEME_KEYED
    table = AuditEvent.__table__
    event_id = db.session.execute(insert(table).returning(table.c.id), values).scalar_one()
    return SimpleNamespace(id=event_id, **values)


def tamper(app, *statements: str, **params) -> None:
    """Run raw SQL past the append-only guard, as an attacker with database access would:
    on PostgreSQL (a DBA) with session_replication_role = replica, which skips ordinary
    triggers; on SQLite (someone with the file) by dropping the triggers."""
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


def stored_time(app, value: datetime):
    """A time as raw SQL must write it: timestamptz on PostgreSQL, UTC text on SQLite."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        return value
    return value.astimezone(integrity.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
