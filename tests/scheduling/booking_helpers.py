"""Helpers of the booking tests: a future clinic weekday, form data, reading rows back."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from portal.extensions import db
from portal.scheduling.models import Appointment

ZONE = ZoneInfo("America/New_York")


def future_monday(weeks_ahead: int = 2) -> date:
    """A Monday a couple of weeks from today (clinic time): always bookable, never past."""
    today = datetime.now(ZONE).date()
    return today + timedelta(days=7 * weeks_ahead - today.weekday())


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=ZONE)


def booking_form(schedule, day: date, at: str = "09:00", **overrides) -> dict:
    data = {
        "patient_id": schedule.patients[0],
        "provider_id": schedule.drlee,
        "location_id": schedule.main_street,
        "appointment_type_id": schedule.follow_up,
        "day": day.isoformat(),
        "start_time": at,
        "minutes": "",
        "room_id": "",
        "reason": "Blood pressure check",
        "notes": "",
    }
    data.update({key: str(value) for key, value in overrides.items()})
    return data


def appointments(app, **filters) -> list[Appointment]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(Appointment)
                .filter_by(**filters)
                .order_by(Appointment.starts_at, Appointment.id)
            )
        )
        for row in rows:
            db.session.expunge(row)
        return rows


def audit_actions(app) -> list[str]:
    from portal.audit.models import AuditEvent

    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
