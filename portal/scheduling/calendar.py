"""Laying appointments out on the calendar's time grid (pure layout: no database).

The grid is a table: one row per ``STEP_MINUTES`` of clinic wall-clock time, one column per
provider (day view) or per day (week view). A run of overlapping appointments fills one cell
spanning the rows it covers, so an overbooked pair shows side by side instead of hiding each
other; every other cell is a free slot with a "book here" button.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

STEP_MINUTES = 10
DAY_FIRST_MINUTE = 7 * 60
DAY_LAST_MINUTE = 19 * 60


@dataclass
class Cell:
    row: int
    rowspan: int = 1
    starts_at: datetime | None = None  # UTC start of a free slot
    appointments: list = field(default_factory=list)
    working: bool | None = None  # a free slot inside the provider's hours (None: unknown)

    @property
    def is_free(self) -> bool:
        return not self.appointments


@dataclass
class Column:
    key: str
    label: str
    day: date
    provider_id: int
    provider_name: str
    cells: dict[int, Cell] = field(default_factory=dict)  # row -> cell; absent: covered
    # The provider's working intervals that day as (start, end) UTC pairs; None: unknown.
    working: list[tuple[datetime, datetime]] | None = None


@dataclass
class Row:
    index: int
    minute: int  # minutes after local midnight

    @property
    def label(self) -> str:
        return f"{self.minute // 60:02d}:{self.minute % 60:02d}"

    @property
    def on_the_hour(self) -> bool:
        return self.minute % 60 == 0


@dataclass
class Grid:
    rows: list[Row]
    columns: list[Column]
    now_row: int | None = None


def _local_minutes(value: datetime, day: date, zone: ZoneInfo) -> int:
    """Minutes from ``day``'s local midnight to ``value`` (negative before, >1440 after)."""
    local = value.astimezone(zone)
    return (local.date() - day).days * 1440 + local.hour * 60 + local.minute


def build_grid(
    columns: list[tuple[Column, list]],
    zone: ZoneInfo,
    now: datetime,
) -> Grid:
    """Place each column's appointments (active ones, sorted by start) on the grid."""
    first, last = DAY_FIRST_MINUTE, DAY_LAST_MINUTE
    for column, appointments in columns:
        for appointment in appointments:
            start = _local_minutes(appointment.starts_at, column.day, zone)
            end = _local_minutes(appointment.ends_at, column.day, zone)
            first = max(0, min(first, start // STEP_MINUTES * STEP_MINUTES))
            last = min(1440, max(last, math.ceil(end / STEP_MINUTES) * STEP_MINUTES))
    rows = [Row(index, minute) for index, minute in enumerate(range(first, last, STEP_MINUTES))]
    for column, appointments in columns:
        _fill(column, appointments, rows, zone)
    now_row = None
    local_now = now.astimezone(zone)
    if any(column.day == local_now.date() for column, _ in columns):
        minute = local_now.hour * 60 + local_now.minute
        if first <= minute < last:
            now_row = (minute - first) // STEP_MINUTES
    return Grid(rows=rows, columns=[column for column, _ in columns], now_row=now_row)


def _fill(column: Column, appointments: list, rows: list[Row], zone: ZoneInfo) -> None:
    spans = [
        (
            _local_minutes(a.starts_at, column.day, zone),
            _local_minutes(a.ends_at, column.day, zone),
            a,
        )
        for a in sorted(appointments, key=lambda a: (a.starts_at, a.id))
    ]
    first = rows[0].minute if rows else 0
    index = 0
    position = 0
    while index < len(rows):
        row_start = rows[index].minute
        row_end = row_start + STEP_MINUTES
        group = []
        while position < len(spans) and max(spans[position][0], first) < row_end:
            group.append(spans[position])
            position += 1
        if group:
            group_end = max(end for _, end, _ in group)
            while position < len(spans) and spans[position][0] < group_end:
                group.append(spans[position])
                group_end = max(group_end, spans[position][1])
                position += 1
            rowspan = max(
                1, min(len(rows) - index, math.ceil((group_end - row_start) / STEP_MINUTES))
            )
            column.cells[index] = Cell(
                row=index, rowspan=rowspan, appointments=[a for _, _, a in group]
            )
            index += rowspan
        else:
            starts_at = datetime.combine(
                column.day, time(row_start // 60, row_start % 60), tzinfo=zone
            ).astimezone(UTC)
            working = None
            if column.working is not None:
                working = any(start <= starts_at < end for start, end in column.working)
            column.cells[index] = Cell(row=index, starts_at=starts_at, working=working)
            index += 1
