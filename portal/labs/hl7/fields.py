"""Reading parts of a python-hl7 segment safely: an absent field, repetition or component is
an empty string, never an exception (a lab's message may stop anywhere)."""

from __future__ import annotations

import re
from datetime import date, datetime

import hl7

# HL7 DTM, strictly: python-hl7's reader alone takes "2024-01-02" for a time with an offset.
_DTM = re.compile(
    r"^\d{4}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?)?)?(?:[+-]\d{4})?$"
)


def part(segment, field: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
    """The text at ``field`` (1-based as HL7 counts; MSH-1 is the field separator),
    repetition, component, subcomponent of ``segment``, or ""."""
    try:
        value = segment(field)
        if isinstance(value, str):
            return value if rep == comp == sub == 1 else ""
        value = value(rep)
        if isinstance(value, str):
            return value if comp == sub == 1 else ""
        value = value(comp)
        if isinstance(value, str):
            return value if sub == 1 else ""
        return str(value(sub))
    except (IndexError, KeyError, TypeError, AttributeError):
        return ""


def repetitions(segment, field: int) -> int:
    """How many repetitions ``field`` has (0 when absent)."""
    try:
        value = segment(field)
    except (IndexError, KeyError):
        return 0
    if isinstance(value, str):
        return 1 if value else 0
    try:
        return len(value) if str(value) else 0
    except TypeError:
        return 1


def whole(segment, field: int) -> str:
    """The field as sent, separators and all ("" when absent)."""
    try:
        return str(segment(field))
    except (IndexError, KeyError):
        return ""


class BadDate(ValueError):
    """A date or time field that is not an HL7 DTM."""


def instant(text: str, what: str) -> datetime | None:
    """An HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]) as a datetime: aware when the lab
    gave an offset, naive otherwise (the caller decides the zone). Empty: None."""
    text = text.strip()
    if not text:
        return None
    if not _DTM.match(text):
        raise BadDate(f"{what} is not an HL7 date/time")
    try:
        value = hl7.parse_datetime(text)
    except (ValueError, OverflowError) as error:
        raise BadDate(f"{what} is not an HL7 date/time") from error
    if not 1900 <= value.year <= 2200:
        raise BadDate(f"{what} is out of range")
    return value


def day(text: str, what: str) -> date | None:
    """An HL7 date (the first 8 digits of a DT or DTM), or None when empty."""
    text = text.strip()
    if not text:
        return None
    if len(text) < 8 or not text[:8].isdigit():
        raise BadDate(f"{what} is not a full date")
    value = instant(text[:8], what)
    return value.date() if value else None
