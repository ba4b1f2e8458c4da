"""Queries of the audit report: filters, sorting by any column, keyset pagination, export.

Pages are found by keyset, never by OFFSET: a cursor is the sort value and id of the row at
the edge of a page, and the next page is "rows after (value, id)" in the page's order. The id
breaks ties, so a page boundary inside a run of equal values neither repeats nor skips rows.
NULLs (events with no user, patient or category) sort before every value in ascending order
and after every value in descending order, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import and_, func, literal, or_, select, text, tuple_

from portal.actors import Actor
from portal.audit import services as audit
from portal.audit.models import AuditEvent
from portal.dates import bounded
from portal.extensions import db
from portal.ids import parse_id
from portal.transaction import end_read, use_case

# Events' ids are BIGINT (64 bits): a page link naming a larger one is refused as tampered.
MAX_EVENT_ID = 2**63 - 1
_MAX_EVENT_ID_DIGITS = len(str(MAX_EVENT_ID))

# Report column name -> (model column, may it be NULL?)
SORT_COLUMNS = {
    "time": (AuditEvent.occurred_at, False),
    "user": (AuditEvent.username, True),
    "action": (AuditEvent.action, False),
    "patient": (AuditEvent.patient_id, True),
    "outcome": (AuditEvent.outcome, False),
    "category": (AuditEvent.category, True),
}
DEFAULT_SORT = "time"
CATEGORY = "audit trail"

# What a report row carries (plain rows, not ORM objects: nothing expires on commit).
COLUMNS = tuple(AuditEvent.__table__.c)


@dataclass(frozen=True)
class Filters:
    """What the report is narrowed to; times are UTC, ``ends_before`` is exclusive."""

    starts_at: datetime | None = None
    ends_before: datetime | None = None
    # Someone's events: through their account's id (indexed with the time) when the name is
    # an account's; else by the name the events carry (a failed sign-in of an unknown name).
    user_id: int | None = None
    username: str | None = None
    patient_id: int | None = None
    action: str | None = None
    outcome: str | None = None
    max_id: int | None = None  # a snapshot's upper bound (the export)


@dataclass(frozen=True)
class Cursor:
    """The edge row of a page: its sort value and its id."""

    event_id: int
    value: object = None

    def encode(self) -> str:
        if self.value is None:
            return str(self.event_id)
        value = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        return f"{self.event_id}:{value}"

    @classmethod
    def decode(cls, raw: str, sort: str) -> Cursor:
        """Parse ``id`` or ``id:value``; ValueError when it isn't one."""
        raw_id, colon, value = raw.partition(":")
        # Ids beyond the columns' range would be a database error, not "no such row".
        if not (raw_id.isascii() and raw_id.isdigit()) or len(raw_id) > _MAX_EVENT_ID_DIGITS:
            raise ValueError("bad cursor")
        event_id = int(raw_id)
        if event_id > MAX_EVENT_ID:
            raise ValueError("bad cursor")
        if not colon:
            if not SORT_COLUMNS[sort][1]:
                raise ValueError("bad cursor")
            return cls(event_id, None)
        if sort == "time":
            parsed = bounded(datetime.fromisoformat(value))
            if parsed is None or parsed.tzinfo is None:
                raise ValueError("bad cursor")
            return cls(event_id, parsed)
        if sort == "patient":
            patient_id = parse_id(value)
            if patient_id is None:
                raise ValueError("bad cursor")
            return cls(event_id, patient_id)
        return cls(event_id, value)

    @classmethod
    def of(cls, row, sort: str) -> Cursor:
        return cls(row.id, getattr(row, SORT_COLUMNS[sort][0].key))


@dataclass
class Page:
    rows: list = field(default_factory=list)
    next_cursor: Cursor | None = None
    previous_cursor: Cursor | None = None


def _conditions(filters: Filters) -> list:
    conditions = []
    if filters.starts_at is not None:
        conditions.append(AuditEvent.occurred_at >= filters.starts_at)
    if filters.ends_before is not None:
        conditions.append(AuditEvent.occurred_at < filters.ends_before)
    if filters.user_id is not None:
        conditions.append(AuditEvent.user_id == filters.user_id)
    elif filters.username:
        conditions.append(AuditEvent.username == filters.username)
    if filters.patient_id is not None:
        conditions.append(AuditEvent.patient_id == filters.patient_id)
    if filters.action:
        conditions.append(AuditEvent.action == filters.action)
    if filters.outcome:
        conditions.append(AuditEvent.outcome == filters.outcome)
    if filters.max_id is not None:
        conditions.append(AuditEvent.id <= filters.max_id)
    return conditions


def _order(sort: str, descending: bool) -> list:
    column, nullable = SORT_COLUMNS[sort]
    if descending:
        first = column.desc().nulls_last() if nullable else column.desc()
        return [first, AuditEvent.id.desc()]
    first = column.asc().nulls_first() if nullable else column.asc()
    return [first, AuditEvent.id.asc()]


def _beyond(sort: str, descending: bool, cursor: Cursor):
    """Rows that come after ``cursor`` in the order (sort, descending)."""
    column, nullable = SORT_COLUMNS[sort]
    edge_id = cursor.event_id
    if cursor.value is None:  # only nullable columns have NULL cursors
        if descending:  # NULLs are last: only NULLs with a smaller id follow
            return and_(column.is_(None), AuditEvent.id < edge_id)
        return or_(and_(column.is_(None), AuditEvent.id > edge_id), column.is_not(None))
    # Bound with the column's own type, so times are stored-format UTC on SQLite too.
    edge = tuple_(
        literal(cursor.value, type_=column.type), literal(edge_id, type_=AuditEvent.id.type)
    )
    if descending:
        condition = tuple_(column, AuditEvent.id) < edge
        return or_(condition, column.is_(None)) if nullable else condition
    return tuple_(column, AuditEvent.id) > edge


def _query(filters: Filters, sort: str, descending: bool, after: Cursor | None, limit: int):
    query = select(*COLUMNS).where(*_conditions(filters))
    if after is not None:
        query = query.where(_beyond(sort, descending, after))
    return query.order_by(*_order(sort, descending)).limit(limit)


def fetch_page(
    filters: Filters,
    *,
    sort: str = DEFAULT_SORT,
    descending: bool = True,
    after: Cursor | None = None,
    before: Cursor | None = None,
    limit: int = 50,
) -> Page:
    """One page of events, with cursors for the pages either side (None at the ends)."""
    if before is not None:
        # Walk backwards from the first row of the page we came from, then flip the rows.
        rows = list(db.session.execute(_query(filters, sort, not descending, before, limit + 1)))
        more_before = len(rows) > limit
        rows = rows[:limit][::-1]
        return Page(
            rows=rows,
            next_cursor=Cursor.of(rows[-1], sort) if rows else before,
            previous_cursor=Cursor.of(rows[0], sort) if rows and more_before else None,
        )
    rows = list(db.session.execute(_query(filters, sort, descending, after, limit + 1)))
    more_after = len(rows) > limit
    rows = rows[:limit]
    return Page(
        rows=rows,
        next_cursor=Cursor.of(rows[-1], sort) if rows and more_after else None,
        previous_cursor=Cursor.of(rows[0], sort) if rows and after is not None else None,
    )


def view_page(
    actor: Actor,
    filters: Filters,
    *,
    sort: str = DEFAULT_SORT,
    descending: bool = True,
    after: Cursor | None = None,
    before: Cursor | None = None,
    limit: int = 50,
    description: str,
) -> Page:
    """One page of the report, its reading recorded in the trail (``description`` says
    which filters and which page: no patient data)."""
    with use_case():
        page = fetch_page(
            filters, sort=sort, descending=descending, after=after, before=before, limit=limit
        )
        audit.record(
            actor,
            "audit.report_view",
            category=CATEGORY,
            object_type="audit_events",
            patient_id=filters.patient_id,
            detail=description,
        )
    return page


def start_export(actor: Actor, filters: Filters, description: str) -> Filters:
    """Record an export of the events matching ``filters`` and return the filters of its
    snapshot: rows written while the file downloads (this export's own event too) are left
    out, so the file is exactly the trail as it stood when asked for."""
    with use_case():
        snapshot = replace(filters, max_id=newest_event_id() or 0)
        audit.record(
            actor,
            "audit.export",
            category=CATEGORY,
            object_type="audit_events",
            patient_id=filters.patient_id,
            detail=description,
        )
    return snapshot


def iter_rows(
    filters: Filters, *, sort: str = DEFAULT_SORT, descending: bool = True, batch_size: int = 1000
) -> Iterator:
    """Every matching event, in order, fetched a batch at a time by keyset.

    Each batch is read in a short transaction of its own, so a long download never pins
    one snapshot (SQLite's WAL could not be checkpointed past it; PostgreSQL would keep
    the old row versions).
    """
    cursor = None
    while True:
        rows = list(db.session.execute(_query(filters, sort, descending, cursor, batch_size)))
        end_read()
        yield from rows
        if len(rows) < batch_size:
            return
        cursor = Cursor.of(rows[-1], sort)


def newest_event_id() -> int | None:
    return db.session.scalar(select(func.max(AuditEvent.id)))


# Distinct actions by a loose index scan over ix_audit_events_action: one index probe per
# action instead of reading the whole trail (neither SQLite nor PostgreSQL does this alone).
_ACTIONS_SQL = text(
    """
    WITH RECURSIVE found(action) AS (
        SELECT MIN(action) FROM audit_events
        UNION ALL
        SELECT (SELECT MIN(action) FROM audit_events WHERE action > found.action)
        FROM found WHERE found.action IS NOT NULL
    )
    SELECT action FROM found WHERE action IS NOT NULL
    """
)


def known_actions() -> list[str]:
    """Every action name present in the trail, alphabetically."""
    return [row[0] for row in db.session.execute(_ACTIONS_SQL)]
