"""What the HTTP layer of the FHIR API asks of each resource type.

The API (``views``) speaks HTTP: it parses the query string into ``Criterion`` values,
refuses unknown parameters, pages, bundles, follows ``_include`` and audits. Each resource
type (``resources/``) knows its rows: how to read one, search them with criteria already
split by the HTTP layer, count them, and list one patient's. Bulk export and ``$everything``
read through the same ``ResourceSpec``, so a resource looks the same from every door.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Criterion:
    """One search parameter as it came in: ``date=ge2024-01-01`` is
    ``Criterion("date", None, ["ge2024-01-01"])``; ``code:text=x`` has modifier ``"text"``.
    Repeated parameters are separate criteria (AND); comma-separated values are ``values``
    (OR). Values are raw strings: the resource type parses them (``params``)."""

    name: str
    modifier: str | None
    values: list[str]


class InvalidSearch(ValueError):
    """A search the resource type cannot run (a malformed date, an unknown code system...):
    the API answers 400 with an OperationOutcome naming ``parameter``."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter
        self.message = message


@dataclass
class Page:
    """One page of search results, in a stable order, and the opaque key of the next page
    (None on the last). Keys are keyset positions, so a page is stable under inserts."""

    resources: list[dict]
    next_after: str | None = None
    # Resources of other types the page's resources point at, when a search asked for them
    # (``_include``); filled by the HTTP layer.
    included: list[dict] = field(default_factory=list)


class Gone(LookupError):
    """Raised by ``ResourceSpec.read`` for a resource that was served once and no longer is
    (a lab result replaced by its correction, a statement taken back): the API answers 410
    instead of 404. A type that never removes what it served need not raise it; the
    ``TableSpec`` types raise it from their sources' ``gone`` (docs/ARCHITECTURE.md, "What a
    410 says")."""


class ResourceSpec(Protocol):
    """One FHIR resource type the API serves."""

    type: str
    # Search parameters this type supports beyond ``_id``: name -> FHIR search parameter
    # type ("token", "date", "reference", "string"). The CapabilityStatement lists them.
    search_params: dict[str, str]
    # ``_include`` values this type resolves ("Encounter:patient" -> target type).
    includes: dict[str, str]

    def read(self, fhir_id: str) -> dict | None:
        """The resource with this id, or None (unknown, or not shown through the API)."""

    def search(self, criteria: list[Criterion], after: str | None, count: int) -> Page:
        """Up to ``count`` resources matching every criterion, after the keyset ``after``.
        Raises ``InvalidSearch`` for a value it cannot use (a malformed ``after`` too).

        ``_id`` reaches ``search`` as a criterion only beside other criteria; a search by
        ``_id`` alone is answered by the HTTP layer through ``read``."""

    def count(self, criteria: list[Criterion]) -> int:
        """How many resources match (``_summary=count``)."""

    def for_patient(
        self, patient_id: int, since: datetime | None = None, care: Sequence[str] = ()
    ) -> Iterator[dict]:
        """Every resource of one patient (``$everything``, patient-level export), in chunks
        read by keyset so a long record is never held whole. ``since``: only those changed
        since then (``_since``); ``care``: date search values ("ge2024-01-01",
        "le2024-12-31") the date of the care they record must meet (``start``, ``end``)."""

    def stream(self, since: datetime | None, patient_ids: list[int] | None) -> Iterator[dict]:
        """Every resource (changed since ``since``), for bulk export: read in keyset chunks,
        never all at once."""
