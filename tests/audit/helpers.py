"""Reading the audit trail from tests, and writing events at chosen times."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from portal.audit.models import AuditEvent
from portal.audit.services import GENESIS_HASH, compute_hash
from portal.extensions import db


def events(app, action: str | None = None) -> list[AuditEvent]:
    """The trail in chain order (optionally one action), detached from the session."""
    with app.app_context():
        query = select(AuditEvent).order_by(AuditEvent.seq)
        if action:
            query = query.where(AuditEvent.action == action)
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
        db.session.remove()
    return rows


def append_event(occurred_at: datetime, action: str, **fields) -> AuditEvent:
    """Extend the chain properly with an event at a chosen time (inside an app context).

    ``audit.record`` always stamps "now"; reports filtered by date need events on other days.
    The chain stays valid, so ``audit verify`` still passes afterwards.
    """
    head = db.session.execute(
        select(AuditEvent.seq, AuditEvent.entry_hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    values = {
        "seq": head.seq + 1 if head else 1,
        "occurred_at": occurred_at,
        "user_id": None,
        "username": None,
        "user_roles": None,
        "action": action,
        "patient_id": None,
        "object_type": None,
        "object_id": None,
        "category": None,
        "source_address": None,
        "outcome": "success",
        "detail": None,
        "previous_hash": head.entry_hash if head else GENESIS_HASH,
    }
    values.update(fields)
    event = AuditEvent(**values, entry_hash=compute_hash(values))
    db.session.add(event)
    db.session.flush()
    return event
