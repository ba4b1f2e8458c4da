"""When providers work, and which slots are still open.

Read-only computations, no transactions. Weekly templates are in the clinic's wall-clock
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

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select

from portal.extensions import db
from portal.scheduling.models import (
    INACTIVE_STATUSES,
    Appointment,
    AppointmentType,
    AvailabilityBlock,
    AvailabilityException,
    ClinicClosure,
)
from portal.scheduling.services import SchedulingError
from portal.timeutil import utcnow

GRID = timedelta(minutes=5)
TIMES_OF_DAY = {"any": "Any time", "morning": "Morning", "afternoon": "Afternoon"}
# Bounds that let the time-ordered indexes limit their scans (set-up and booking refuse more).
LONGEST_APPOINTMENT = timedelta(hours=24)
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


def _zone() -> ZoneInfo:
    from portal.clinic.services import clinic_time_zone

    return ZoneInfo(clinic_time_zone())


def local_to_utc(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """A clinic wall-clock time on ``day`` as a UTC instant (fold=0; see the module notes)."""
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants at which the local ``day`` starts and the next one starts."""
    return local_to_utc(day, time(0), zone), local_to_utc(day + timedelta(days=1), time(0), zone)


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
    zone = _zone()
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
    blocks_by_key = defaultdict(list)
    for block in blocks:
        blocks_by_key[(block.provider_id, block.weekday)].append(block)

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
        for provider_id in provider_ids:
            intervals = []
            for block in blocks_by_key.get((provider_id, day.weekday()), ()):
                if block.valid_from and day < block.valid_from:
                    continue
                if block.valid_until and day > block.valid_until:
                    continue
                starts = local_to_utc(day, block.start_time, zone)
                ends = local_to_utc(day, block.end_time, zone)
                if ends > starts:
                    intervals.append(
                        Interval(
                            starts,
                            ends,
                            block.location_id,
                            frozenset(t.id for t in block.allowed_types),
                        )
                    )
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


def _busy_times(provider_ids: list[int], start: datetime, end: datetime) -> dict[int, _Busy]:
    """Active appointments of the providers overlapping [start, end): one query."""
    rows = db.session.execute(
        select(Appointment.provider_id, Appointment.starts_at, Appointment.ends_at)
        .where(
            Appointment.provider_id.in_(provider_ids),
            Appointment.status.not_in(INACTIVE_STATUSES),
            # The lower bound lets the (provider_id, starts_at) index bound the scan on both
            # sides; no appointment lasts longer than LONGEST_APPOINTMENT (booking refuses it).
            Appointment.starts_at > start - LONGEST_APPOINTMENT,
            Appointment.starts_at < end,
            Appointment.ends_at > start,
        )
        .order_by(Appointment.starts_at)
    ).all()
    busy: dict[int, _Busy] = defaultdict(_Busy)
    for provider_id, starts_at, ends_at in rows:
        busy[provider_id].add(starts_at, ends_at)
    return busy


class _Busy:
    """One provider's busy times, sorted by start, found per interval by bisection.

    A month of a full day's bookings is hundreds of rows per provider; scanning all of them
    for every working interval would make the search quadratic in the range.
    """

    def __init__(self):
        self.starts: list[datetime] = []
        self.ends: list[datetime] = []
        self.longest = timedelta(0)

    def add(self, starts_at: datetime, ends_at: datetime) -> None:
        self.starts.append(starts_at)  # rows arrive ordered by start
        self.ends.append(ends_at)
        self.longest = max(self.longest, ends_at - starts_at)

    def overlapping(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The busy times that overlap [start, end)."""
        first = bisect_left(self.starts, start - self.longest)
        last = bisect_left(self.starts, end)
        return [(self.starts[i], self.ends[i]) for i in range(first, last) if self.ends[i] > start]


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
) -> list[Slot]:
    """Open slots for the type, across providers, in time order (then provider id).

    Only providers who offer the type (of ``provider_ids``, or all when None/empty), only
    in intervals that allow it; every active appointment (overbooked ones too) is busy.
    Within each free stretch, slots start on a 5-minute grid aligned to the block's start
    and step by the type's duration. Slots starting before ``not_before`` (default: now)
    are left out. ``time_of_day``: "morning" starts before noon local, "afternoon" after.
    """
    if time_of_day not in TIMES_OF_DAY:
        raise ValueError(f"unknown time of day {time_of_day!r}")
    appointment_type = db.session.get(AppointmentType, appointment_type_id)
    if appointment_type is None or not appointment_type.is_active or limit <= 0:
        return []
    offering = {p.id for p in appointment_type.providers if p.is_active}
    chosen = sorted(offering & set(provider_ids) if provider_ids else offering)
    if not chosen or last_day < first_day:
        return []
    zone = _zone()
    duration = timedelta(minutes=appointment_type.default_minutes)
    not_before = not_before or utcnow()
    by_provider = working_intervals_between(chosen, first_day, last_day)
    slots: list[Slot] = []
    seen: set[tuple[datetime, int]] = set()
    # Bookings are read in windows of 1, 2, 4, 8 ... days (one query each, whatever the
    # number of providers): the limit is usually reached in the first days, and a busy month
    # is tens of thousands of rows not worth reading for 50 slots.
    day, window_days = first_day, 1
    while day <= last_day and len(slots) < limit:
        window_last = min(last_day, day + timedelta(days=window_days - 1))
        busy = _busy_times(chosen, day_bounds(day, zone)[0], day_bounds(window_last, zone)[1])
        # Day by day across providers: once a whole day is done and the limit is reached,
        # no later day can hold an earlier slot.
        while day <= window_last and len(slots) < limit:
            for provider_id in chosen:
                for interval in by_provider[provider_id].get(day, ()):
                    if interval.allows(appointment_type_id):
                        _add_slots(
                            slots,
                            seen,
                            provider_id,
                            interval,
                            busy.get(provider_id),
                            duration,
                            not_before,
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
    busy: _Busy | None,
    duration: timedelta,
    not_before: datetime,
    time_of_day: str,
    zone: ZoneInfo,
) -> None:
    """Append the interval's open slots: its free stretches cut on the grid by duration."""
    free = [interval]
    if busy is not None:
        for busy_start, busy_end in busy.overlapping(interval.starts_at, interval.ends_at):
            free = _subtract(free, busy_start, busy_end)
    for stretch in free:
        start = _round_up_to_grid(stretch.starts_at, interval.starts_at)
        while start + duration <= stretch.ends_at:
            key = (start, provider_id)  # overlapping blocks must not list a slot twice
            if start >= not_before and key not in seen and _wanted(start, time_of_day, zone):
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
        raise SchedulingError("Search from today onwards.", "first_day")
    if last_day < first_day:
        raise SchedulingError("The last day can't be before the first day.", "last_day")
    if (last_day - first_day).days >= MAX_SEARCH_DAYS:
        raise SchedulingError(f"Search at most {MAX_SEARCH_DAYS} days at a time.", "last_day")


def clinic_today() -> date:
    """Today's date in the clinic's zone."""
    return utcnow().astimezone(_zone()).date()


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
