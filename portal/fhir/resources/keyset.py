"""Keyset paging by row id, shared by the resource types whose rows are read in id order.

A page ends at an id; the next starts after it, so rows inserted meanwhile never shift a
page (an offset would repeat or skip rows). The key is the id as text: it says nothing a
client could not read in the page itself.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Select

from portal.extensions import db
from portal.fhir.spec import InvalidSearch
from portal.ids import parse_id

CHUNK = 1000  # rows per read when walking a whole table (export, $everything)


def row_id(fhir_id: str) -> int | None:
    """The row id a one-row resource's FHIR id names, or None when it cannot name one
    (the API answers 404: such an id names nothing here). Only the id as this server
    writes it ("12", not "012" or " 12"), and only within the id columns' range
    (``portal.ids``): beyond it the database would answer an error, not "no row"."""
    value = parse_id(fhir_id)
    return value if value is not None and str(value) == fhir_id else None


def after_id(after: str | None) -> int:
    """The id a page starts after (0: the first page)."""
    if after is None:
        return 0
    value = row_id(after)
    if value is None:
        raise InvalidSearch("_after", "The page key is not one this server gave.")
    return value


def _reader(columns: bool):
    """ORM objects, or with ``columns`` the rows of the statement's columns (Core rows: a
    resource built from them skips the ORM's loading and identity map, most of an export's
    time when it read whole objects)."""
    return db.session.execute if columns else db.session.scalars


def page_of(statement: Select, id_column, after: str | None, count: int, columns=False):
    """Up to ``count`` rows of ``statement`` after the key, and the next page's key."""
    rows = _reader(columns)(
        statement.where(id_column > after_id(after)).order_by(id_column).limit(count + 1)
    ).all()
    more = len(rows) > count
    rows = rows[:count]
    return rows, (str(rows[-1].id) if more and rows else None)


def walk(statement: Select, id_column, columns: bool = False) -> Iterator:
    """Every row of ``statement`` in id order, read ``CHUNK`` at a time."""
    last = 0
    read = _reader(columns)
    while True:
        rows = read(statement.where(id_column > last).order_by(id_column).limit(CHUNK)).all()
        yield from rows
        if len(rows) < CHUNK:
            return
        last = rows[-1].id
