"""What the topics of scheduling share: the one object-level check of an appointment, the
refusal of a stale form, the audit category, and the readers of who and what can be booked
(providers, appointment types, rooms).

The topics (``booking``, ``availability``, ``calendar``, ``flow``, ``waitlist``, ``feeds``,
``setup``) each keep their own use cases in their ``services.py``; other domains reach an
appointment through ``get_appointment_for`` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from werkzeug.exceptions import NotFound

from portal.auth.models import User, UserRole
from portal.clinic.models import Location
from portal.extensions import db
from portal.scheduling.models import (
    INACTIVE_STATUSES,
    Appointment,
    AppointmentType,
    Room,
    appointment_type_providers,
)
from portal.timeutil import utcnow
from portal.transaction import Conflict

CATEGORY = "appointments"  # the audit category of every scheduling event
PROVIDER_ROLE = "prescriber"  # who sees patients on the schedule
STALE_CHANGE = "Someone else changed this appointment since you opened it. Review it and try again."


def get_appointment_for(actor, appointment_id: int) -> Appointment:
    """The appointment ``actor`` may see, or 404 (the one place for object-level checks)."""
    appointment = db.session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound()
    return appointment


def stale_change() -> Conflict:
    """The refusal of a form older than the appointment it changes: the form's version is
    not the appointment's, or the version column refused the UPDATE (409)."""
    return Conflict(STALE_CHANGE)


def check_version(appointment: Appointment, version: int | str | None) -> None:
    """Refuse (``stale_change``) a form that did not carry the appointment's version."""
    try:
        seen = int(version) if version is not None else None
    except (TypeError, ValueError):
        seen = None
    if seen != appointment.version:
        raise stale_change()


def providers(include_disabled: bool = False) -> list[User]:
    """Users who see patients on the schedule (the prescriber role), by name."""
    statement = (
        select(User)
        .join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role == PROVIDER_ROLE)
        .order_by(User.full_name, User.id)
    )
    if not include_disabled:
        statement = statement.where(User.is_enabled.is_(True))
    return list(db.session.scalars(statement).unique())


def appointment_types(active_only: bool = False) -> list[AppointmentType]:
    """Appointment types by name (only the bookable ones with ``active_only``)."""
    statement = select(AppointmentType).order_by(AppointmentType.name)
    if active_only:
        statement = statement.where(AppointmentType.is_active.is_(True))
    return list(db.session.scalars(statement))


def active_rooms(location_id: int | None) -> list[Room]:
    """The rooms in use at a location, by name."""
    return list(
        db.session.scalars(
            select(Room)
            .where(Room.location_id == location_id, Room.is_active.is_(True))
            .order_by(Room.name)
        )
    )


@dataclass(frozen=True)
class ProviderChoice:
    """A provider as the calendar lists them: plain values, so no commit can expire them."""

    id: int
    full_name: str


def bookable_providers() -> list[ProviderChoice]:
    """Everyone who offers at least one active appointment type, by name: the calendar's
    columns, the providers a visit can be booked with."""
    offering = (
        select(appointment_type_providers.c.provider_id)
        .join(
            AppointmentType,
            AppointmentType.id == appointment_type_providers.c.appointment_type_id,
        )
        .where(AppointmentType.is_active.is_(True))
    )
    rows = db.session.execute(
        select(User.id, User.full_name)
        .where(User.id.in_(offering))
        .order_by(User.full_name, User.id)
    )
    return [ProviderChoice(id=row.id, full_name=row.full_name) for row in rows]


def _patient_appointment_rows(patient_id: int):
    """A patient's appointments with their type, provider and location names (bounded reads
    on the (patient_id, starts_at) index)."""
    return (
        select(
            Appointment.id,
            Appointment.starts_at,
            Appointment.status,
            AppointmentType.name.label("type_name"),
            User.full_name.label("provider_name"),
            Location.name.label("location_name"),
        )
        .join(AppointmentType, AppointmentType.id == Appointment.appointment_type_id)
        .join(User, User.id == Appointment.provider_id)
        .join(Location, Location.id == Appointment.location_id)
        .where(Appointment.patient_id == patient_id)
    )


def upcoming_appointments(patient_id: int, limit: int, now: datetime | None = None) -> list:
    """The patient's next active appointments, soonest first."""
    return db.session.execute(
        _patient_appointment_rows(patient_id)
        .where(
            Appointment.starts_at >= (now or utcnow()),
            Appointment.status.not_in(INACTIVE_STATUSES),
        )
        .order_by(Appointment.starts_at, Appointment.id)
        .limit(limit)
    ).all()


def recent_appointments(patient_id: int, limit: int, now: datetime | None = None) -> list:
    """The patient's latest past appointments, whatever their status, latest first."""
    return db.session.execute(
        _patient_appointment_rows(patient_id)
        .where(Appointment.starts_at < (now or utcnow()))
        .order_by(Appointment.starts_at.desc(), Appointment.id.desc())
        .limit(limit)
    ).all()
