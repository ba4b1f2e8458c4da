"""Use cases of the scheduling set-up: appointment types, rooms, weekly templates,
exceptions (time off, extra sessions), clinic closures, and the calendar-feed setting.

Each changing function is one use case with its audit event (category "appointments"), and
refuses (``Refused(message, field)``, nothing saved) input that does not make sense.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.auth.models import User
from portal.clinic.models import Location
from portal.clinic.services import current_clinic
from portal.extensions import db
from portal.scheduling.models import (
    EXCEPTION_KINDS,
    MODALITIES,
    VISIT_KINDS,
    AppointmentType,
    AvailabilityBlock,
    AvailabilityException,
    ClinicClosure,
    Room,
)
from portal.scheduling.services import CATEGORY, PROVIDER_ROLE
from portal.transaction import Refused, use_case

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MIN_MINUTES, MAX_MINUTES = 5, 12 * 60
# Dates outside these years are typing mistakes (a 1900 date, a 20207 year), not plans.
EARLIEST_YEAR, LATEST_YEARS_AHEAD = 2000, 10
MAX_EXCEPTION_DAYS = 366  # availability.LONGEST_EXCEPTION relies on this
NAME_TAKEN = "Another appointment type already has this name."
ROOM_NAME_TAKEN = "This location already has a room with this name."
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


# --- reading --------------------------------------------------------------------------------


def locations() -> list[Location]:
    """Every location of the clinic (closed ones too), by name."""
    return list(db.session.scalars(select(Location).order_by(Location.name)))


def rooms() -> list[Room]:
    """Every room, by location and name."""
    return list(db.session.scalars(select(Room).order_by(Room.location_id, Room.name)))


def blocks_of(provider_id: int) -> list[AvailabilityBlock]:
    """A provider's weekly template, by weekday and time."""
    return list(
        db.session.scalars(
            select(AvailabilityBlock)
            .where(AvailabilityBlock.provider_id == provider_id)
            .order_by(AvailabilityBlock.weekday, AvailabilityBlock.start_time, AvailabilityBlock.id)
        )
    )


def upcoming_exceptions(since: datetime) -> list[AvailabilityException]:
    """Time off and extra sessions that end after ``since``, in time order."""
    return list(
        db.session.scalars(
            select(AvailabilityException)
            .where(AvailabilityException.ends_at > since)
            .order_by(AvailabilityException.starts_at, AvailabilityException.id)
        )
    )


def upcoming_closures(since: date) -> list[ClinicClosure]:
    """Closures that last until ``since`` or later, in date order."""
    return list(
        db.session.scalars(
            select(ClinicClosure)
            .where(ClinicClosure.last_day >= since)
            .order_by(ClinicClosure.first_day, ClinicClosure.id)
        )
    )


def get_or_404(model, row_id: int):
    """The set-up row (a type, room, block, exception, closure) with that id, or 404."""
    row = db.session.get(model, row_id)
    if row is None:
        raise NotFound()
    return row


# --- checks ---------------------------------------------------------------------------------


def check_date(value: date | None, field: str, today: date) -> None:
    """Refuse dates no clinic would plan for (1900, far in the future)."""
    if value is None:
        return
    if value.year < EARLIEST_YEAR or value.year > today.year + LATEST_YEARS_AHEAD:
        raise Refused(
            f"Enter a date between {EARLIEST_YEAR} and {today.year + LATEST_YEARS_AHEAD}.",
            field,
        )


def _provider(provider_id: int, field: str = "provider_id") -> User:
    user = db.session.get(User, provider_id) if provider_id else None
    if user is None or PROVIDER_ROLE not in user.roles:
        raise Refused("Choose a provider from the list.", field)
    return user


def _location(location_id: int | None, field: str = "location_id") -> Location:
    location = db.session.get(Location, location_id) if location_id else None
    if location is None or not location.is_active:
        raise Refused("Choose an open location from the list.", field)
    return location


# --- appointment types ----------------------------------------------------------------------


def save_appointment_type(
    actor,
    appointment_type: AppointmentType | None,
    *,
    name: str,
    default_minutes: int | None,
    colour: str,
    visit_kind: str,
    modality: str,
    provider_ids: list[int],
    is_active: bool = True,
) -> AppointmentType:
    """Create (``appointment_type`` None) or change an appointment type."""
    with use_case(conflict=Refused(NAME_TAKEN, "name")):
        name = (name or "").strip()
        if not name:
            raise Refused("Give the type a name.", "name")
        clash = db.session.scalar(select(AppointmentType.id).where(AppointmentType.name == name))
        if clash is not None and (appointment_type is None or clash != appointment_type.id):
            raise Refused(NAME_TAKEN, "name")
        if default_minutes is None or not MIN_MINUTES <= default_minutes <= MAX_MINUTES:
            raise Refused(
                f"A visit lasts between {MIN_MINUTES} minutes and {MAX_MINUTES // 60} hours.",
                "default_minutes",
            )
        if not _COLOUR.match(colour or ""):
            raise Refused("Choose a colour (#rrggbb).", "colour")
        if visit_kind not in VISIT_KINDS:
            raise Refused("Choose new patient or follow-up.", "visit_kind")
        if modality not in MODALITIES:
            raise Refused("Choose in person or telehealth.", "modality")
        offering = [_provider(pid, "provider_ids") for pid in dict.fromkeys(provider_ids)]
        creating = appointment_type is None
        if creating:
            appointment_type = AppointmentType(name=name, default_minutes=default_minutes)
            db.session.add(appointment_type)
        appointment_type.name = name
        appointment_type.default_minutes = default_minutes
        appointment_type.colour = colour.lower()
        appointment_type.visit_kind = visit_kind
        appointment_type.modality = modality
        appointment_type.providers = offering
        appointment_type.is_active = is_active
        audit.record(
            actor,
            "appointment_type.create" if creating else "appointment_type.update",
            obj=appointment_type,
            category=CATEGORY,
        )
        return appointment_type


# --- rooms ----------------------------------------------------------------------------------


def save_room(
    actor, room: Room | None, *, location_id: int, name: str, is_active: bool = True
) -> Room:
    """Create (``room`` None) or rename / (de)activate a room."""
    with use_case(conflict=Refused(ROOM_NAME_TAKEN, "name")):
        name = (name or "").strip()
        if not name:
            raise Refused("Give the room a name.", "name")
        location = (
            _location(location_id) if room is None else db.session.get(Location, room.location_id)
        )
        clash = db.session.scalar(
            select(Room.id).where(Room.location_id == location.id, Room.name == name)
        )
        if clash is not None and (room is None or clash != room.id):
            raise Refused(f"{location.name} already has a room with this name.", "name")
        creating = room is None
        if creating:
            room = Room(location_id=location.id, name=name)
            db.session.add(room)
        room.name = name
        room.is_active = is_active
        audit.record(
            actor, "room.create" if creating else "room.update", obj=room, category=CATEGORY
        )
        return room


# --- weekly templates -----------------------------------------------------------------------


def _periods_overlap(a_from, a_until, b_from, b_until) -> bool:
    """Do two validity periods (None = open-ended) share a day?"""
    low = max(a_from or date.min, b_from or date.min)
    high = min(a_until or date.max, b_until or date.max)
    return low <= high


def add_block(
    actor,
    *,
    provider_id: int,
    location_id: int,
    weekday: int,
    start_time: time | None,
    end_time: time | None,
    valid_from: date | None = None,
    valid_until: date | None = None,
    allowed_type_ids: list[int] | None = None,
    today: date,
) -> AvailabilityBlock:
    """Add a block to a provider's weekly template (clinic wall-clock times).

    Refused: end not after start; a validity period ending before it starts; dates no one
    plans for; a block overlapping another block of the same provider on the same weekday
    whose validity period shares a day with this one (at any location).
    """
    with use_case():
        provider = _provider(provider_id)
        _location(location_id)
        if weekday not in range(7):
            raise Refused("Choose a day of the week.", "weekday")
        if start_time is None:
            raise Refused("Enter the start time.", "start_time")
        if end_time is None:
            raise Refused("Enter the end time.", "end_time")
        if end_time <= start_time:
            raise Refused("The block must end after it starts.", "end_time")
        check_date(valid_from, "valid_from", today)
        check_date(valid_until, "valid_until", today)
        if valid_from and valid_until and valid_until < valid_from:
            raise Refused("The last day can't be before the first day.", "valid_until")
        types = []
        for type_id in dict.fromkeys(allowed_type_ids or []):
            appointment_type = db.session.get(AppointmentType, type_id)
            if appointment_type is None:
                raise Refused("Choose appointment types from the list.", "allowed_type_ids")
            if provider not in appointment_type.providers:
                raise Refused(
                    f"{provider.full_name} doesn't offer {appointment_type.name}.",
                    "allowed_type_ids",
                )
            types.append(appointment_type)
        for other in blocks_of(provider.id):
            if (
                other.weekday == weekday
                and other.start_time < end_time
                and start_time < other.end_time
                and _periods_overlap(valid_from, valid_until, other.valid_from, other.valid_until)
            ):
                raise Refused(
                    f"This overlaps {provider.full_name}'s block on {WEEKDAYS[weekday]} "
                    f"{other.start_time:%H:%M} to {other.end_time:%H:%M}.",
                    "start_time",
                )
        block = AvailabilityBlock(
            provider_id=provider.id,
            location_id=location_id,
            weekday=weekday,
            start_time=start_time,
            end_time=end_time,
            valid_from=valid_from,
            valid_until=valid_until,
            allowed_types=types,
        )
        db.session.add(block)
        audit.record(actor, "availability_block.create", obj=block, category=CATEGORY)
        return block


def delete_block(actor, block_id: int) -> None:
    """Remove a block from a weekly template (booked appointments stay as they are)."""
    with use_case():
        block = get_or_404(AvailabilityBlock, block_id)
        audit.record(actor, "availability_block.delete", obj=block, category=CATEGORY)
        db.session.delete(block)


# --- exceptions -----------------------------------------------------------------------------


def add_exception(
    actor,
    *,
    provider_id: int,
    kind: str,
    starts_at: datetime | None,
    ends_at: datetime | None,
    location_id: int | None = None,
    reason: str | None = None,
    today: date,
) -> AvailabilityException:
    """Time off or an extra session for one provider (``starts_at``/``ends_at`` aware, UTC)."""
    with use_case():
        provider = _provider(provider_id)
        if kind not in EXCEPTION_KINDS:
            raise Refused("Choose time off or an extra session.", "kind")
        if starts_at is None:
            raise Refused("Enter when it starts.", "starts_at")
        if ends_at is None:
            raise Refused("Enter when it ends.", "ends_at")
        check_date(starts_at.date(), "starts_at", today)
        check_date(ends_at.date(), "ends_at", today)
        if ends_at <= starts_at:
            raise Refused("It must end after it starts.", "ends_at")
        if ends_at - starts_at > timedelta(days=MAX_EXCEPTION_DAYS):
            raise Refused("Enter at most a year at a time.", "ends_at")
        if kind == "extra":
            _location(location_id)
            if ends_at - starts_at > timedelta(hours=16):
                raise Refused("An extra session lasts at most 16 hours.", "ends_at")
        else:
            location_id = None
        exception = AvailabilityException(
            provider_id=provider.id,
            kind=kind,
            location_id=location_id,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=(reason or "").strip() or None,
        )
        db.session.add(exception)
        audit.record(
            actor, f"availability_exception.create.{kind}", obj=exception, category=CATEGORY
        )
        return exception


def delete_exception(actor, exception_id: int) -> None:
    """Remove a provider's time off or extra session."""
    with use_case():
        exception = get_or_404(AvailabilityException, exception_id)
        audit.record(actor, "availability_exception.delete", obj=exception, category=CATEGORY)
        db.session.delete(exception)


# --- closures -------------------------------------------------------------------------------


def add_closure(
    actor,
    *,
    first_day: date | None,
    last_day: date | None,
    location_id: int | None = None,
    reason: str | None = None,
    today: date,
) -> ClinicClosure:
    """Close the whole clinic (``location_id`` None) or one location for whole local days."""
    with use_case():
        if first_day is None:
            raise Refused("Enter the first day.", "first_day")
        last_day = last_day or first_day
        check_date(first_day, "first_day", today)
        check_date(last_day, "last_day", today)
        if last_day < first_day:
            raise Refused("The last day can't be before the first day.", "last_day")
        if (last_day - first_day).days >= MAX_EXCEPTION_DAYS:
            raise Refused("Enter at most a year at a time.", "last_day")
        if location_id:
            _location(location_id)
        closure = ClinicClosure(
            location_id=location_id or None,
            first_day=first_day,
            last_day=last_day,
            reason=(reason or "").strip() or None,
        )
        db.session.add(closure)
        audit.record(actor, "clinic_closure.create", obj=closure, category=CATEGORY)
        return closure


def delete_closure(actor, closure_id: int) -> None:
    """Remove a closure: the days it held are open again."""
    with use_case():
        closure = get_or_404(ClinicClosure, closure_id)
        audit.record(actor, "clinic_closure.delete", obj=closure, category=CATEGORY)
        db.session.delete(closure)


# --- the clinic's calendar-feed setting -----------------------------------------------------


def set_feed_shows_names(actor, shows_names: bool) -> None:
    """Whether providers' calendar feeds name patients (they leave the portal)."""
    with use_case():
        clinic = current_clinic()
        if clinic is None:
            raise Refused("Set up the clinic first.")
        clinic.calendar_feed_shows_names = bool(shows_names)
        audit.record(
            actor,
            "clinic.calendar_feed_names",
            obj=clinic,
            category=CATEGORY,
            detail=f"shows_names={'yes' if shows_names else 'no'}",
        )
