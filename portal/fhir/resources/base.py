"""What the clinical resource types share: read, search, count, a patient's record and bulk
export over one or more tables, by keyset, in chunks.

A resource type (``TableSpec``) reads from one or more ``Source``s: Condition from the
problem list and from the visits' diagnoses, MedicationRequest from the medication list and
from prescriptions, AllergyIntolerance from the allergies and the "no known allergies"
statements. A source selects plain columns (no ORM objects: export must reach tens of
thousands of resources a second) in the order of its integer key, and turns a chunk of rows
into resources at once, loading what the rows point at in one query per chunk, never one
per row.

Paging is by keyset: a page ends at a position ``<source><key>`` ("p812", "d40.17",
"v77.3"), and the next page starts after it, so rows inserted meanwhile never shift a page
(they appear on a later page if their key is larger). A source whose row gives several
resources (a vital signs set) keys each by (row id, part number), so a page may end in the
middle of a row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from itertools import islice

from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from portal.clinic.clock import clinic_zone
from portal.clinic.models import Clinic
from portal.extensions import db
from portal.fhir import params
from portal.fhir.spec import Criterion, Gone, InvalidSearch, Page
from portal.ids import MAX_ID

# Rows read per query by $everything and export: large enough that the per-query cost
# vanishes, small enough that memory stays flat whatever the record's size.
CHUNK_ROWS = 1000
# Rows built into resources at a time by ``chunks``: the resources of a few rows live
# together until they are serialised, so few of them outlive a young collection (building
# a thousand rows' at once promoted tens of thousands of objects a chunk, and the full
# collections that followed scanned every object of the process: a third of the time).
BUILD_ROWS = 50
# Patients per query when an export names patients (an IN list of this many ids).
PATIENTS_PER_QUERY = 500
_AFTER = re.compile(r"^([a-z]+)(\d{1,10}(?:\.\d{1,10}){0,3})$")

Key = tuple[int, ...]


def reference(resource_type: str, row_id: int | str | None, display: str | None = None):
    """A FHIR Reference, or None for a missing id."""
    if row_id is None:
        return None
    found = {"reference": f"{resource_type}/{row_id}"}
    if display:
        found["display"] = display
    return found


def coding(system: str, code: str, display: str | None = None) -> dict:
    found = {"system": system, "code": code}
    if display:
        found["display"] = display
    return found


def concept(system: str, code: str, display: str | None = None, text: str | None = None):
    found = {"coding": [coding(system, code, display)]}
    if text:
        found["text"] = text
    return found


def instant(value: datetime | None) -> str | None:
    """A stored UTC time as FHIR's dateTime/instant (to the second, with its offset)."""
    if value is None:
        return None
    return value.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def prune(resource: dict) -> dict:
    """The resource without empty elements (FHIR forbids empty strings, lists and objects)."""
    return {key: value for key, value in resource.items() if value not in (None, "", [], {})}


class Source:
    """One table (or join) a resource type reads from.

    Subclasses set the columns and say how to read criteria; ``build`` turns a chunk of rows
    into (key, resource) pairs in key order.
    """

    # A short lower-case name, unique within its resource type: the first part of a
    # keyset position.
    name: str
    # Integer columns that order the rows and make the keyset.
    key_columns: tuple
    # The column holding the patient's id. (Read through the class: an ORM attribute read
    # through an instance of a class it is not mapped on is refused.)
    patient_column: ColumnElement
    # When a row last changed (bulk export's _since).
    changed_column: ColumnElement
    # A source whose rows give several resources each keys them (row key..., part number)
    # and sets this True; ``scan`` reads such a position's row again and skips its earlier
    # parts.
    parts_per_row = False

    @property
    def position_width(self) -> int:
        """How many numbers a keyset position of this source holds."""
        return len(self.key_columns) + (1 if self.parts_per_row else 0)

    def changed_since(self, since: datetime) -> ColumnElement:
        """The rows whose resources may have changed since ``since`` (bulk export's
        ``_since``): by default, the row's own change time."""
        return type(self).changed_column >= since

    def select(self) -> Select:
        """The rows this source serves, with every column ``build`` reads."""
        raise NotImplementedError

    def condition(self, criterion: Criterion, zone: tzinfo) -> ColumnElement:
        """The SQL condition one search parameter puts on this source's rows."""
        raise InvalidSearch(criterion.name, f"{criterion.name} is not supported here.")

    def keep(self, criteria: Sequence[Criterion], resource: dict, zone: tzinfo) -> bool:
        """Whether a built resource matches what SQL could not tell (one part of a row)."""
        return True

    def id_condition(self, fhir_id: str) -> ColumnElement | None:
        """The rows that may give the resource with this id, or None when the id cannot be
        one of this source's."""
        return None

    def gone(self, fhir_id: str) -> Select | None:
        """A select finding the row that once gave the resource ``fhir_id`` and no longer
        does (a lab result a correction replaced, a "no known allergies" statement an
        allergy took back), or None when this source never withdraws what it served or
        keeps nothing to tell. The API then answers 410 instead of 404 (``TableSpec.read``;
        docs/ARCHITECTURE.md, "What a 410 says"). Only asked after ``read`` found nothing,
        and only of rows of this type: a 410 must say nothing a token for this type could
        not have read while the resource was served."""
        return None

    def build(self, rows: Sequence) -> list[tuple[Key, dict]]:
        raise NotImplementedError

    def count(self, conditions: list[ColumnElement], criteria: Sequence[Criterion]) -> int:
        statement = self.select().where(*conditions).order_by(None)
        return db.session.scalar(select(func.count()).select_from(statement.subquery()))

    def scan(
        self,
        conditions: list[ColumnElement],
        after: Key | None,
        chunk: int,
        criteria: Sequence[Criterion] = (),
        zone: tzinfo | None = None,
    ) -> Iterator[tuple[Key, dict]]:
        """The matching resources after ``after``, in key order, read ``chunk`` rows at a
        time."""
        width = len(self.key_columns)
        row_after = after[:width] if after else None
        # A position inside a row (a part of it): that row is read again, its earlier parts
        # skipped.
        inclusive = bool(after) and len(after) > width
        while True:
            statement = self.select().where(*conditions)
            if row_after is not None:
                statement = statement.where(_keyset(self.key_columns, row_after, inclusive))
            rows = db.session.execute(statement.order_by(*self.key_columns).limit(chunk)).all()
            if not rows:
                return
            for key, resource in self.build(rows):
                if after is not None and key <= after:
                    continue
                if criteria and not self.keep(criteria, resource, zone):
                    continue
                yield key, resource
            if len(rows) < chunk:
                return
            last = rows[-1]
            row_after = tuple(last._mapping[column.key] for column in self.key_columns)
            inclusive = False
            after = None

    def chunks(self, conditions: list[ColumnElement], chunk: int) -> Iterator[list[dict]]:
        """Every matching resource, in key order, as one list per ``chunk`` rows read (by
        keyset, as ``scan``, without its per-resource position checks)."""
        row_after = None
        while True:
            statement = self.select().where(*conditions)
            if row_after is not None:
                statement = statement.where(_keyset(self.key_columns, row_after, False))
            rows = db.session.execute(statement.order_by(*self.key_columns).limit(chunk)).all()
            if not rows:
                return
            for start in range(0, len(rows), BUILD_ROWS):
                yield [resource for _key, resource in self.build(rows[start : start + BUILD_ROWS])]
            if len(rows) < chunk:
                return
            last = rows[-1]
            row_after = tuple(last._mapping[column.key] for column in self.key_columns)


def _keyset(columns: tuple, values: Key, inclusive: bool) -> ColumnElement:
    if len(columns) == 1:
        return columns[0] >= values[0] if inclusive else columns[0] > values[0]
    row = tuple_(*columns)
    return row >= tuple_(*values) if inclusive else row > tuple_(*values)


class TableSpec:
    """A ``ResourceSpec`` (portal/fhir/spec.py) over one or more ``Source``s, read in order."""

    type: str
    search_params: dict[str, str]
    includes: dict[str, str] = {}
    sources: tuple[Source, ...]
    # Parameters naming the patient (patient, subject): the one kind of reference every
    # source reads the same way.
    patient_params = ("patient", "subject")
    # The date search parameter that says when the care a resource records was given:
    # ``$everything``'s ``start`` and ``end`` read it (None: the type has no such date and
    # is sent whatever the range).
    care_date: str | None = "date"

    def __init__(self) -> None:
        self._by_name = {source.name: index for index, source in enumerate(self.sources)}

    # -- the contract -------------------------------------------------------------------

    def read(self, fhir_id: str) -> dict | None:
        for source in self.sources:
            condition = source.id_condition(fhir_id)
            if condition is None:
                continue
            for _key, resource in source.scan([condition], None, CHUNK_ROWS):
                if resource["id"] == fhir_id:
                    return resource
        for source in self.sources:
            withdrawn = source.gone(fhir_id)
            if withdrawn is not None and db.session.execute(withdrawn.limit(1)).first():
                raise Gone(f"{self.type}/{fhir_id}")
        return None

    def search(self, criteria: list[Criterion], after: str | None, count: int) -> Page:
        if count <= 0:
            # _count=0 asks for no resources (a total, at most): still check the criteria.
            self._parse_position(after)
            zone = self._zone_for(criteria)
            for source in self.sources:
                self._conditions(source, criteria, zone)
            return Page([])
        found = list(islice(self._matching(criteria, after, count + 1), count + 1))
        if len(found) > count:
            last_index, last_key, _resource = found[count - 1]
            return Page(
                [resource for _i, _k, resource in found[:count]],
                self._position(last_index, last_key),
            )
        return Page([resource for _i, _k, resource in found])

    def count(self, criteria: list[Criterion]) -> int:
        zone = self._zone_for(criteria)
        total = 0
        for source in self.sources:
            conditions = self._conditions(source, criteria, zone)
            if conditions is not None:
                total += source.count(conditions, criteria)
        return total

    def for_patient(
        self, patient_id: int, since: datetime | None = None, care: Sequence[str] = ()
    ) -> Iterator[dict]:
        for chunk in self.for_patient_chunks(patient_id, since, care):
            yield from chunk

    def for_patient_chunks(
        self, patient_id: int, since: datetime | None = None, care: Sequence[str] = ()
    ) -> Iterator[list[dict]]:
        """``for_patient`` a chunk of rows' resources at a time: ``$everything`` serialises
        a chunk in one call, where a generator step per resource through every layer was a
        good part of a long record's time."""
        zone = clinic_zone() if care and self.care_date else UTC
        for source in self.sources:
            conditions = [type(source).patient_column == patient_id]
            if since is not None:
                conditions.append(source.changed_since(since))
            if self.care_date:
                # ``start`` / ``end`` as the type's own date search reads them ("ge2024",
                # "le2024-06"): the same columns, the same clinic days, no second reading.
                conditions += [
                    source.condition(Criterion(self.care_date, None, [value]), zone)
                    for value in care
                ]
            yield from source.chunks(conditions, CHUNK_ROWS)

    def stream(self, since: datetime | None, patient_ids: list[int] | None) -> Iterator[dict]:
        for source in self.sources:
            changed = [source.changed_since(since)] if since is not None else []
            if patient_ids is None:
                for _key, resource in source.scan(changed, None, CHUNK_ROWS):
                    yield resource
                continue
            for start in range(0, len(patient_ids), PATIENTS_PER_QUERY):
                group = patient_ids[start : start + PATIENTS_PER_QUERY]
                conditions = [*changed, type(source).patient_column.in_(group)]
                for _key, resource in source.scan(conditions, None, CHUNK_ROWS):
                    yield resource

    # -- the work -----------------------------------------------------------------------

    def _matching(self, criteria, after, limit) -> Iterator[tuple[int, Key, dict]]:
        zone = self._zone_for(criteria)
        start_index, start_key = self._parse_position(after)
        for index, source in enumerate(self.sources):
            if index < start_index:
                continue
            conditions = self._conditions(source, criteria, zone)
            if conditions is None:
                continue
            key = start_key if index == start_index else None
            chunk = min(max(limit, 1), CHUNK_ROWS)
            for found_key, resource in source.scan(conditions, key, chunk, criteria, zone):
                yield index, found_key, resource

    def _conditions(self, source, criteria, zone) -> list[ColumnElement] | None:
        """The SQL conditions for ``source``; None when an ``_id`` names none of its rows."""
        conditions = []
        none_of_its_ids = False
        for criterion in criteria:
            if criterion.name == "_id":
                ids = params.id_values(criterion)
                matching = [found for found in map(source.id_condition, ids) if found is not None]
                if matching:
                    conditions.append(matching[0] if len(matching) == 1 else _any(matching))
                else:
                    # Still read the other criteria: a malformed one is refused regardless.
                    none_of_its_ids = True
            elif criterion.name in self.patient_params:
                conditions.append(
                    params.reference_condition(criterion, type(source).patient_column, "Patient")
                )
            elif criterion.name not in self.search_params:
                raise InvalidSearch(
                    criterion.name, f"{self.type} has no search parameter {criterion.name}."
                )
            else:
                conditions.append(source.condition(criterion, zone))
        return None if none_of_its_ids else conditions

    def _zone_for(self, criteria: Sequence[Criterion]) -> tzinfo:
        """The clinic's zone (dates without an offset are the clinic's), read only when a
        date parameter needs it."""
        if any(self.search_params.get(criterion.name) == "date" for criterion in criteria):
            return clinic_zone()
        return UTC

    def _position(self, index: int, key: Key) -> str:
        return self.sources[index].name + ".".join(str(part) for part in key)

    def _parse_position(self, after: str | None) -> tuple[int, Key | None]:
        if not after:
            return 0, None
        match = _AFTER.match(after)
        if match is not None and match.group(1) in self._by_name:
            index = self._by_name[match.group(1)]
            key = tuple(int(part) for part in match.group(2).split("."))
            # Numbers an id column can hold (PostgreSQL refuses a larger one with an error),
            # as many as the source's positions have.
            if len(key) == self.sources[index].position_width and max(key) <= MAX_ID:
                return index, key
        raise InvalidSearch("_after", "This page link is not one this server made.")


def _any(conditions: list[ColumnElement]) -> ColumnElement:
    found = conditions[0]
    for condition in conditions[1:]:
        found = found | condition
    return found


def status_condition(criterion: Criterion, column, mapping: dict | None, fhir_system: str):
    """A status parameter (a required FHIR code system, searched with or without it): FHIR
    code -> the stored value(s), or a SQL condition where the status is computed; None
    where the column holds FHIR's codes already."""
    match = params.code_in(column, mapping)
    return params.token_condition(criterion, {None: match, fhir_system: match})


def clinic_id() -> int | None:
    """The clinic's id (the Organization every resource's care was given by)."""
    return db.session.scalar(select(Clinic.id).order_by(Clinic.id).limit(1))
