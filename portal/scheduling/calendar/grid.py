"""Laying appointments out on the calendar's time grid (pure layout: no database).

The grid is a table: one row per ``STEP_MINUTES`` of clinic wall-clock time, one column per
provider (day view) or per day (week view). A run of overlapping appointments fills one cell
spanning the rows it covers, so an overbooked pair shows side by side instead of hiding each
other; every other cell is a free slot with a "book here" button.

Rows are wall-clock times. On the fall-back night the repeated hour gets a second set of
rows after the first (labelled with the zone's abbreviation: 01:30 EDT, then 01:30 EST), so
a visit at either 01:30 has a row of its own; a time that does not exist on a column's day
(the spring-forward gap, or the second pass on another day of the week) is an empty cell.

Everything a cell prints is worked out here, once per visit (clinic times, labels, classes,
links): a day of 20 busy providers is thousands of visits, and the template only prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from portal.clinic.clock import day_bounds
from portal.scheduling.models import STATUS_LABELS

STEP_MINUTES = 10
# A visit's card is placed inside its cell in 5-minute steps, by class (the CSP allows no
# style attributes): appt-at-<steps from the cell's top>, appt-len-<steps long>, and for
# visits that overlap, appt-lanes-<n> appt-lane-<i> side by side. The classes are a fixed
# set (portal/static/css/schedule-grid.css): a day has 288 steps, at most MAX_LANES lanes.
PLACE_MINUTES = 5
MAX_STEPS = 24 * 60 // PLACE_MINUTES
MAX_LANES = 6
DAY_FIRST_MINUTE = 7 * 60
DAY_LAST_MINUTE = 19 * 60
DAY_MINUTES = 24 * 60


class Visit(NamedTuple):
    """One appointment as its button shows it (a tuple: the template unpacks it)."""

    id: int
    classes: str
    times: str  # start and end in clinic time, an en dash between
    patient_name: str
    type_name: str
    status: str
    status_label: str
    overbooked: bool


@dataclass(slots=True)
class Cell:
    """What starts at one row of one column: visits, a free slot, or a time that isn't."""

    column: int
    rowspan: int = 1
    visits: list[Visit] = field(default_factory=list)
    classes: str = "slot-free"  # "slot-busy", "slot-free off-hours", "slot-none"
    book_url: str | None = None  # a free slot's booking panel (None: no button)
    label: str = ""  # the free slot button's name


@dataclass(slots=True)
class Row:
    index: int
    minute: int  # wall-clock minutes after local midnight
    fold: int  # 1: the second pass through a repeated hour (fall-back night)
    label: str  # "08:00", or "01:30 EST" in a repeated hour
    classes: str  # "hour" on the hour, "now-row" at the current time
    shows_label: bool  # every half hour
    is_now: bool
    cells: list[Cell] = field(default_factory=list)  # in column order; covered: absent


@dataclass
class Column:
    label: str
    day: date
    # The provider's working intervals that day as (start, end) UTC pairs; None: unknown.
    working: list[tuple[datetime, datetime]] | None = None
    # The booking panel's link for this provider, without the start (None: can't book).
    book_url: str | None = None
    # How a free slot's button ends its name: " with Dr. X" or " on Mon 3 May with Dr. X".
    slot_name: str = ""


@dataclass
class Grid:
    rows: list[Row]
    columns: list[Column]
    now_row: int | None = None
    visit_url: str = ""  # a visit's panel: this and the visit's id


def _place(entry, bounds: tuple[datetime, datetime], zone: ZoneInfo):
    """Where an appointment starts and ends on its column's day as (minute, fold), clipped
    to the day (``bounds``: when it starts and ends, UTC), and its button's contents."""
    local_start = entry.starts_at.astimezone(zone)
    local_end = entry.ends_at.astimezone(zone)
    start = (
        (local_start.hour * 60 + local_start.minute, local_start.fold)
        if entry.starts_at >= bounds[0]
        else (0, 0)
    )
    end = (
        (local_end.hour * 60 + local_end.minute, local_end.fold)
        if entry.ends_at < bounds[1]
        else (DAY_MINUTES, 0)
    )
    status = entry.status
    visit = Visit(
        entry.id,
        f"appt appt-type-{entry.appointment_type_id} appt-status-{status}",
        f"{local_start.hour:02d}:{local_start.minute:02d}\u2013"
        f"{local_end.hour:02d}:{local_end.minute:02d}",
        entry.patient_name,
        entry.type_name,
        status,
        STATUS_LABELS[status],
        entry.overbooked,
    )
    return start, end, visit


def _clock_changes(day: date, zone: ZoneInfo) -> tuple[dict, set[int]]:
    """The day's repeated row minutes (to their two zone names) and missing ones, if any."""
    repeated: dict[int, tuple[str, str]] = {}
    missing: set[int] = set()
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    next_midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    if midnight.utcoffset() == next_midnight.utcoffset():
        return repeated, missing  # no change of the clocks that day
    for minute in range(0, DAY_MINUTES, STEP_MINUTES):
        first = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
        second = first.replace(fold=1)
        if first.utcoffset() > second.utcoffset():  # the clocks went back over it
            repeated[minute] = (first.tzname(), second.tzname())
        elif first.utcoffset() < second.utcoffset():  # the clocks jumped over it
            missing.add(minute)
    return repeated, missing


def _rows(first: int, last: int, repeated: dict[int, tuple[str, str]]) -> list[tuple[int, int]]:
    """Row keys (minute, fold) in time order: when the grid reaches into a repeated hour,
    the whole hour again (fold 1) right after its first pass."""
    again = sorted(repeated)
    shown = [minute for minute in again if first <= minute < last]
    keys: list[tuple[int, int]] = []
    for minute in range(first, last, STEP_MINUTES):
        keys.append((minute, 0))
        if shown and minute == shown[-1]:
            keys.extend((repeat, 1) for repeat in again)
    return keys


def build_grid(
    columns: list[tuple[Column, list]],
    zone: ZoneInfo,
    now: datetime,
    visit_url: str,
) -> Grid:
    """Place each column's appointments (active ones, sorted by start) on the grid.

    ``visit_url``: the appointment panel's link without the id (the id ends it).
    """
    placed_by_column = []
    for column, entries in columns:
        bounds = day_bounds(column.day, zone)
        placed_by_column.append([_place(entry, bounds, zone) for entry in entries])
    first, last = DAY_FIRST_MINUTE, DAY_LAST_MINUTE
    for placed in placed_by_column:
        if placed:
            first = min(first, min(start[0] for start, _, _ in placed))
            last = max(last, max(end[0] for _, end, _ in placed))
    first = first // STEP_MINUTES * STEP_MINUTES
    last = -(-last // STEP_MINUTES) * STEP_MINUTES
    changes = {column.day: _clock_changes(column.day, zone) for column, _ in columns}
    repeated = {}
    for day_repeated, _missing in changes.values():
        repeated.update(day_repeated)
    keys = _rows(first, last, repeated)
    index_of = {key: index for index, key in enumerate(keys)}

    local_now = now.astimezone(zone)
    now_key = (local_now.hour * 60 + local_now.minute) // STEP_MINUTES * STEP_MINUTES
    now_row = None
    if any(column.day == local_now.date() for column, _ in columns):
        now_row = index_of.get((now_key, local_now.fold))
    rows = []
    for index, (minute, fold) in enumerate(keys):
        label = f"{minute // 60:02d}:{minute % 60:02d}"
        if minute in repeated:
            label += " " + repeated[minute][fold]
        classes = "hour" if minute % 60 == 0 else ""
        if index == now_row:
            classes += " now-row"
        rows.append(
            Row(
                index=index,
                minute=minute,
                fold=fold,
                label=label,
                classes=classes.strip(),
                shows_label=minute % 30 == 0,
                is_now=index == now_row,
            )
        )

    def position(at: tuple[int, int]) -> int:
        """Minutes down the grid's axis from its first row."""
        minute, fold = at
        if minute >= last:
            return len(keys) * STEP_MINUTES
        row = index_of.get((minute // STEP_MINUTES * STEP_MINUTES, fold))
        if row is None:  # an instant inside the clocks' jump: none of the day's rows
            row = index_of[(minute // STEP_MINUTES * STEP_MINUTES, 0)]
        return row * STEP_MINUTES + minute % STEP_MINUTES

    instants: dict = {}  # (day, row) -> a free slot's UTC start, and as the link has it
    for number, ((column, _entries), placed) in enumerate(
        zip(columns, placed_by_column, strict=True)
    ):
        day_repeated, day_missing = changes[column.day]
        spans = [(position(start), position(end), visit) for start, end, visit in placed]
        _fill(column, number, spans, rows, zone, day_repeated, day_missing, instants)
    return Grid(
        rows=rows,
        columns=[column for column, _ in columns],
        now_row=now_row,
        visit_url=visit_url,
    )


def _fill(
    column: Column,
    number: int,
    spans: list[tuple[int, int, Visit]],
    rows: list[Row],
    zone: ZoneInfo,
    repeated: dict,
    missing: set[int],
    instants: dict,
) -> None:
    """Give the column a cell in each row it has not covered yet, in row order."""
    spans.sort(key=lambda span: span[0])  # stable: equal starts keep the query's order
    index = 0
    position = 0
    while index < len(rows):
        row = rows[index]
        row_end = (index + 1) * STEP_MINUTES
        group = []
        while position < len(spans) and spans[position][0] < row_end:
            group.append(spans[position])
            position += 1
        if group:
            group_end = max(end for _, end, _ in group)
            while position < len(spans) and spans[position][0] < group_end:
                group.append(spans[position])
                group_end = max(group_end, spans[position][1])
                position += 1
            rowspan = max(
                1, min(len(rows) - index, -(-(group_end - index * STEP_MINUTES) // STEP_MINUTES))
            )
            row.cells.append(
                Cell(
                    column=number,
                    rowspan=rowspan,
                    visits=_placed_cards(group, index * STEP_MINUTES, rowspan),
                    classes="slot-busy",
                )
            )
            index += rowspan
            continue
        exists = row.minute in repeated if row.fold else row.minute not in missing
        row.cells.append(
            _free_cell(column, number, row, zone, instants) if exists else _no_time(number)
        )
        index += 1


def _placed_cards(group: list[tuple[int, int, Visit]], top: int, rowspan: int) -> list[Visit]:
    """The group's visits with their place in the cell (which starts ``top`` minutes down
    the grid and spans ``rowspan`` rows): offset and length in 5-minute steps, and a lane
    each so that overlapping visits stand side by side (the first free lane, by start)."""
    lane_ends: list[int] = []
    lanes = []
    for start, end, _visit in group:
        lane = next((i for i, lane_end in enumerate(lane_ends) if lane_end <= start), None)
        if lane is None:
            lane = len(lane_ends)
            lane_ends.append(end)
        else:
            lane_ends[lane] = end
        lanes.append(lane)
    count = min(len(lane_ends), MAX_LANES)
    room = rowspan * STEP_MINUTES // PLACE_MINUTES
    cards = []
    for (start, end, visit), lane in zip(group, lanes, strict=True):
        at = min(max(0, (start - top) // PLACE_MINUTES), room - 1)
        steps = -(-(end - start) // PLACE_MINUTES)
        steps = max(1, min(steps, room - at, MAX_STEPS))
        lane = min(lane, count - 1)
        placement = f"appt-at-{at} appt-len-{steps} appt-lanes-{count} appt-lane-{lane}"
        cards.append(visit._replace(classes=f"{visit.classes} {placement}"))
    return cards


def _no_time(number: int) -> Cell:
    return Cell(column=number, classes="slot-none")


def _free_cell(column: Column, number: int, row: Row, zone: ZoneInfo, instants: dict) -> Cell:
    key = (column.day, row.index)  # the day view's columns share a day: convert it once
    if key not in instants:
        starts_at = datetime.combine(
            column.day, time(row.minute // 60, row.minute % 60, fold=row.fold), tzinfo=zone
        ).astimezone(UTC)
        instants[key] = (starts_at, f"{starts_at:%Y-%m-%dT%H:%M:%SZ}")
    starts_at, text = instants[key]
    working = None
    if column.working is not None:
        working = any(start <= starts_at < end for start, end in column.working)
    outside = working is False
    return Cell(
        column=number,
        classes="slot-free off-hours" if outside else "slot-free",
        book_url=f"{column.book_url}&starts_at={text}" if column.book_url else None,
        label=f"Book {row.label}{column.slot_name}"
        + (" (outside working hours)" if outside else ""),
    )
