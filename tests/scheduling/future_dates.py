"""Dates the availability tests use where "today" matters (pages list upcoming entries only,
and a search starts today): far enough ahead whenever the tests run, and in standard time."""

from __future__ import annotations

from datetime import date, timedelta


def a_winter_monday() -> date:
    """The second Monday of next January: always ahead, always standard time (UTC-5)."""
    first = date(date.today().year + 1, 1, 1)
    return first + timedelta(days=(7 - first.weekday()) % 7 + 7)
