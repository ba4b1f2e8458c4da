"""The calendar's reads: the appointments of a day or a week, whose columns to show, and the
columns each user chose (remembered between visits)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select

from portal.audit import services as audit
from portal.clinic.clock import day_bounds
from portal.driver_rows import driver_rows, driver_utc
from portal.extensions import db
from portal.patients.models import Patient, format_display_name
from portal.scheduling.models import (
    INACTIVE_STATUSES,
    LONGEST_APPOINTMENT,
    Appointment,
    AppointmentType,
    CalendarPreference,
)
from portal.scheduling.services import CATEGORY, ProviderChoice, bookable_providers
from portal.transaction import use_case


@dataclass(slots=True)  # not frozen: a frozen dataclass costs four times as much to make
class CalendarEntry:
    """What the calendar shows of one appointment: plain values, read in one query."""

    id: int
    provider_id: int
    appointment_type_id: int
    type_name: str
    patient_name: str
    starts_at: datetime
    ends_at: datetime
    status: str
    overbooked: bool

    @property
    def is_active(self) -> bool:
        return self.status not in INACTIVE_STATUSES


def calendar_query(provider_ids: list[int], first_day: date, last_day: date):
    """The calendar's one query: every appointment (cancelled too) of these providers that
    overlaps these clinic days, with the columns the grid shows only."""
    starts = day_bounds(first_day)[0]
    ends = day_bounds(last_day)[1]
    return (
        select(
            Appointment.id,
            Appointment.provider_id,
            Appointment.appointment_type_id,
            AppointmentType.name,
            Patient.family_name,
            Patient.given_name,
            Patient.preferred_name,
            Appointment.starts_at,
            Appointment.ends_at,
            Appointment.status,
            Appointment.overbooked,
        )
        .join(Patient, Patient.id == Appointment.patient_id)
        .join(AppointmentType, AppointmentType.id == Appointment.appointment_type_id)
        .where(
            Appointment.provider_id.in_(provider_ids),
            Appointment.starts_at > starts - LONGEST_APPOINTMENT,  # bounds the index scan
            Appointment.starts_at < ends,
            Appointment.ends_at > starts,
        )
        .order_by(Appointment.starts_at, Appointment.id)
    )


def appointments_for_calendar(
    actor, provider_ids: list[int], first_day: date, last_day: date, *, view: str
) -> list[CalendarEntry]:
    """Every appointment (cancelled too) of these providers on these clinic days, audited.

    One query for the whole range (a day of 20 busy providers is thousands of rows, read
    as the driver's tuples). The read runs first, as a plain read; the use case then only
    records the listing, once, with counts only, so the read never holds SQLite's write
    lock.
    """
    if not provider_ids:
        return []
    rows = driver_rows(calendar_query(provider_ids, first_day, last_day))
    entries = [  # unpacked, not read by name: that costs more than the query at this size
        CalendarEntry(
            appointment_id,
            provider_id,
            type_id,
            type_name,
            format_display_name(family, given, preferred),
            driver_utc(starts_at),
            driver_utc(ends_at),
            status,
            bool(overbooked),  # SQLite's driver gives 0 or 1
        )
        for (
            appointment_id,
            provider_id,
            type_id,
            type_name,
            family,
            given,
            preferred,
            starts_at,
            ends_at,
            status,
            overbooked,
        ) in rows
    ]
    if entries:
        with use_case():
            audit.record(
                actor,
                "appointment.list",
                category=CATEGORY,
                detail=f"view={view} first={first_day} last={last_day} "
                f"providers={len(provider_ids)} count={len(entries)}",
            )
    return entries


def chosen_provider_ids(actor, available: list[ProviderChoice]) -> list[int]:
    """The day view's columns this user chose last time (all providers at first)."""
    known = [provider.id for provider in available]
    preference = db.session.get(CalendarPreference, actor.id)
    if preference is None or not preference.provider_ids:
        return known
    wanted = {int(part) for part in preference.provider_ids.split(",") if part.isdigit()}
    return [provider_id for provider_id in known if provider_id in wanted] or known


def save_calendar_preference(actor, provider_ids: list[int]) -> None:
    """Remember which providers' columns ``actor`` shows in the day view."""
    with use_case():
        known = {provider.id for provider in bookable_providers()}
        kept = [provider_id for provider_id in provider_ids if provider_id in known]
        preference = db.session.get(CalendarPreference, actor.id)
        if preference is None:
            preference = CalendarPreference(user_id=actor.id)
            db.session.add(preference)
        preference.provider_ids = ",".join(str(provider_id) for provider_id in kept)
