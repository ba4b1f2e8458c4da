"""Search parameter values as FHIR writes them, turned into SQL conditions.

The HTTP layer hands each resource type its parameters as raw strings (``spec.Criterion``);
the types read them here so that a date, a token or a reference means the same thing on
every type. A value that cannot be read raises ``InvalidSearch`` naming the parameter (the
API answers 400): a search that silently ignored a malformed date would return too much.

Dates (FHIR R4 3.1.1.4.2): a value is a range, as precise as it was written ("2024" is the
whole year, "2024-03-05" the whole day, "2024-03-05T10:00:00Z" one second). A date or
date-time written without an offset is read in the clinic's zone (the zone the chart shows),
so "date=2024-03-05" finds the visits the clinic saw that day. The stored value is a point
(an instant, or a day); the prefixes compare it with the range:

- ``eq`` (default): inside it; ``ne``: outside it;
- ``lt``: before its start; ``le``: before its end;
- ``gt``: at or after its end; ``ge``: at or after its start.

Tokens are ``system|code``, ``|code`` (no system), ``system|`` (any code of the system) or
``code`` (any system). References are ``Type/id``, a bare ``id`` or an absolute URL ending in
``Type/id``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlalchemy import and_, false, func, or_, true
from sqlalchemy.sql.elements import ColumnElement

from portal.dates import EARLIEST_DATE, LATEST_DATE
from portal.fhir.spec import Criterion, InvalidSearch
from portal.ids import parse_id

DATE_PREFIXES = ("eq", "ne", "lt", "gt", "ge", "le")
# FHIR's other prefixes (sa, eb, ap) are about ranges and approximation: refused by name
# rather than read as part of a date.
_UNSUPPORTED_PREFIXES = ("sa", "eb", "ap")

# YYYY, YYYY-MM, YYYY-MM-DD, and a date-time to the minute or second (fractions allowed),
# with an optional offset: the forms FHIR's date, dateTime and instant take.
_DATE_VALUE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<offset>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
# Long enough for any date FHIR can write; longer is not a date (and never parsed).
_MAX_DATE_TEXT = 40


@dataclass(frozen=True)
class DateRange:
    """A search date as the range it names: ``[start, end)``, with its prefix."""

    prefix: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Token:
    """``system|code``: ``system`` None means any system, "" means no system; ``code`` None
    means any code of the system."""

    system: str | None
    code: str | None


def refuse_modifier(criterion: Criterion, allowed: Iterable[str] = ()) -> None:
    """Refuse a modifier this parameter does not support (``date:exact``...), rather than
    answer as if it were not there."""
    if criterion.modifier is not None and criterion.modifier not in allowed:
        raise InvalidSearch(
            criterion.name, f"The modifier :{criterion.modifier} is not supported here."
        )


def parse_date_value(parameter: str, value: str, zone: tzinfo = UTC) -> DateRange:
    """A date search value (with its prefix) as a range of UTC instants; a value without an
    offset is read in ``zone``."""
    text = (value or "").strip()
    prefix = "eq"
    if text[:2] in DATE_PREFIXES:
        prefix, text = text[:2], text[2:]
    elif text[:2] in _UNSUPPORTED_PREFIXES:
        raise InvalidSearch(parameter, f"The date prefix {text[:2]!r} is not supported.")
    match = _DATE_VALUE.match(text) if len(text) <= _MAX_DATE_TEXT else None
    if match is None:
        raise InvalidSearch(
            parameter,
            f"{value!r} is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or a date-time).",
        )
    parts = match.groupdict()
    try:
        start, end = _range_of(parts, zone)
    except ValueError as error:  # 2024-02-30, 25:00 ...
        raise InvalidSearch(parameter, f"{value!r} is not a valid date.") from error
    if not (start.date() >= EARLIEST_DATE and end.date() <= LATEST_DATE + timedelta(days=2)):
        raise InvalidSearch(
            parameter, f"Dates are searched between {EARLIEST_DATE.year} and {LATEST_DATE.year}."
        )
    return DateRange(prefix, start, end)


def _range_of(parts: dict, zone: tzinfo) -> tuple[datetime, datetime]:
    year = int(parts["year"])
    if parts["month"] is None:
        start = datetime(year, 1, 1)
        end = datetime(year + 1, 1, 1)
    elif parts["day"] is None:
        month = int(parts["month"])
        start = datetime(year, month, 1)
        end = datetime(year + month // 12, month % 12 + 1, 1)
    elif parts["hour"] is None:
        start = datetime(year, int(parts["month"]), int(parts["day"]))
        end = start + timedelta(days=1)
    else:
        second = int(parts["second"] or 0)
        fraction = parts["fraction"]
        micro = int((fraction or "0").ljust(6, "0")[:6])
        start = datetime(
            year,
            int(parts["month"]),
            int(parts["day"]),
            int(parts["hour"]),
            int(parts["minute"]),
            second,
            micro,
        )
        # As precise as written: to the minute, the second, or the fraction given.
        if parts["second"] is None:
            end = start + timedelta(minutes=1)
        elif fraction is None:
            end = start + timedelta(seconds=1)
        else:
            end = start + timedelta(microseconds=max(1, 10 ** (6 - min(len(fraction), 6))))
    offset = parts["offset"]
    if offset is not None:
        given = UTC if offset == "Z" else datetime.strptime(offset, "%z").tzinfo
        return start.replace(tzinfo=given).astimezone(UTC), end.replace(tzinfo=given).astimezone(
            UTC
        )
    return start.replace(tzinfo=zone).astimezone(UTC), end.replace(tzinfo=zone).astimezone(UTC)


def _compare(column, prefix: str, start, end) -> ColumnElement:
    if prefix == "eq":
        return and_(column >= start, column < end)
    if prefix == "ne":
        return or_(column < start, column >= end)
    if prefix == "lt":
        return column < start
    if prefix == "le":
        return column < end
    if prefix == "gt":
        return column >= end
    return column >= start  # ge


def date_condition(criterion: Criterion, column, *, zone: tzinfo = UTC, day_column=False):
    """The condition a date parameter puts on ``column`` (an instant column, or a date
    column with ``day_column=True``): values are OR-ed; rows without a date never match."""
    refuse_modifier(criterion)
    conditions = []
    for value in criterion.values:
        searched = parse_date_value(criterion.name, value, zone)
        if day_column:
            # A stored day is the clinic's day: compare with the days the range covers.
            start = searched.start.astimezone(zone).date()
            last = (searched.end - timedelta(microseconds=1)).astimezone(zone).date()
            conditions.append(
                and_(
                    column.is_not(None),
                    _compare(column, searched.prefix, start, last + timedelta(days=1)),
                )
            )
        else:
            compared = _compare(column, searched.prefix, searched.start, searched.end)
            conditions.append(and_(column.is_not(None), compared))
    return or_(false(), *conditions) if conditions else true()


def date_matches(criterion: Criterion, value: datetime | date | None, zone: tzinfo = UTC) -> bool:
    """Whether a value already read matches a date parameter (for resources built in Python
    from one row, where SQL cannot tell them apart)."""
    if value is None:
        return False
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0), tzinfo=zone)
    for text in criterion.values:
        searched = parse_date_value(criterion.name, text, zone)
        start, end = searched.start, searched.end
        prefix = searched.prefix
        if (
            (prefix == "eq" and start <= value < end)
            or (prefix == "ne" and not start <= value < end)
            or (prefix == "lt" and value < start)
            or (prefix == "le" and value < end)
            or (prefix == "gt" and value >= end)
            or (prefix == "ge" and value >= start)
        ):
            return True
    return False


def parse_token(parameter: str, value: str) -> Token:
    """``system|code`` and its short forms as a ``Token``."""
    text = (value or "").strip()
    if not text:
        raise InvalidSearch(parameter, "A token search needs a value.")
    if "|" not in text:
        return Token(None, text)
    system, _, code = text.partition("|")
    if "|" in code:
        raise InvalidSearch(parameter, f"{value!r} is not system|code.")
    if not system and not code:
        raise InvalidSearch(parameter, "A token search needs a system or a code.")
    return Token(system, code or None)


def tokens(criterion: Criterion, allowed_modifiers: Iterable[str] = ()) -> list[Token]:
    """The tokens of a criterion (its comma-separated values, OR-ed)."""
    refuse_modifier(criterion, allowed_modifiers)
    return [parse_token(criterion.name, value) for value in criterion.values]


def token_condition(
    criterion: Criterion,
    systems: dict[str | None, Callable[[str | None], ColumnElement]],
) -> ColumnElement:
    """A token parameter as SQL: ``systems`` maps each code system this type codes with to a
    function giving the condition for one code of it (None: any code). The key None is the
    type's codes that have no system (plain status words, FHIR's own code systems for
    required bindings, where FHIR search ignores the system). A system this type never
    codes with matches nothing; ``:not`` negates."""
    found = tokens(criterion, ("not",))
    conditions = []
    for token in found:
        if token.system is None:
            # Any system: the code in any of them.
            conditions.append(or_(false(), *(make(token.code) for make in systems.values())))
        elif token.system == "":
            conditions.append(systems[None](token.code) if None in systems else false())
        elif token.system in systems:
            conditions.append(systems[token.system](token.code))
        else:
            conditions.append(false())
    condition = or_(false(), *conditions)
    return ~condition if criterion.modifier == "not" else condition


def code_in(column, mapping: dict[str, object] | None = None):
    """For ``token_condition``: a function matching one code on ``column`` (through
    ``mapping`` from FHIR code to stored value(s), when they differ)."""

    def make(code: str | None) -> ColumnElement:
        if code is None:
            return column.is_not(None)
        if mapping is None:
            return column == code
        stored = mapping.get(code)
        if stored is None:
            return false()
        if isinstance(stored, list | tuple | set | frozenset):
            return column.in_(list(stored))
        if isinstance(stored, ColumnElement):
            return stored
        return column == stored

    return make


def token_matches(criterion: Criterion, codings: list[tuple[str | None, str]]) -> bool:
    """Whether a resource's codings (system, code) match a token parameter (in Python)."""
    found = tokens(criterion, ("not",))
    hit = any(
        (token.system is None or token.system == (system or ""))
        and (token.code is None or token.code == code)
        for token in found
        for system, code in codings
    )
    return not hit if criterion.modifier == "not" else hit


def parse_reference(parameter: str, value: str, target: str) -> int | None:
    """The row id a reference names (``Patient/12``, ``12``, ``https://…/Patient/12``);
    None for an id no row of ours can have (the search then matches nothing, as for an
    unknown id). A reference to another type is refused."""
    text = (value or "").strip()
    if not text:
        raise InvalidSearch(parameter, "A reference search needs a value.")
    pieces = text.rstrip("/").split("/")
    if len(pieces) >= 2:
        kind, ident = pieces[-2], pieces[-1]
        if kind != target:
            raise InvalidSearch(parameter, f"{parameter} refers to a {target}, not a {kind}.")
    else:
        ident = pieces[0]
    return parse_id(ident)


def reference_condition(criterion: Criterion, column, target: str) -> ColumnElement:
    """A reference parameter as SQL on the column holding the target's row id."""
    refuse_modifier(criterion, (target,))  # patient:Patient=12 is the same search
    ids = [parse_reference(criterion.name, value, target) for value in criterion.values]
    ids = [found for found in ids if found is not None]
    return column.in_(ids) if ids else false()


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def string_condition(criterion: Criterion, column) -> ColumnElement:
    """A string parameter: starts with the value, ignoring case (FHIR's default);
    ``:exact`` the whole value, ``:contains`` anywhere."""
    refuse_modifier(criterion, ("exact", "contains"))
    conditions = []
    for value in criterion.values:
        if criterion.modifier == "exact":
            conditions.append(column == value)
            continue
        pattern = escape_like(value.lower())
        pattern = f"%{pattern}%" if criterion.modifier == "contains" else f"{pattern}%"
        conditions.append(func.lower(column).like(pattern, escape="\\"))
    return or_(false(), *conditions) if conditions else true()


def id_values(criterion: Criterion) -> list[str]:
    """The ids an ``_id`` parameter names (comma-separated values, OR-ed)."""
    refuse_modifier(criterion)
    return [value.strip() for value in criterion.values if value.strip()]
