"""Helpers for the flow, waitlist and feed tests: appointments made directly with the models
(in any status, at any time), the demo users and their actors, and times on the clinic's
today."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from portal.extensions import db
from portal.timeutil import utcnow

ZONE = ZoneInfo("America/New_York")


def local_today():
    return utcnow().astimezone(ZONE).date()


def today_at(hour: int, minute: int = 0) -> datetime:
    """A UTC instant at a clinic wall-clock time today."""
    return datetime.combine(local_today(), time(hour, minute), tzinfo=ZONE).astimezone(UTC)


def minutes_from_now(minutes: int) -> datetime:
    """Now plus ``minutes``, kept within the clinic's today (so a run near midnight still
    makes 'today's' appointments), on a whole minute."""
    value = (utcnow() + timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    first = today_at(0, 1)
    last = today_at(23, 0)
    return min(max(value, first), last)


def make_appointment(
    app,
    schedule,
    *,
    starts_at: datetime,
    minutes: int = 20,
    patient: int = 0,
    provider: str = "drlee",
    type_id: int | None = None,
    location_id: int | None = None,
    status: str = "scheduled",
    room_id: int | None = None,
) -> int:
    """Insert an appointment as the booking service would leave it; returns its id."""
    from portal.scheduling.models import Appointment

    with app.app_context():
        appointment = Appointment(
            patient_id=schedule.patients[patient],
            provider_id=getattr(schedule, provider),
            location_id=location_id or schedule.main_street,
            appointment_type_id=type_id or schedule.follow_up,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=minutes),
            status=status,
            room_id=room_id,
        )
        db.session.add(appointment)
        db.session.commit()
        return appointment.id


def user(username: str):
    from portal.auth.models import User

    return db.session.scalars(select(User).filter_by(username=username)).one()


def actor(username: str):
    """The demo user's actor, as a view would hand it to a service."""
    from portal.actors import Actor

    return Actor.for_user(user(username), "127.0.0.1")


def audit_events(action: str | None = None):
    from portal.audit.models import AuditEvent

    query = select(AuditEvent).order_by(AuditEvent.id)
    if action:
        query = query.where(AuditEvent.action == action)
    return list(db.session.scalars(query))
