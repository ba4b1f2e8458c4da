"""Booking: one appointment or a recurring series, rescheduling, cancelling, and opening an
appointment's panel. Each public function is one use case with its audit event(s).

No double booking: a provider, a room and a patient never hold two *active* appointments
that overlap. The checks here run inside the use case's transaction: on SQLite that
transaction holds the database's write lock from its first statement, so they decide; on
PostgreSQL they give the precise message and the exclusion constraints decide a race
(``claiming_time``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError

from portal.audit import services as audit
from portal.auth.models import User
from portal.clinic.clock import clinic_today, clinic_zone, local_to_utc
from portal.clinic.models import Location
from portal.extensions import db
from portal.patients.models import Patient
from portal.scheduling.availability.services import find_open_slots, working_intervals
from portal.scheduling.models import (
    INACTIVE_STATUSES,
    LONGEST_APPOINTMENT,
    Appointment,
    AppointmentStatusChange,
    AppointmentType,
    AvailabilityBlock,
    RecurringSeries,
    Room,
)
from portal.scheduling.services import (
    CATEGORY,
    check_version,
    get_appointment_for,
    stale_change,
)
from portal.scheduling.waitlist.services import close_waitlist_entry
from portal.timeutil import utcnow
from portal.transaction import Conflict, Refused, use_case

# How far back (and ahead) "the provider's most used type" looks: recent habits, not the
# whole history, and a bounded read of the provider's time index.
USUAL_TYPE_WINDOW = timedelta(days=120)


def most_used_type_id(
    provider_id: int | None, type_ids: list[int], now: datetime | None = None
) -> int | None:
    """The type (of ``type_ids``) the provider's visits around now were most often booked
    as, cancelled ones aside; None when they have none. Ties go to the earlier of
    ``type_ids`` (the list's own order, by name)."""
    if provider_id is None or not type_ids:
        return None
    now = now or utcnow()
    counts = dict(
        db.session.execute(
            select(Appointment.appointment_type_id, func.count())
            .where(
                Appointment.provider_id == provider_id,
                Appointment.starts_at >= now - USUAL_TYPE_WINDOW,
                Appointment.starts_at < now + USUAL_TYPE_WINDOW,
                Appointment.status != "cancelled",
                Appointment.appointment_type_id.in_(type_ids),
            )
            .group_by(Appointment.appointment_type_id)
        ).all()
    )
    if not counts:
        return None
    return max(type_ids, key=lambda type_id: (counts.get(type_id, 0), -type_ids.index(type_id)))


# --- Rules of a booking --------------------------------------------------------------

MIN_MINUTES = 5
MAX_MINUTES = int(LONGEST_APPOINTMENT.total_seconds() // 60)  # 12 hours
MAX_DAYS_AHEAD = 2 * 366  # further out is a typing mistake, not a booking
LATE_CANCEL_WINDOW = timedelta(hours=24)
# A visit that has started (arrived onwards) is moved or ended through the flow, not here.
CHANGEABLE_STATUSES = ("scheduled", "confirmed")
MAX_SERIES_OCCURRENCES = 52
MAX_SERIES_INTERVAL_WEEKS = 52

SLOT_TAKEN = "That time was just taken — pick another."
ROOM_TAKEN = "That room was just taken — choose another room."
PATIENT_BUSY = "This patient already has an appointment at that time."
# PostgreSQL's SQLSTATEs for the two ways a race over the same time ends.
EXCLUSION_VIOLATION = "23P01"
DEADLOCK_DETECTED = "40P01"


class TimeTaken(Conflict):
    """The provider's time is held by another active visit (409): the answer can say whose
    (``slot_holder``) and offer the next free time (``next_free_start``)."""


class OutsideWorkingHours(Refused):
    """The visit falls outside the provider's working hours: booked only when confirmed."""

    def __init__(self, message: str):
        super().__init__(message, "outside_hours")


def slot_taken(message: str = SLOT_TAKEN, field: str | None = "starts_at") -> Conflict:
    """Another active appointment already holds (part of) that time (409)."""
    if message == SLOT_TAKEN:
        return TimeTaken(message, field)
    return Conflict(message, field)


class SeriesConflicts(Conflict):
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
    # The person booking has confirmed a time outside the provider's working hours.
    outside_hours_ok: bool = False


@dataclass
class _Checked:
    patient: Patient
    provider: User
    appointment_type: AppointmentType
    location: Location
    room: Room | None
    starts_at: datetime
    ends_at: datetime


def _check_booking(actor, booking: Booking, now: datetime) -> _Checked:
    """Validate everything but overlaps; the refusal names the field at fault."""
    patient = db.session.get(Patient, booking.patient_id) if booking.patient_id else None
    if patient is None:
        raise Refused("Choose a patient.", "patient_id")
    provider = db.session.get(User, booking.provider_id) if booking.provider_id else None
    if provider is None or not provider.is_active:
        raise Refused("Choose a provider.", "provider_id")
    appointment_type = (
        db.session.get(AppointmentType, booking.appointment_type_id)
        if booking.appointment_type_id
        else None
    )
    if appointment_type is None or not appointment_type.is_active:
        raise Refused("Choose an appointment type.", "appointment_type_id")
    if provider.id not in {p.id for p in appointment_type.providers}:
        raise Refused(
            f"{provider.full_name} does not offer {appointment_type.name} visits.",
            "appointment_type_id",
        )
    location = db.session.get(Location, booking.location_id) if booking.location_id else None
    if location is None or not getattr(location, "is_active", True):
        raise Refused("Choose a location.", "location_id")
    room = None
    if booking.room_id:
        room = db.session.get(Room, booking.room_id)
        if room is None or room.location_id != location.id or not room.is_active:
            raise Refused("That room is not at this location.", "room_id")
    minutes = booking.minutes or appointment_type.default_minutes
    if not MIN_MINUTES <= minutes <= MAX_MINUTES:
        raise Refused(
            f"A visit lasts between {MIN_MINUTES} minutes and {MAX_MINUTES // 60} hours.",
            "minutes",
        )
    if booking.overbook and not actor.has_permission("schedule.overbook"):
        raise Refused("You may not overbook a provider.", "overbook")
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
        raise Refused("Choose a date and time.", "starts_at")
    if starts_at.tzinfo is None:
        raise ValueError("starts_at must be timezone-aware")
    day = starts_at.astimezone(clinic_zone()).date()
    today = clinic_today(now)
    if day < today:
        raise Refused("That date is in the past.", "starts_at")
    if day > today + timedelta(days=MAX_DAYS_AHEAD):
        raise Refused("Appointments can be booked up to two years ahead.", "starts_at")
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


def _overlap(
    *,
    starts_at: datetime,
    ends_at: datetime,
    provider_id: int,
    room: Room | None,
    patient_id: int,
    overbook: bool,
    exclude_id: int | None = None,
) -> Conflict | None:
    """The first reason the time cannot be held, or None.

    On SQLite this check is the guard: the use case holds the database's write lock from its
    first statement, so nobody can book between this SELECT and our INSERT. On PostgreSQL it
    gives a precise message; the exclusion constraints decide races.
    """
    base = _active_overlapping(starts_at, ends_at, exclude_id)
    if not overbook:
        taken = db.session.scalars(
            base.where(
                Appointment.provider_id == provider_id, Appointment.overbooked.is_(False)
            ).limit(1)
        ).first()
        if taken is not None:
            return slot_taken()
    if room is not None:
        taken = db.session.scalars(base.where(Appointment.room_id == room.id).limit(1)).first()
        if taken is not None:
            return slot_taken(
                f"{room.name} is in use at that time — choose another room.", "room_id"
            )
    taken = db.session.scalars(base.where(Appointment.patient_id == patient_id).limit(1)).first()
    if taken is not None:
        return slot_taken(PATIENT_BUSY, "patient_id")
    return None


def _check_working_hours(checked: _Checked) -> None:
    """Refuse (until confirmed) a visit that is not wholly inside one of the provider's
    working intervals that day. A provider with no weekly hours set up at all is not asked
    about: the clinic has not told the portal their hours."""
    provider_id = checked.provider.id
    has_hours = db.session.scalar(
        select(AvailabilityBlock.id).where(AvailabilityBlock.provider_id == provider_id).limit(1)
    )
    if has_hours is None:
        return
    zone = clinic_zone()
    start = checked.starts_at.astimezone(zone)
    intervals = working_intervals([provider_id], start.date()).get(provider_id, [])
    if any(i.starts_at <= checked.starts_at and checked.ends_at <= i.ends_at for i in intervals):
        return
    hours = ", ".join(
        f"{i.starts_at.astimezone(zone):%H:%M}\u2013{i.ends_at.astimezone(zone):%H:%M}"
        for i in intervals
    )
    end = checked.ends_at.astimezone(zone)
    raise OutsideWorkingHours(
        f"{start:%H:%M}\u2013{end:%H:%M} on {start:%a} {start.day} {start:%b} is outside "
        f"{checked.provider.full_name}'s working hours "
        f"({hours or 'not a working day'}). Book it anyway?"
    )


@dataclass(frozen=True)
class SlotHolder:
    """Who holds a time that was just taken, as the booking panel says it."""

    patient_name: str | None  # None: not the actor's to see
    times: str  # start and end, clinic time, an en dash between


def slot_holder(
    actor,
    provider_id: int,
    starts_at: datetime,
    ends_at: datetime,
    exclude_id: int | None = None,
) -> SlotHolder | None:
    """The visit holding (part of) the provider's time: its clinic times, and its patient's
    name when the actor may see the schedule's names (the read is audited, as opening the
    visit would be). None when nobody holds it any more."""
    with use_case():
        holder = db.session.scalars(
            _active_overlapping(starts_at, ends_at, exclude_id)
            .where(Appointment.provider_id == provider_id, Appointment.overbooked.is_(False))
            .order_by(Appointment.starts_at)
            .limit(1)
        ).first()
        if holder is None:
            return None
        zone = clinic_zone()
        times = (
            f"{holder.starts_at.astimezone(zone):%H:%M}\u2013"
            f"{holder.ends_at.astimezone(zone):%H:%M}"
        )
        if not actor.has_permission("schedule.read"):
            return SlotHolder(None, times)
        patient = get_appointment_for(actor, holder.id).patient
        audit.record(
            actor,
            "patient.view",
            patient=patient,
            obj=holder,
            category=CATEGORY,
            detail="slot-taken",
        )
        return SlotHolder(patient.display_name, times)


def next_free_start(
    provider_id: int, appointment_type_id: int, after: datetime, days: int = 14
) -> datetime | None:
    """The provider's next open slot for the type from ``after`` on (within ``days``)."""
    day = after.astimezone(clinic_zone()).date()
    slots = find_open_slots(
        appointment_type_id,
        [provider_id],
        day,
        day + timedelta(days=days - 1),
        limit=1,
        not_before=after,
    )
    return slots[0].starts_at if slots else None


# --- Races the database decides ----------------------------------------------------------


def _sqlstate(error: Exception) -> str | None:
    return getattr(getattr(error, "orig", None), "sqlstate", None)


def _constraint_of(error: Exception) -> str:
    orig = getattr(error, "orig", None)
    diag = getattr(orig, "diag", None)
    return (getattr(diag, "constraint_name", None) or "") + " " + str(orig)


def _lost_the_time(error: Exception) -> bool:
    """The database refused this use case's claim on the time: an exclusion violation, the
    deadlock two inserts that exclude each other can end in on PostgreSQL (it aborts one of
    them, and the other one holds the time), or the one-time key of a form sent twice."""
    return _sqlstate(error) in (EXCLUSION_VIOLATION, DEADLOCK_DETECTED) or (
        "request_key" in _constraint_of(error)
    )


def _time_taken_from(error: Exception) -> Conflict:
    """The answer to a race the database decided (``use_case``'s conflict): the version
    column's refusal is a stale form; a lost claim on the time says whose time it was
    (PostgreSQL names the constraint). Any other database error is no race and is raised
    as it is."""
    if isinstance(error, StaleDataError):
        return stale_change()
    if not _lost_the_time(error):
        raise error
    name = _constraint_of(error)
    if "room_overlap" in name:
        return slot_taken(ROOM_TAKEN, "room_id")
    if "patient_overlap" in name:
        return slot_taken(PATIENT_BUSY, "patient_id")
    return slot_taken()


@contextmanager
def claiming_time(lost: Callable[[Exception], Refused]) -> Iterator[None]:
    """The use case of a change that claims time for appointments (book, reschedule).

    ``use_case`` turns an IntegrityError or StaleDataError at flush or commit into
    ``lost(error)``; the deadlock in which PostgreSQL ends two such claims racing (an
    OperationalError) is one of them losing the time too, and is answered the same way.
    """
    try:
        with use_case(conflict=lost):
            yield
    except OperationalError as error:
        if _sqlstate(error) != DEADLOCK_DETECTED:
            raise
        raise lost(error) from error


# --- Work of the use cases (flush only) --------------------------------------------------


def _by_request_key(request_key: str | None) -> Appointment | None:
    if not request_key:
        return None
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


# --- Use cases -------------------------------------------------------------------------


def book_appointment(actor, booking: Booking, *, now: datetime | None = None) -> Appointment:
    """Book one appointment: validate, refuse overlaps, save with its audit event (and mark
    the waitlist entry it came from booked, in the same transaction).

    Submitting the same form twice (same ``request_key``) books once and returns the
    appointment the first submission made. Refuses (``Refused``, with the field) what does
    not make sense, and with a ``Conflict`` a time the provider, room or patient already
    holds.
    """
    now = now or utcnow()
    try:
        with claiming_time(_time_taken_from):
            existing = _by_request_key(booking.request_key)
            if existing is not None:
                return existing
            checked = _check_booking(actor, booking, now)
            taken = _overlap(
                starts_at=checked.starts_at,
                ends_at=checked.ends_at,
                provider_id=checked.provider.id,
                room=checked.room,
                patient_id=checked.patient.id,
                overbook=booking.overbook,
            )
            if taken is not None:
                raise taken
            if not booking.outside_hours_ok:
                _check_working_hours(checked)
            appointment = _new_appointment(actor, checked, booking, now)
            # Flush before the audit event: the INSERT meets the exclusion constraint (and
            # waits for a competing transaction) before this one queues for the audit
            # chain's lock.
            db.session.flush()
            _audit_created(actor, appointment, checked.patient)
            if booking.waitlist_entry_id:
                close_waitlist_entry(actor, booking.waitlist_entry_id, appointment)
    except Conflict:
        # The same form sent twice at once: whichever check or constraint noticed first
        # (the key's, or an overlap with itself), the other sending has committed by now.
        existing = _by_request_key(booking.request_key)
        if existing is None:
            raise
        return existing
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
        starts.append(local_to_utc(day, local.time().replace(tzinfo=None), zone))
    return starts


def _check_series(interval_weeks: int | None, occurrences: int | None, until: date | None):
    if not 1 <= (interval_weeks or 0) <= MAX_SERIES_INTERVAL_WEEKS:
        raise Refused("Repeat every 1 to 52 weeks.", "interval_weeks")
    if occurrences is None and until is None:
        raise Refused("Give a number of visits or an end date.", "occurrences")
    if occurrences is not None and not 2 <= occurrences <= MAX_SERIES_OCCURRENCES:
        raise Refused(f"A series has 2 to {MAX_SERIES_OCCURRENCES} visits.", "occurrences")


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

    Every occurrence is checked first; when any cannot be booked, ``SeriesConflicts`` lists
    each such date with its reason and nothing is saved. The same form sent twice returns
    the series the first sending booked.
    """
    now = now or utcnow()
    plan: list[datetime] = []

    def lost(error: Exception) -> Refused:
        """A race lost at the database: every date of the series is refused."""
        if isinstance(error, StaleDataError) or not _lost_the_time(error):
            raise error
        zone = clinic_zone()
        return SeriesConflicts([(start.astimezone(zone).date(), SLOT_TAKEN) for start in plan])

    try:
        with claiming_time(lost):
            existing = _by_request_key(booking.request_key)
            if existing is not None:
                return _series_of(existing)
            _check_series(interval_weeks, occurrences, until)
            checked = _check_booking(actor, booking, now)
            if not booking.outside_hours_ok:  # weekly hours: the first visit tells
                _check_working_hours(checked)
            starts = series_starts(checked.starts_at, interval_weeks, occurrences, until)
            if len(starts) < 2:
                raise Refused("The end date leaves fewer than 2 visits.", "until")
            duration = checked.ends_at - checked.starts_at
            conflicts: list[tuple[date, str]] = []
            zone = clinic_zone()
            for start in starts:
                local_day = start.astimezone(zone).date()
                try:
                    _check_start(start, now)
                except Refused as error:
                    conflicts.append((local_day, error.message))
                    continue
                taken = _overlap(
                    starts_at=start,
                    ends_at=start + duration,
                    provider_id=checked.provider.id,
                    room=checked.room,
                    patient_id=checked.patient.id,
                    overbook=booking.overbook,
                )
                if taken is not None:
                    conflicts.append((local_day, taken.message))
                plan.append(start)
            if conflicts:
                raise SeriesConflicts(conflicts)
            appointments = _add_series(actor, checked, booking, plan, interval_weeks, now)
    except Conflict:
        # This form's own series, committed a moment ago by the same form sent twice.
        existing = _by_request_key(booking.request_key)
        if existing is None:
            raise
        return _series_of(existing)
    return appointments


def _add_series(
    actor,
    checked: _Checked,
    booking: Booking,
    plan: list[datetime],
    interval_weeks: int,
    now: datetime,
) -> list[Appointment]:
    series = RecurringSeries(
        interval_weeks=interval_weeks,
        occurrences=len(plan),
        created_by_id=actor.id,
        created_at=now,
    )
    db.session.add(series)
    db.session.flush()
    duration = checked.ends_at - checked.starts_at
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
    return appointments


def _series_of(appointment: Appointment) -> list[Appointment]:
    """The appointments of ``appointment``'s series in time order (itself, if none)."""
    if appointment.series_id is None:
        return [appointment]
    return list(
        db.session.scalars(
            select(Appointment)
            .where(Appointment.series_id == appointment.series_id)
            .order_by(Appointment.starts_at)
        )
    )


def _load_for_change(actor, appointment_id: int, version: int | None) -> Appointment:
    appointment = get_appointment_for(actor, appointment_id)
    check_version(appointment, version)
    if appointment.status not in CHANGEABLE_STATUSES:
        raise Refused(
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

    If the new time is taken or the form was stale (a ``Conflict`` either way), the
    appointment stays exactly as it was.
    """
    now = now or utcnow()
    with claiming_time(_time_taken_from):
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
        taken = _overlap(
            starts_at=checked.starts_at,
            ends_at=checked.ends_at,
            provider_id=checked.provider.id,
            room=checked.room,
            patient_id=appointment.patient_id,
            overbook=appointment.overbooked,
            exclude_id=appointment.id,
        )
        if taken is not None:
            raise taken
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
    return appointment


def _stale_change_from(error: Exception) -> Conflict:
    """``use_case``'s conflict for a change only the version column guards."""
    if isinstance(error, StaleDataError):
        return stale_change()
    raise error


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
    reason = (reason or "").strip()
    with use_case(conflict=_stale_change_from):
        if not reason:
            raise Refused("Give a reason for cancelling.", "reason")
        if len(reason) > 500:
            raise Refused("Keep the reason under 500 characters.", "reason")
        appointment = _load_for_change(actor, appointment_id, version)
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
    return targets


def view_appointment(actor, appointment_id: int) -> Appointment:
    """Load an appointment for its panel and record that ``actor`` saw it."""
    with use_case():
        appointment = get_appointment_for(actor, appointment_id)
        audit.record(
            actor,
            "appointment.view",
            patient_id=appointment.patient_id,
            obj=appointment,
            category=CATEGORY,
        )
    return appointment
