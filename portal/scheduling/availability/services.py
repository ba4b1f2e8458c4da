"""When providers work, and which slots are still open.

Read-only computations: nothing here writes. Weekly templates are in the clinic's wall-clock
time; everything returned is in UTC.

Daylight saving: a template time is read with ``zoneinfo``'s default (``fold=0``). On the
fall-back day, 01:30 therefore names the first (daylight-time) 01:30, and a block running
through the repeated hour lasts an hour longer in real time. On the spring-forward day a
wall-clock time inside the gap (02:30) is read with the offset before the jump, i.e. it lands
at 03:30 daylight time; a block 01:00-04:00 lasts two real hours.

Precedence: weekly template blocks valid that day, plus extra sessions, minus time off,
minus closures. A clinic-wide closure removes everything that day (extra sessions too); a
location's closure removes what is at that location.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, literal, or_, select, type_coerce
from sqlalchemy import types as sqltypes

from portal.clinic.clock import clinic_zone, day_bounds, local_to_utc
from portal.driver_rows import driver_rows, driver_utc
from portal.extensions import db
from portal.scheduling.models import (
    INACTIVE_STATUSES,
    LONGEST_APPOINTMENT,
    Appointment,
    AppointmentType,
    AvailabilityBlock,
    AvailabilityException,
    ClinicClosure,
)
from portal.timeutil import utcnow
from portal.transaction import Refused

GRID = timedelta(minutes=5)
TIMES_OF_DAY = {"any": "Any time", "morning": "Morning", "afternoon": "Afternoon"}
# Bounds that let the time-ordered indexes limit their scans (set-up refuses more).
LONGEST_EXCEPTION = timedelta(days=367)
# Morning slots start before this local time; afternoon slots at or after it.
NOON = time(12, 0)


@dataclass(frozen=True)
class Interval:
    """A stretch of time a provider works, at one location, perhaps for some types only."""

    starts_at: datetime  # UTC, aware
    ends_at: datetime  # UTC, aware
    location_id: int | None
    allowed_type_ids: frozenset[int] = frozenset()  # empty: any type the provider offers

    def allows(self, type_id: int) -> bool:
        return not self.allowed_type_ids or type_id in self.allowed_type_ids


@dataclass(frozen=True)
class Slot:
    """An open time a type could be booked in."""

    provider_id: int
    location_id: int | None
    starts_at: datetime
    ends_at: datetime


def _subtract(
    intervals: list[Interval], start: datetime, end: datetime, location_id: int | None = None
) -> list[Interval]:
    """``intervals`` with [start, end) cut out (only those at ``location_id`` when given)."""
    kept = []
    for interval in intervals:
        applies = location_id is None or interval.location_id == location_id
        if not applies or interval.ends_at <= start or interval.starts_at >= end:
            kept.append(interval)
            continue
        if interval.starts_at < start:
            kept.append(_clip(interval, interval.starts_at, start))
        if interval.ends_at > end:
            kept.append(_clip(interval, end, interval.ends_at))
    return kept


def _clip(interval: Interval, start: datetime, end: datetime) -> Interval:
    return Interval(start, end, interval.location_id, interval.allowed_type_ids)


def working_intervals_between(
    provider_ids: list[int], first_day: date, last_day: date
) -> dict[int, dict[date, list[Interval]]]:
    """Per provider, per local day in [first_day, last_day]: the intervals they work.

    Three queries whatever the range: template blocks, exceptions, closures.
    """
    zone = clinic_zone()
    result: dict[int, dict[date, list[Interval]]] = {pid: {} for pid in provider_ids}
    if not provider_ids or last_day < first_day:
        return result
    range_start = day_bounds(first_day, zone)[0]
    range_end = day_bounds(last_day, zone)[1]

    blocks = db.session.scalars(
        select(AvailabilityBlock).where(
            AvailabilityBlock.provider_id.in_(provider_ids),
            or_(AvailabilityBlock.valid_from.is_(None), AvailabilityBlock.valid_from <= last_day),
            or_(
                AvailabilityBlock.valid_until.is_(None),
                AvailabilityBlock.valid_until >= first_day,
            ),
        )
    ).all()
    blocks_by_key = defaultdict(list)  # plain values: read for every day of the range
    for block in blocks:
        blocks_by_key[(block.provider_id, block.weekday)].append(
            (
                block.valid_from,
                block.valid_until,
                block.start_time,
                block.end_time,
                block.location_id,
                frozenset(t.id for t in block.allowed_types),
            )
        )

    exceptions = db.session.scalars(
        select(AvailabilityException)
        .where(
            AvailabilityException.provider_id.in_(provider_ids),
            AvailabilityException.starts_at > range_start - LONGEST_EXCEPTION,
            AvailabilityException.starts_at < range_end,
            AvailabilityException.ends_at > range_start,
        )
        .order_by(AvailabilityException.starts_at)
    ).all()
    exceptions_by_provider = defaultdict(list)
    for exception in exceptions:
        exceptions_by_provider[exception.provider_id].append(exception)

    closures = db.session.scalars(
        select(ClinicClosure).where(
            ClinicClosure.first_day <= last_day, ClinicClosure.last_day >= first_day
        )
    ).all()

    day = first_day
    while day <= last_day:
        start_of_day, end_of_day = day_bounds(day, zone)
        closed_here = [c for c in closures if c.first_day <= day <= c.last_day]
        instants = {}  # providers mostly share their templates' times: convert each once

        def instant(wall: time, day=day, instants=instants) -> datetime:
            if wall not in instants:
                instants[wall] = local_to_utc(day, wall, zone)
            return instants[wall]

        for provider_id in provider_ids:
            intervals = []
            for (
                valid_from,
                valid_until,
                start_time,
                end_time,
                location_id,
                allowed,
            ) in blocks_by_key.get((provider_id, day.weekday()), ()):
                if valid_from and day < valid_from:
                    continue
                if valid_until and day > valid_until:
                    continue
                starts = instant(start_time)
                ends = instant(end_time)
                if ends > starts:
                    intervals.append(Interval(starts, ends, location_id, allowed))
            day_exceptions = [
                e
                for e in exceptions_by_provider.get(provider_id, ())
                if e.starts_at < end_of_day and e.ends_at > start_of_day
            ]
            # Closures apply before extras are merged (an extra elsewhere must not be hidden
            # behind a closed location's template) and again after (a closure wins over it).
            for closure in closed_here:
                intervals = _subtract(intervals, start_of_day, end_of_day, closure.location_id)
            for extra in (e for e in day_exceptions if e.kind == "extra"):
                # Only the part not already covered by the template, so no time counts twice.
                pieces = [
                    Interval(
                        max(extra.starts_at, start_of_day),
                        min(extra.ends_at, end_of_day),
                        extra.location_id,
                    )
                ]
                for existing in intervals:
                    pieces = _subtract(pieces, existing.starts_at, existing.ends_at)
                intervals.extend(pieces)
            for off in (e for e in day_exceptions if e.kind == "time_off"):
                intervals = _subtract(intervals, off.starts_at, off.ends_at)
            for closure in closed_here:
                intervals = _subtract(intervals, start_of_day, end_of_day, closure.location_id)
            intervals.sort(key=lambda i: (i.starts_at, i.location_id or 0))
            result[provider_id][day] = intervals
        day += timedelta(days=1)
    return result


def working_intervals(provider_ids: list[int], day: date) -> dict[int, list[Interval]]:
    """Per provider, the intervals they work on the clinic-local ``day``, in time order."""
    by_day = working_intervals_between(provider_ids, day, day)
    return {pid: days.get(day, []) for pid, days in by_day.items()}


def _free_gaps(
    provider_ids: list[int], start: datetime, end: datetime, duration: timedelta
) -> dict[int, _Gaps]:
    """Per provider, the stretches free of active appointments that could hold ``duration``
    (those around [start, end) may reach beyond it): one query, whatever the number of
    providers and bookings.

    A fully booked month is tens of thousands of bookings with no gap long enough, and
    reading each one into Python as an aware datetime costs more than the rest of the
    search. PostgreSQL walks them itself (a window over each provider's bookings in time
    order) and returns only the gaps; SQLite's window functions are slower than a plain
    sweep in Python over its stored text, so there the sweep reads the raw values.
    """
    active = (
        Appointment.provider_id.in_(provider_ids),
        Appointment.status.not_in(INACTIVE_STATUSES),
        # The lower bound lets the (provider_id, starts_at) index bound the scan on both
        # sides; no appointment lasts longer than LONGEST_APPOINTMENT (booking refuses it).
        Appointment.starts_at > start - LONGEST_APPOINTMENT,
        Appointment.starts_at < end,
        Appointment.ends_at > start,
    )
    if db.session.get_bind().dialect.name == "postgresql":
        gaps = _gaps_from_window(active, duration)
    else:
        gaps = _gaps_from_sweep(active, duration)
    return {provider_id: gaps.get(provider_id) or _Gaps.always() for provider_id in provider_ids}


def _gaps_from_window(active: tuple, duration: timedelta) -> dict[int, _Gaps]:
    """PostgreSQL: the gaps after each booking (and before the first), computed in SQL."""
    window = {
        "partition_by": Appointment.provider_id,
        "order_by": Appointment.starts_at,
        "rows": (None, 0),  # one frame for all three, so one pass computes them together
    }
    walk = (
        select(
            Appointment.provider_id,
            Appointment.starts_at,
            # The latest end so far: the gap after this booking starts there ...
            func.max(Appointment.ends_at).over(**window).label("busy_until"),
            # ... and ends where the next one starts (none: it never ends).
            func.lead(Appointment.starts_at, type_=Appointment.starts_at.type)
            .over(**window)
            .label("next_start"),
            func.row_number().over(**window).label("number"),
        )
        .where(*active)
        .subquery()
    )
    long_enough = walk.c.next_start >= type_coerce(
        walk.c.busy_until, sqltypes.DateTime(timezone=True)
    ) + literal(duration, sqltypes.Interval())
    rows = db.session.execute(
        select(
            walk.c.provider_id,
            walk.c.starts_at,
            walk.c.busy_until,
            walk.c.next_start,
            walk.c.number,
        )
        .where(or_(walk.c.number == 1, walk.c.next_start.is_(None), long_enough))
        .order_by(walk.c.provider_id, walk.c.starts_at)
    )
    gaps: dict[int, _Gaps] = defaultdict(_Gaps)
    for provider_id, starts_at, busy_until, next_start, number in rows:
        if number == 1:
            gaps[provider_id].add(_NEVER, starts_at)
        if next_start is None:
            gaps[provider_id].add(busy_until, _FOREVER)
        elif next_start - busy_until >= duration:
            gaps[provider_id].add(busy_until, next_start)
    return gaps


def _gaps_from_sweep(active: tuple, duration: timedelta) -> dict[int, _Gaps]:
    """SQLite: one ordered read of the stored times, swept in Python.

    SQLite keeps these times as fixed-width UTC text ("2027-01-11 13:00:00.000000"), which
    sorts and compares like the instants it names; only a gap's two ends are parsed.
    """
    rows = driver_rows(
        select(Appointment.provider_id, Appointment.starts_at, Appointment.ends_at)
        .where(*active)
        .order_by(Appointment.provider_id, Appointment.starts_at)
    )
    gaps: dict[int, _Gaps] = defaultdict(_Gaps)
    parse = datetime.fromisoformat
    provider = busy_until = None
    for provider_id, starts_at, ends_at in rows:
        if provider_id != provider:
            if provider is not None:
                gaps[provider].add(driver_utc(busy_until), _FOREVER)
            provider, busy_until = provider_id, ends_at
            gaps[provider].add(_NEVER, driver_utc(starts_at))
            continue
        if starts_at > busy_until and parse(starts_at) - parse(busy_until) >= duration:
            gaps[provider].add(driver_utc(busy_until), driver_utc(starts_at))
        if ends_at > busy_until:
            busy_until = ends_at
    if provider is not None:
        gaps[provider].add(driver_utc(busy_until), _FOREVER)
    return gaps


_NEVER = datetime.min.replace(tzinfo=UTC)
_FOREVER = datetime.max.replace(tzinfo=UTC)


class _Gaps:
    """One provider's free stretches, in time order and apart, found by bisection."""

    def __init__(self):
        self.starts: list[datetime] = []
        self.ends: list[datetime] = []

    @classmethod
    def always(cls) -> _Gaps:
        """A provider without bookings: free all along."""
        gaps = cls()
        gaps.add(_NEVER, _FOREVER)
        return gaps

    def add(self, starts_at: datetime, ends_at: datetime) -> None:
        self.starts.append(starts_at)  # rows arrive in time order
        self.ends.append(ends_at)

    def within(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The free parts of [start, end)."""
        found = []
        index = bisect_right(self.ends, start)
        while index < len(self.starts) and self.starts[index] < end:
            found.append((max(self.starts[index], start), min(self.ends[index], end)))
            index += 1
        return found


def _round_up_to_grid(moment: datetime, origin: datetime) -> datetime:
    """The first instant at or after ``moment`` that is a whole number of GRID from origin."""
    if moment <= origin:
        return origin
    steps = -(-(moment - origin) // GRID)
    return origin + steps * GRID


def find_open_slots(
    appointment_type_id: int,
    provider_ids: list[int] | None,
    first_day: date,
    last_day: date,
    time_of_day: str = "any",
    limit: int = 50,
    *,
    not_before: datetime | None = None,
    after: tuple[datetime, int] | None = None,
) -> list[Slot]:
    """The first ``limit`` open slots for the type, across providers, in time order (then
    provider id).

    Only providers who offer the type (of ``provider_ids``, or all when None/empty), only
    in intervals that allow it; every active appointment (overbooked ones too) is busy.
    Within each free stretch, slots start on a 5-minute grid aligned to the block's start
    and step by the type's duration. Slots starting before ``not_before`` (default: now)
    are left out. ``time_of_day``: "morning" starts before noon local, "afternoon" after.
    ``after`` (start, provider id) of the last slot of a previous page: the next page
    starts right after it.
    """
    if time_of_day not in TIMES_OF_DAY:
        raise ValueError(f"unknown time of day {time_of_day!r}")
    appointment_type = db.session.get(AppointmentType, appointment_type_id)
    if appointment_type is None or not appointment_type.is_active or limit <= 0:
        return []
    offering = {p.id for p in appointment_type.providers if p.is_active}
    chosen = sorted(offering & set(provider_ids) if provider_ids else offering)
    zone = clinic_zone()
    # Slots come after this (start, provider id): from ``not_before`` on, or after ``after``.
    cursor = (not_before or utcnow(), -1)
    if after is not None:
        cursor = max(cursor, after)
        first_day = max(first_day, after[0].astimezone(zone).date())
    if not chosen or last_day < first_day:
        return []
    duration = timedelta(minutes=appointment_type.default_minutes)
    by_provider = working_intervals_between(chosen, first_day, last_day)
    slots: list[Slot] = []
    seen: set[tuple[datetime, int]] = set()
    # Bookings are read in windows of 1, 2, 4, 8 ... days (one query each, whatever the
    # number of providers): the limit is usually reached in the first days.
    day, window_days = first_day, 1
    while day <= last_day and len(slots) < limit:
        window_last = min(last_day, day + timedelta(days=window_days - 1))
        gaps = _free_gaps(
            chosen, day_bounds(day, zone)[0], day_bounds(window_last, zone)[1], duration
        )
        # Day by day across providers: once a whole day is done and the limit is reached,
        # no later day can hold an earlier slot.
        while day <= window_last and len(slots) < limit:
            for provider_id in chosen:
                for interval in by_provider[provider_id].get(day, ()):
                    if interval.allows(appointment_type_id):
                        for start, end in gaps[provider_id].within(
                            interval.starts_at, interval.ends_at
                        ):
                            _add_slots(
                                slots,
                                seen,
                                provider_id,
                                interval,
                                start,
                                end,
                                duration,
                                cursor,
                                time_of_day,
                                zone,
                            )
            day += timedelta(days=1)
        window_days *= 2
    slots.sort(key=lambda s: (s.starts_at, s.provider_id))
    return slots[:limit]


def _add_slots(
    slots: list[Slot],
    seen: set,
    provider_id: int,
    interval: Interval,
    free_from: datetime,
    free_until: datetime,
    duration: timedelta,
    cursor: tuple[datetime, int],
    time_of_day: str,
    zone: ZoneInfo,
) -> None:
    """Append the slots of one free stretch of an interval: on its grid, by duration."""
    start = _round_up_to_grid(free_from, interval.starts_at)
    while start + duration <= free_until:
        key = (start, provider_id)  # overlapping blocks must not list a slot twice
        if key > cursor and key not in seen and _wanted(start, time_of_day, zone):
            seen.add(key)
            slots.append(Slot(provider_id, interval.location_id, start, start + duration))
        start += duration


def _wanted(start: datetime, time_of_day: str, zone: ZoneInfo) -> bool:
    if time_of_day == "any":
        return True
    before_noon = start.astimezone(zone).time() < NOON
    return before_noon if time_of_day == "morning" else not before_noon


MAX_SEARCH_DAYS = 92


def check_search_range(first_day: date, last_day: date, today: date) -> None:
    """Refuse a search range that ends before it starts, is in the past, or is too long."""
    if first_day < today:
        raise Refused("Search from today onwards.", "first_day")
    if last_day < first_day:
        raise Refused("The last day can't be before the first day.", "last_day")
    if (last_day - first_day).days >= MAX_SEARCH_DAYS:
        raise Refused(f"Search at most {MAX_SEARCH_DAYS} days at a time.", "last_day")


def count_active_appointments(provider_id: int, start: datetime, end: datetime) -> int:
    """How many active appointments of the provider overlap [start, end)."""
    return db.session.scalar(
        select(func.count())
        .select_from(Appointment)
        .where(
            Appointment.provider_id == provider_id,
            Appointment.status.not_in(INACTIVE_STATUSES),
            Appointment.starts_at > start - LONGEST_APPOINTMENT,
            Appointment.starts_at < end,
            Appointment.ends_at > start,
        )
    )
