"""Reading many rows quickly, as the database driver returns them: the calendar of a busy day
and the open-slot search read thousands to tens of thousands of rows per request.

SQLAlchemy's result rows cost over a microsecond each (more with typed columns such as
``UTCDateTime``), several times what the database driver takes to read them. Where a page
reads that many, it takes the driver's own tuples and converts only what it uses.
"""

from __future__ import annotations

from datetime import UTC, datetime

from portal.extensions import db


def driver_rows(statement) -> list[tuple]:
    """The driver's tuples for ``statement``, run as usual in the session's transaction
    (same SQL, parameters and events): no type conversion, so times come as the driver
    gives them (see ``driver_utc``)."""
    result = db.session.connection().execute(statement)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def driver_utc(value: datetime | str) -> datetime:
    """A stored time as the driver returned it, as an aware UTC datetime: PostgreSQL's
    driver gives an aware datetime, SQLite gives the text it stores, in UTC."""
    if isinstance(value, str):
        # Parsed with its offset: several times quicker than parsing, then replace(tzinfo=).
        return datetime.fromisoformat(value + "+00:00")
    return value if value.tzinfo is UTC else value.astimezone(UTC)
