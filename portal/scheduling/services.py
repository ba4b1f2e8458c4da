"""Use cases of scheduling: booking, rescheduling, cancelling, series (being built: issue 3).

Each public function is one transaction with its audit event(s).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.auth.models import User
from portal.clinic.models import Location
from portal.clinic.services import clinic_time_zone
from portal.extensions import db
from portal.patients.models import Patient, format_display_name
from portal.scheduling.models import (
    INACTIVE_STATUSES,
    LONGEST_APPOINTMENT,
    Appointment,
    AppointmentStatusChange,
    AppointmentType,
    RecurringSeries,
    Room,
)
from portal.scheduling.rows import driver_rows, driver_utc
from portal.timeutil import utcnow

CATEGORY = "appointments"


class SchedulingError(Exception):
    """A refused scheduling change; ``field`` names the form field to show it beside."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class SlotTaken(SchedulingError):
    """Another active appointment already holds (part of) that time."""

    def __init__(
        self,
        message: str = "That time was just taken — pick another.",
        field: str | None = "starts_at",
    ):
        super().__init__(message, field)


class StaleChange(SchedulingError):
    """The appointment changed since the form was loaded."""

    def __init__(self):
        super().__init__(
            "Someone else changed this appointment since you opened it. Review it and try again."
        )


def get_appointment_for(actor, appointment_id: int) -> Appointment:
    """The appointment ``actor`` may see, or 404 (the one place for object-level checks)."""
    appointment = db.session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound()
    return appointment


# --- Rules of a booking --------------------------------------------------------------

MIN_MINUTES = 5
MAX_MINUTES = int(LONGEST_APPOINTMENT.total_seconds() // 60)  # 12 hours
MAX_DAYS_AHEAD = 2 * 366  # further out is a typing mistake, not a booking
LATE_CANCEL_WINDOW = timedelta(hours=24)
# A visit that has started (arrived onwards) is moved or ended through the flow, not here.
CHANGEABLE_STATUSES = ("scheduled", "confirmed")
MAX_SERIES_OCCURRENCES = 52
MAX_SERIES_INTERVAL_WEEKS = 52


class SeriesConflicts(SchedulingError):
    """A series was not saved: these occurrences (by local date) cannot be booked."""

    def __init__(self, conflicts: list[tuple[date, str]]):
        super().__init__(
            f"{len(conflicts)} of the dates cannot be booked; nothing was saved.", "starts_at"
        )
        self.conflicts = conflicts


@dataclass
class Booking:
    """What the booking form (or the find-a-slot page) asks for; times are UTC-aware."""

    patient_id: int | None
    provider_id: int | None
    location_id: int | None
    appointment_type_id: int | None
    starts_at: datetime | None
    minutes: int | None = None
    room_id: int | None = None
    reason: str | None = None
    notes: str | None = None
    overbook: bool = False
    request_key: str | None = None
    waitlist_entry_id: int | None = None


@dataclass
class _Checked:
    patient: Patient
    provider: User
    appointment_type: AppointmentType
    location: Location
    room: Room | None
    starts_at: datetime
    ends_at: datetime
    extras: dict = field(default_factory=dict)


def clinic_zone() -> ZoneInfo:
    return ZoneInfo(clinic_time_zone())


def clinic_today(now: datetime | None = None) -> date:
    """Today's date where the clinic is."""
    return (now or utcnow()).astimezone(clinic_zone()).date()


def local_to_utc(day: date, at: time) -> datetime:
    """A clinic wall-clock time on ``day`` as a UTC instant.

    A time inside the spring-forward gap does not exist; zoneinfo resolves it with the
    offset before the gap (fold=0), i.e. an hour later on the clock, which is what a
    front desk typing 02:30 on that night would get in any calendar.
    """
    return datetime.combine(day, at, tzinfo=clinic_zone()).astimezone(UTC)


def _provider_name(provider: User) -> str:
    return provider.full_name


def _check_booking(actor, booking: Booking, now: datetime) -> _Checked:
    """Validate everything but overlaps; SchedulingError names the field at fault."""
    patient = db.session.get(Patient, booking.patient_id) if booking.patient_id else None
    if patient is None:
        raise SchedulingError("Choose a patient.", "patient_id")
    provider = db.session.get(User, booking.provider_id) if booking.provider_id else None
    if provider is None or not provider.is_active:
        raise SchedulingError("Choose a provider.", "provider_id")
    appointment_type = (
        db.session.get(AppointmentType, booking.appointment_type_id)
        if booking.appointment_type_id
        else None
    )
    if appointment_type is None or not appointment_type.is_active:
        raise SchedulingError("Choose an appointment type.", "appointment_type_id")
    if provider.id not in {p.id for p in appointment_type.providers}:
        raise SchedulingError(
            f"{_provider_name(provider)} does not offer {appointment_type.name} visits.",
            "appointment_type_id",
        )
    location = db.session.get(Location, booking.location_id) if booking.location_id else None
    if location is None or not getattr(location, "is_active", True):
        raise SchedulingError("Choose a location.", "location_id")
    room = None
    if booking.room_id:
        room = db.session.get(Room, booking.room_id)
        if room is None or room.location_id != location.id or not room.is_active:
            raise SchedulingError("That room is not at this location.", "room_id")
    minutes = booking.minutes or appointment_type.default_minutes
    if not MIN_MINUTES <= minutes <= MAX_MINUTES:
        raise SchedulingError(
            f"A visit lasts between {MIN_MINUTES} minutes and {MAX_MINUTES // 60} hours.",
            "minutes",
        )
    if booking.overbook and not actor.has_permission("schedule.overbook"):
        raise SchedulingError("You may not overbook a provider.", "overbook")
    starts_at = _check_start(booking.starts_at, now)
    return _Checked(
        patient=patient,
        provider=provider,
        appointment_type=appointment_type,
        location=location,
        room=room,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=minutes),
    )


def _check_start(starts_at: datetime | None, now: datetime) -> datetime:
    if starts_at is None:
        raise SchedulingError("Choose a date and time.", "starts_at")
    if starts_at.tzinfo is None:
        raise ValueError("starts_at must be timezone-aware")
    day = starts_at.astimezone(clinic_zone()).date()
    today = clinic_today(now)
    if day < today:
        raise SchedulingError("That date is in the past.", "starts_at")
    if day > today + timedelta(days=MAX_DAYS_AHEAD):
        raise SchedulingError("Appointments can be booked up to two years ahead.", "starts_at")
    return starts_at.astimezone(UTC)


def _active_overlapping(starts_at: datetime, ends_at: datetime, exclude_id: int | None = None):
    statement = select(Appointment).where(
        Appointment.starts_at < ends_at,
        Appointment.ends_at > starts_at,
        Appointment.status.not_in(INACTIVE_STATUSES),
    )
    if exclude_id is not None:
        statement = statement.where(Appointment.id != exclude_id)
    return statement


def _conflict(
    *,
    starts_at: datetime,
    ends_at: datetime,
    provider_id: int,
    room: Room | None,
    patient_id: int,
    overbook: bool,
    exclude_id: int | None = None,
) -> SlotTaken | None:
    """The first reason the time cannot be held, or None.

    On SQLite this check is the guard: the transaction holds the database's write lock from
    its first statement, so nobody can book between this SELECT and our INSERT. On
    PostgreSQL it gives a precise message; the exclusion constraints decide races.
    """
    base = _active_overlapping(starts_at, ends_at, exclude_id)
    if not overbook:
        taken = db.session.scalars(
            base.where(
                Appointment.provider_id == provider_id, Appointment.overbooked.is_(False)
            ).limit(1)
        ).first()
        if taken is not None:
            return SlotTaken()
    if room is not None:
        taken = db.session.scalars(base.where(Appointment.room_id == room.id).limit(1)).first()
        if taken is not None:
            return SlotTaken(
                f"{room.name} is in use at that time — choose another room.", "room_id"
            )
    taken = db.session.scalars(base.where(Appointment.patient_id == patient_id).limit(1)).first()
    if taken is not None:
        return SlotTaken("This patient already has an appointment at that time.", "patient_id")
    return None


def _constraint_of(error: DBAPIError) -> str:
    diag = getattr(error.orig, "diag", None)
    return (getattr(diag, "constraint_name", None) or "") + " " + str(error.orig)


def _is_overlap(error: DBAPIError) -> bool:
    """An exclusion violation, or the deadlock two inserts that exclude each other can end
    in on PostgreSQL: it aborts one of them, and the other one holds the time."""
    return getattr(error.orig, "sqlstate", None) in ("23P01", "40P01")


def _slot_taken_from(error: DBAPIError) -> SlotTaken:
    """The message for an exclusion violation PostgreSQL raised in a race."""
    name = _constraint_of(error)
    if "room_overlap" in name:
        return SlotTaken("That room was just taken — choose another room.", "room_id")
    if "patient_overlap" in name:
        return SlotTaken("This patient already has an appointment at that time.", "patient_id")
    return SlotTaken()


def _by_request_key(request_key: str) -> Appointment | None:
    return db.session.scalars(
        select(Appointment).where(Appointment.request_key == request_key)
    ).first()


def _status_change(appointment: Appointment, status: str, actor, now: datetime) -> None:
    appointment.status = status
    appointment.status_changed_at = now
    db.session.add(
        AppointmentStatusChange(
            appointment=appointment, status=status, changed_at=now, changed_by_id=actor.id
        )
    )


def _new_appointment(actor, checked: _Checked, booking: Booking, now: datetime) -> Appointment:
    appointment = Appointment(
        patient_id=checked.patient.id,
        provider_id=checked.provider.id,
        location_id=checked.location.id,
        room_id=checked.room.id if checked.room else None,
        appointment_type_id=checked.appointment_type.id,
        starts_at=checked.starts_at,
        ends_at=checked.ends_at,
        status="scheduled",
        status_changed_at=now,
        overbooked=bool(booking.overbook),
        reason=(booking.reason or "").strip() or None,
        notes=(booking.notes or "").strip() or None,
        request_key=booking.request_key or None,
        created_by_id=actor.id,
        created_at=now,
    )
    db.session.add(appointment)
    db.session.add(
        AppointmentStatusChange(
            appointment=appointment, status="scheduled", changed_at=now, changed_by_id=actor.id
        )
    )
    return appointment


def _audit_created(actor, appointment: Appointment, patient: Patient) -> None:
    audit.record(
        actor,
        "appointment.overbook" if appointment.overbooked else "appointment.create",
        patient=patient,
        obj=appointment,
        category=CATEGORY,
        detail=f"starts={appointment.starts_at:%Y-%m-%dT%H:%MZ}",
    )


def _close_waitlist_entry(actor, entry_id: int, appointment: Appointment) -> None:
    """Mark the waitlist entry this booking came from as booked, in this transaction."""
    try:
        from portal.scheduling.flow import close_waitlist_entry
    except ImportError:  # the waitlist is not part of this build yet
        return
    close_waitlist_entry(actor, entry_id, appointment)


# --- Use cases -------------------------------------------------------------------------


def book_appointment(actor, booking: Booking, *, now: datetime | None = None) -> Appointment:
    """Book one appointment: validate, refuse overlaps, save with its audit event.

    Submitting the same form twice (same ``request_key``) books once and returns the
    appointment the first submission made. Raises SchedulingError (with the field),
    SlotTaken when the provider, room or patient is already busy at that time.
    """
    now = now or utcnow()
    if booking.request_key:
        existing = _by_request_key(booking.request_key)
        if existing is not None:
            db.session.rollback()
            return existing
    try:
        checked = _check_booking(actor, booking, now)
        conflict = _conflict(
            starts_at=checked.starts_at,
            ends_at=checked.ends_at,
            provider_id=checked.provider.id,
            room=checked.room,
            patient_id=checked.patient.id,
            overbook=booking.overbook,
        )
        if conflict is not None:
            # The time may be held by this very form, submitted a moment ago and committed
            # since the key was looked up: that is a double submit, not a conflict.
            existing = _by_request_key(booking.request_key) if booking.request_key else None
            if existing is not None:
                db.session.rollback()
                return existing
            raise conflict
    except SchedulingError:
        db.session.rollback()  # end the transaction (and SQLite's write lock) at once
        raise
    try:
        appointment = _new_appointment(actor, checked, booking, now)
        # Flush before the audit event: the INSERT meets the exclusion constraint (and waits
        # for a competing transaction) before this one queues for the audit chain's lock.
        db.session.flush()
        _audit_created(actor, appointment, checked.patient)
        if booking.waitlist_entry_id:
            _close_waitlist_entry(actor, booking.waitlist_entry_id, appointment)
        db.session.commit()
    except (IntegrityError, OperationalError) as error:  # OperationalError: a deadlock
        db.session.rollback()
        if booking.request_key:
            # The same form submitted twice at once: whichever constraint noticed first
            # (the key's, or an overlap with itself), the winner has committed by now.
            existing = _by_request_key(booking.request_key)
            db.session.rollback()
            if existing is not None:
                return existing
        if _is_overlap(error):
            raise _slot_taken_from(error) from error
        raise
    return appointment


def series_starts(
    first: datetime,
    interval_weeks: int,
    occurrences: int | None = None,
    until: date | None = None,
) -> list[datetime]:
    """The UTC starts of a series: same clinic wall-clock time every ``interval_weeks``.

    Stops after ``occurrences`` or on the last date not after ``until`` (inclusive),
    whichever comes first; a series is never longer than 52 occurrences.
    """
    zone = clinic_zone()
    local = first.astimezone(zone)
    limit = min(occurrences or MAX_SERIES_OCCURRENCES, MAX_SERIES_OCCURRENCES)
    starts = []
    for index in range(limit):
        day = local.date() + timedelta(weeks=interval_weeks * index)
        if until is not None and day > until:
            break
        starts.append(local_to_utc(day, local.time().replace(tzinfo=None)))
    return starts


def book_series(
    actor,
    booking: Booking,
    *,
    interval_weeks: int,
    occurrences: int | None = None,
    until: date | None = None,
    now: datetime | None = None,
) -> list[Appointment]:
    """Book a recurring series whole, or nothing.

    Every occurrence is checked first; when any cannot be booked, SeriesConflicts lists
    each such date with its reason and nothing is saved.
    """
    now = now or utcnow()
    if booking.request_key:
        existing = _by_request_key(booking.request_key)
        if existing is not None:
            series_id = existing.series_id
            db.session.rollback()
            return _series_appointments(series_id) if series_id else [existing]
    try:
        if not 1 <= (interval_weeks or 0) <= MAX_SERIES_INTERVAL_WEEKS:
            raise SchedulingError("Repeat every 1 to 52 weeks.", "interval_weeks")
        if occurrences is None and until is None:
            raise SchedulingError("Give a number of visits or an end date.", "occurrences")
        if occurrences is not None and not 2 <= occurrences <= MAX_SERIES_OCCURRENCES:
            raise SchedulingError(
                f"A series has 2 to {MAX_SERIES_OCCURRENCES} visits.", "occurrences"
            )
        checked = _check_booking(actor, booking, now)
        starts = series_starts(checked.starts_at, interval_weeks, occurrences, until)
        if len(starts) < 2:
            raise SchedulingError("The end date leaves fewer than 2 visits.", "until")
        duration = checked.ends_at - checked.starts_at
        conflicts: list[tuple[date, str]] = []
        plan = []
        zone = clinic_zone()
        for start in starts:
            local_day = start.astimezone(zone).date()
            try:
                _check_start(start, now)
            except SchedulingError as error:
                conflicts.append((local_day, error.message))
                continue
            conflict = _conflict(
                starts_at=start,
                ends_at=start + duration,
                provider_id=checked.provider.id,
                room=checked.room,
                patient_id=checked.patient.id,
                overbook=booking.overbook,
            )
            if conflict is not None:
                conflicts.append((local_day, conflict.message))
            plan.append(start)
        if conflicts:
            existing = _by_request_key(booking.request_key) if booking.request_key else None
            if existing is not None:  # this form's own series, committed a moment ago
                series_id = existing.series_id
                db.session.rollback()
                return _series_appointments(series_id) if series_id else [existing]
            raise SeriesConflicts(conflicts)
    except SchedulingError:
        db.session.rollback()
        raise
    try:
        series = RecurringSeries(
            interval_weeks=interval_weeks,
            occurrences=len(plan),
            created_by_id=actor.id,
            created_at=now,
        )
        db.session.add(series)
        db.session.flush()
        appointments = []
        for index, start in enumerate(plan):
            checked.starts_at, checked.ends_at = start, start + duration
            appointment = _new_appointment(actor, checked, booking, now)
            appointment.series_id = series.id
            # Only the first carries the form's key: a double submit finds the series by it.
            appointment.request_key = booking.request_key if index == 0 else None
            appointments.append(appointment)
        db.session.flush()
        for appointment in appointments:
            _audit_created(actor, appointment, checked.patient)
        db.session.commit()
    except (IntegrityError, OperationalError) as error:  # OperationalError: a deadlock
        db.session.rollback()
        if _is_overlap(error):
            raise SeriesConflicts(
                [(start.astimezone(clinic_zone()).date(), SlotTaken().message) for start in plan]
            ) from error
        raise
    return appointments


def _series_appointments(series_id: int) -> list[Appointment]:
    return list(
        db.session.scalars(
            select(Appointment)
            .where(Appointment.series_id == series_id)
            .order_by(Appointment.starts_at)
        )
    )


def _load_for_change(actor, appointment_id: int, version: int | None) -> Appointment:
    appointment = get_appointment_for(actor, appointment_id)
    if version is None or int(version) != appointment.version:
        raise StaleChange()
    if appointment.status not in CHANGEABLE_STATUSES:
        raise SchedulingError(
            "This appointment can no longer be changed here (it has started or ended).",
            "status",
        )
    return appointment


def reschedule_appointment(
    actor,
    appointment_id: int,
    *,
    version: int | None,
    starts_at: datetime | None,
    provider_id: int | None = None,
    room_id: int | None = None,
    minutes: int | None = None,
    now: datetime | None = None,
) -> Appointment:
    """Move an appointment to a new time (and optionally provider and room), atomically.

    If the new time is taken (SlotTaken) or the form was stale (StaleChange), the
    appointment stays exactly as it was.
    """
    now = now or utcnow()
    try:
        appointment = _load_for_change(actor, appointment_id, version)
        old_start = appointment.starts_at
        booking = Booking(
            patient_id=appointment.patient_id,
            provider_id=provider_id or appointment.provider_id,
            location_id=appointment.location_id,
            appointment_type_id=appointment.appointment_type_id,
            starts_at=starts_at,
            minutes=minutes
            or int((appointment.ends_at - appointment.starts_at).total_seconds() // 60),
            room_id=room_id,
            overbook=appointment.overbooked,
        )
        checked = _check_booking(actor, booking, now)
        conflict = _conflict(
            starts_at=checked.starts_at,
            ends_at=checked.ends_at,
            provider_id=checked.provider.id,
            room=checked.room,
            patient_id=appointment.patient_id,
            overbook=appointment.overbooked,
            exclude_id=appointment.id,
        )
        if conflict is not None:
            raise conflict
    except SchedulingError:
        db.session.rollback()
        raise
    try:
        appointment.starts_at = checked.starts_at
        appointment.ends_at = checked.ends_at
        appointment.provider_id = checked.provider.id
        appointment.room_id = checked.room.id if checked.room else None
        db.session.flush()  # the UPDATE checks the version and the exclusion constraints
        audit.record(
            actor,
            "appointment.reschedule",
            patient=checked.patient,
            obj=appointment,
            category=CATEGORY,
            detail=f"from={old_start:%Y-%m-%dT%H:%MZ} to={checked.starts_at:%Y-%m-%dT%H:%MZ}",
        )
        db.session.commit()
    except StaleDataError as error:
        db.session.rollback()
        raise StaleChange() from error
    except (IntegrityError, OperationalError) as error:  # OperationalError: a deadlock
        db.session.rollback()
        if _is_overlap(error):
            raise _slot_taken_from(error) from error
        raise
    return appointment


def cancel_appointment(
    actor,
    appointment_id: int,
    *,
    version: int | None,
    reason: str | None,
    rest_of_series: bool = False,
    now: datetime | None = None,
) -> list[Appointment]:
    """Cancel an appointment (and, if asked, the later ones of its series).

    Records who cancelled, why, and whether it was late (under 24 hours before the start);
    frees the time at once. Returns the cancelled appointments, the chosen one first.
    """
    now = now or utcnow()
    try:
        reason = (reason or "").strip()
        if not reason:
            raise SchedulingError("Give a reason for cancelling.", "reason")
        if len(reason) > 500:
            raise SchedulingError("Keep the reason under 500 characters.", "reason")
        appointment = _load_for_change(actor, appointment_id, version)
    except SchedulingError:
        db.session.rollback()
        raise
    targets = [appointment]
    if rest_of_series and appointment.series_id:
        targets += list(
            db.session.scalars(
                select(Appointment)
                .where(
                    Appointment.series_id == appointment.series_id,
                    Appointment.starts_at > appointment.starts_at,
                    Appointment.status.in_(CHANGEABLE_STATUSES),
                )
                .order_by(Appointment.starts_at)
            )
        )
    try:
        for target in targets:
            _status_change(target, "cancelled", actor, now)
            target.cancelled_by_id = actor.id
            target.cancel_reason = reason
            target.late_cancel = target.starts_at - now < LATE_CANCEL_WINDOW
        db.session.flush()
        for target in targets:
            audit.record(
                actor,
                "appointment.cancel",
                patient_id=target.patient_id,
                obj=target,
                category=CATEGORY,
                detail="late" if target.late_cancel else None,
            )
        db.session.commit()
    except StaleDataError as error:
        db.session.rollback()
        raise StaleChange() from error
    return targets


def view_appointment(actor, appointment_id: int) -> Appointment:
    """Load an appointment for its panel and record that ``actor`` saw it."""
    appointment = get_appointment_for(actor, appointment_id)
    audit.record(
        actor,
        "appointment.view",
        patient_id=appointment.patient_id,
        obj=appointment,
        category=CATEGORY,
    )
    db.session.commit()
    return appointment


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
    starts = local_to_utc(first_day, time())
    ends = local_to_utc(last_day + timedelta(days=1), time())
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
    as the driver's tuples); the listing is audited once, with counts only.
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
        audit.record(
            actor,
            "appointment.list",
            category=CATEGORY,
            detail=f"view={view} first={first_day} last={last_day} "
            f"providers={len(provider_ids)} count={len(entries)}",
        )
        db.session.commit()
    else:
        db.session.rollback()
    return entries


@dataclass(frozen=True)
class ProviderChoice:
    """A provider as the calendar lists them: plain values, so no commit can expire them."""

    id: int
    full_name: str


def calendar_providers() -> list[ProviderChoice]:
    """Everyone who offers at least one active appointment type, by name."""
    from portal.scheduling.models import appointment_type_providers

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


def chosen_provider_ids(actor, available: list[ProviderChoice]) -> list[int]:
    """The day view's columns this user chose last time (all providers at first)."""
    from portal.scheduling.models import CalendarPreference

    known = [provider.id for provider in available]
    preference = db.session.get(CalendarPreference, actor.id)
    if preference is None or not preference.provider_ids:
        return known
    wanted = {int(part) for part in preference.provider_ids.split(",") if part.isdigit()}
    return [provider_id for provider_id in known if provider_id in wanted] or known


def save_calendar_preference(actor, provider_ids: list[int]) -> None:
    """Remember which providers' columns ``actor`` shows in the day view."""
    from portal.scheduling.models import CalendarPreference

    known = {provider.id for provider in calendar_providers()}
    kept = [provider_id for provider_id in provider_ids if provider_id in known]
    preference = db.session.get(CalendarPreference, actor.id)
    if preference is None:
        preference = CalendarPreference(user_id=actor.id)
        db.session.add(preference)
    preference.provider_ids = ",".join(str(provider_id) for provider_id in kept)
    db.session.commit()
