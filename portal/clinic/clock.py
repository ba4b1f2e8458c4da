"""The clinic's calendar: today's date where the clinic is, and its days as UTC instants.

Times are stored in UTC and shown in the clinic's zone (``Clinic.time_zone``). Anything that
asks "which day is it" or "from when to when is that day" asks here, so that a day starts
at the clinic's midnight everywhere, across daylight-saving changes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from portal.clinic.services import clinic_time_zone
from portal.timeutil import utcnow


def clinic_zone() -> ZoneInfo:
    """The clinic's time zone."""
    return ZoneInfo(clinic_time_zone())


def clinic_today(now: datetime | None = None) -> date:
    """Today's date where the clinic is (at ``now``, by default the current time)."""
    return (now or utcnow()).astimezone(clinic_zone()).date()


def local_to_utc(day: date, at: time, zone: ZoneInfo | None = None) -> datetime:
    """A wall-clock time on ``day`` in the clinic's zone (or ``zone``) as a UTC instant.

    A time inside the spring-forward gap does not exist; zoneinfo resolves it with the
    offset before the gap (fold=0), i.e. an hour later on the clock, which is what a front
    desk typing 02:30 on that night would get in any calendar.
    """
    return datetime.combine(day, at, tzinfo=zone or clinic_zone()).astimezone(UTC)


def day_bounds(day: date, zone: ZoneInfo | None = None) -> tuple[datetime, datetime]:
    """The UTC instants at which ``day`` starts and the next day starts, in the clinic's
    zone (or ``zone``): 23 or 25 hours apart on the days the clocks change."""
    zone = zone or clinic_zone()
    return local_to_utc(day, time(0), zone), local_to_utc(day + timedelta(days=1), time(0), zone)
