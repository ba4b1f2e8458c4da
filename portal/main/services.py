"""The home page's day: today's appointments (the whole clinic's for the front desk and
nurses, a prescriber's own for a prescriber) and how many visits sit in each column of the
flow board.

One read of plain rows for the day (bounded by the clinic day on the provider-and-time
index), then one short use case that records the listing, as the calendar does: counts and
ids only, never names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select

from portal.audit import services as audit
from portal.auth.models import User
from portal.clinic.clock import clinic_today, day_bounds
from portal.clinic.models import Location
from portal.extensions import db
from portal.patients.models import Patient, format_display_name
from portal.scheduling.flow.board import BOARD_COLUMNS
from portal.scheduling.models import Appointment, AppointmentType, Room
from portal.scheduling.services import CATEGORY
from portal.transaction import use_case


@dataclass(slots=True)
class DayRow:
    """One appointment of the home page's day: plain values."""

    appointment_id: int
    patient_id: int
    patient_name: str
    mrn: str
    starts_at: datetime
    status: str
    type_name: str
    provider_name: str
    room_name: str | None


@dataclass
class HomeDay:
    """Today's appointments (cancelled ones left off) and the flow board's column counts."""

    day: date
    rows: list[DayRow]
    counts: list[tuple[str, str, int]]  # (column key, label, how many), in the board's order

    @property
    def total(self) -> int:
        return len(self.rows)


def home_day(actor, *, provider_id: int | None = None, now: datetime | None = None) -> HomeDay:
    """Today's appointments of one provider (``provider_id``) or of everyone, audited as a
    listing ("appointment.list", view=home) when it shows anyone."""
    day = clinic_today(now)
    start, end = day_bounds(day)
    statement = (
        select(
            Appointment.id,
            Appointment.patient_id,
            Patient.family_name,
            Patient.given_name,
            Patient.preferred_name,
            Patient.mrn,
            Appointment.starts_at,
            Appointment.status,
            AppointmentType.name,
            User.full_name,
            Room.name,
        )
        .join(Patient, Patient.id == Appointment.patient_id)
        .join(AppointmentType, AppointmentType.id == Appointment.appointment_type_id)
        .join(User, User.id == Appointment.provider_id)
        .outerjoin(Room, Room.id == Appointment.room_id)
        .where(
            Appointment.starts_at >= start,
            Appointment.starts_at < end,
            Appointment.status != "cancelled",
        )
        .order_by(Appointment.starts_at, User.full_name, Appointment.id)
    )
    if provider_id is not None:
        statement = statement.where(Appointment.provider_id == provider_id)
    else:
        # Every location (inactive ones too: nothing booked is hidden): the clinic's day
        # then walks the (location_id, starts_at) index, not the whole table by time.
        statement = statement.where(Appointment.location_id.in_(select(Location.id)))
    rows = [
        DayRow(
            appointment_id,
            patient_id,
            format_display_name(family, given, preferred),
            mrn,
            starts_at,
            status,
            type_name,
            provider_name,
            room_name,
        )
        for (
            appointment_id,
            patient_id,
            family,
            given,
            preferred,
            mrn,
            starts_at,
            status,
            type_name,
            provider_name,
            room_name,
        ) in db.session.execute(statement)
    ]
    counts = [
        (key, label, sum(1 for row in rows if row.status in statuses))
        for key, label, statuses in BOARD_COLUMNS
    ]
    if rows:
        ids = ",".join(str(number) for number in sorted(row.appointment_id for row in rows))
        with use_case():
            audit.record(
                actor,
                "appointment.list",
                category=CATEGORY,
                detail=f"view=home day={day} "
                f"providers={'one' if provider_id is not None else 'all'} count={len(rows)} "
                f"shown={hashlib.sha256(ids.encode()).hexdigest()[:16]}",
            )
    return HomeDay(day=day, rows=rows, counts=counts)
