"""Reading the audit trail as the server left it."""

from __future__ import annotations

from sqlalchemy import select

from portal.audit.models import AuditEvent
from portal.extensions import db


def audit_events(app, action: str | None = None) -> list[AuditEvent]:
    """Every event in the order written (by id), optionally of one action, detached from the
    session so a test can read them after the app context ends."""
    with app.app_context():
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        events = list(db.session.scalars(query))
        db.session.expunge_all()
        return events
