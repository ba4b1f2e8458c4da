"""Dates and times as they arrive from outside: query strings, form fields, JSON.

Python's dates run from year 1 to 9999, and a date near either end breaks the first time
code steps past it (``end + 1 day`` for an inclusive filter, a clinic zone's offset applied
to 0001-01-01T00:00Z): OverflowError, a 500. No date this portal handles is anywhere near
there, so, as ids are bounded once for the whole app (portal/ids.py), every date from
outside is bounded here to ``EARLIEST_DATE`` .. ``LATEST_DATE`` (1900..2200: birth dates of
the living, visits, filters, a schedule planned years ahead) and anything beyond is refused
like any other bad value: a message beside the field, or a bad-request answer.

- forms use ``DateField`` and ``DateTimeLocalField`` from here instead of WTForms' own
  (tests/test_date_bounds.py checks that every form in the portal does);
- query strings and JSON go through ``parse_date`` / ``parse_instant`` (None when absent,
  malformed or out of range) or ``bounded`` for a value parsed elsewhere.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from wtforms import DateField as _WTFormsDateField
from wtforms import DateTimeLocalField as _WTFormsDateTimeLocalField

EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2200, 12, 31)
# What a bounded field says, unless the form gives a message of its domain (a birth date
# "cannot be in the future", a booking "up to two years ahead").
TOO_EARLY_MESSAGE = f"Enter a date on or after {EARLIEST_DATE.day} {EARLIEST_DATE:%B %Y}."
TOO_LATE_MESSAGE = f"Enter a date on or before {LATEST_DATE.day} {LATEST_DATE:%B %Y}."
# "2026-12-06T14:03:00.123456+05:45" is 32 characters; never parse a megabyte to refuse it.
_MAX_TEXT = 40


def in_range(value: date | datetime | None) -> bool:
    """Whether a date (or the day of a date-time, in its own zone) is within the bounds."""
    if value is None:
        return False
    day = value.date() if isinstance(value, datetime) else value
    return EARLIEST_DATE <= day <= LATEST_DATE


def bounded(value):
    """``value`` if it is a date or date-time within the bounds, else None."""
    return value if in_range(value) else None


def parse_date(text: str | None) -> date | None:
    """An ISO date (2026-12-06) within the bounds, or None."""
    if not text or len(text) > _MAX_TEXT:
        return None
    try:
        return bounded(date.fromisoformat(text.strip()))
    except ValueError:
        return None


def parse_instant(text: str | None) -> datetime | None:
    """An ISO date-time that names its offset ("Z" or +hh:mm), within the bounds, in UTC; or
    None (a time without an offset is no instant: which zone would it be in?)."""
    if not text or len(text) > _MAX_TEXT:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None or not in_range(value):
        return None
    return value.astimezone(UTC)


class _Bounded:
    """Refuses, beside the field, a value beyond the bounds as the field refuses a malformed
    one (``too_early_message`` / ``too_late_message``, by default ``TOO_EARLY_MESSAGE`` /
    ``TOO_LATE_MESSAGE``).

    The bounds are not given to the browser as min / max: a form's own min / max carry its
    domain's limits (a birth date's, a deceased patient's last day), which pages and tests
    read; the server's check is what keeps a far date out.
    """

    def __init__(self, *args, too_early_message=None, too_late_message=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.too_early_message = too_early_message or TOO_EARLY_MESSAGE
        self.too_late_message = too_late_message or TOO_LATE_MESSAGE

    def process_formdata(self, valuelist):
        if valuelist and len(" ".join(str(v) for v in valuelist)) > _MAX_TEXT:
            self.data = None
            raise ValueError(self.invalid_value_message or self.gettext("Not a valid value."))
        super().process_formdata(valuelist)
        if self.data is not None and not in_range(self.data):
            day = self.data.date() if isinstance(self.data, datetime) else self.data
            too_early = day < EARLIEST_DATE
            self.data = None
            raise ValueError(self.too_early_message if too_early else self.too_late_message)


class DateField(_Bounded, _WTFormsDateField):
    """WTForms' DateField, bounded to ``EARLIEST_DATE`` .. ``LATEST_DATE``."""


class DateTimeLocalField(_Bounded, _WTFormsDateTimeLocalField):
    """WTForms' DateTimeLocalField (a wall-clock time), bounded like ``DateField``."""
