"""The FHIR API's use cases: reading resources for an API client, and the audit of it.

Every response that carries a patient's data records one event per patient in the audit
trail, in one short use case per request, before the response is sent: the same rule as a
page view. Reads happen first, outside the use case (a search page, a whole record), so
the big read holds no write lock; the events then name the client (the actor) and the
resource types it received, never the data (ids and type names only).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import islice

from werkzeug.exceptions import NotFound

from portal.actors import Actor
from portal.audit.services import record, record_denied, record_many
from portal.fhir.catalog import DIRECTORY_TYPES, spec_for
from portal.fhir.spec import Criterion, Gone, InvalidSearch, Page
from portal.transaction import use_case

CATEGORY = "fhir"


def patient_ids_of(resource: dict) -> set[int]:
    """The patients a resource carries data of: a Patient's own id, else every patient it
    points at, wherever the reference stands (``subject``, ``patient``, an Appointment's
    ``participant.actor``...): an event too many is better than a read left unrecorded."""
    if resource.get("resourceType") == "Patient":
        value = resource.get("id", "")
        return {int(value)} if value.isdigit() else set()
    return {int(value) for value in references_to(resource, "Patient") if value.isdigit()}


def _events(resources: Iterable[dict]) -> dict[int, set[str]]:
    types: dict[int, set[str]] = defaultdict(set)
    for resource in resources:
        for patient_id in patient_ids_of(resource):
            types[patient_id].add(resource["resourceType"])
    return types


def record_patient_reads(actor: Actor, action: str, resources: Iterable[dict]) -> None:
    """One audit event per patient whose data ``resources`` hold, in one use case."""
    by_patient = _events(resources)
    if not by_patient:
        return
    entries = [
        {
            "patient_id": patient_id,
            "object_type": "fhir",
            "detail": "types=" + ",".join(sorted(types)),
        }
        for patient_id, types in sorted(by_patient.items())
    ]
    with use_case():
        record_many(actor, action, entries, category=CATEGORY)


def read_resource(actor: Actor, resource_type: str, fhir_id: str) -> dict:
    """One resource, audited when it is patient data. NotFound for an unknown id; the
    spec's ``Gone`` passes through (410)."""
    resource = spec_for(resource_type).read(fhir_id)
    if resource is None:
        raise NotFound()
    record_patient_reads(actor, "fhir.read", [resource])
    return resource


def search(
    actor: Actor, resource_type: str, criteria: list[Criterion], after: str | None, count: int
) -> Page:
    """One page of a search (``_id`` alone answered by reads), not yet audited: the
    caller adds what ``_include`` asks for, then ``record_patient_reads`` for all of it."""
    spec = spec_for(resource_type)
    if criteria and all(criterion.name == "_id" for criterion in criteria):
        return _by_id(spec, criteria, after, count)
    return spec.search(criteria, after, count)


def _by_id(spec, criteria: list[Criterion], after: str | None, count: int) -> Page:
    # Several "_id" criteria are ANDed: the ids every one of them names.
    wanted = None
    for criterion in criteria:
        if criterion.modifier is not None:
            raise InvalidSearch("_id", f"Modifier :{criterion.modifier} is not supported.")
        ids = list(dict.fromkeys(criterion.values))
        wanted = ids if wanted is None else [i for i in wanted if i in ids]
    resources = []
    for fhir_id in wanted:
        try:
            resource = spec.read(fhir_id)
        except Gone:  # a search does not list what is gone
            resource = None
        if resource is not None:
            resources.append(resource)
    # A short list, read whole: "after" is the position in it.
    start = int(after) if after and after.isdigit() else 0
    page = resources[start : start + count]
    more = start + count < len(resources)
    return Page(page, str(start + count) if more else None)


def count(actor: Actor, resource_type: str, criteria: list[Criterion]) -> int:
    """How many resources match (``_summary=count``). A count of patient data says
    whether someone is in the registry, so it is audited too, without a patient."""
    total = spec_for(resource_type).count(criteria)
    if resource_type not in DIRECTORY_TYPES:
        with use_case():
            record(
                actor,
                "fhir.count",
                object_type="fhir",
                object_id=resource_type,
                category=CATEGORY,
                detail=f"params={','.join(sorted({c.name for c in criteria}))}"[:200],
            )
    return total


def everything(
    actor: Actor,
    patient_id: int,
    may_read: Callable[[str], bool],
    types: Iterable[str],
    since: datetime | None = None,
    care: Sequence[str] = (),
) -> tuple[dict, Iterator[dict]]:
    """A patient's whole record: the Patient, and a generator of every resource of
    ``types`` the client may read, by type, in lists (chunks) read as they are sent. ``since`` and
    ``care`` narrow the record (``ResourceSpec.for_patient``); the Patient is always sent,
    as the subject the rest is about.

    The event is recorded before anything is sent (nothing leaves unaudited); NotFound
    for an unknown patient.
    """
    patient = spec_for("Patient").read(str(patient_id))
    if patient is None:
        raise NotFound()
    readable = [t for t in types if t not in DIRECTORY_TYPES | {"Patient"} and may_read(t)]
    with use_case():
        record(
            actor,
            "fhir.everything",
            patient_id=patient_id,
            object_type="fhir",
            category=CATEGORY,
            detail="types=" + ",".join(sorted(["Patient", *readable])),
        )

    def rest() -> Iterator[list[dict]]:
        for resource_type in readable:
            spec = spec_for(resource_type)
            chunks = getattr(spec, "for_patient_chunks", None)
            if chunks is not None:
                yield from chunks(patient_id, since, care)
                continue
            resources = iter(spec.for_patient(patient_id, since, care))
            while chunk := list(islice(resources, EVERYTHING_CHUNK)):
                yield chunk

    return patient, rest()


# Resources per chunk of ``everything`` from a type that reads one resource at a time.
EVERYTHING_CHUNK = 1000


def record_scope_refused(actor: Actor, endpoint: str, resource_type: str) -> None:
    """A client asked for a type its token's scopes do not cover: recorded as any refused
    access is (``access.denied``, naming the scope it lacked)."""
    record_denied(actor, endpoint, f"scope system/{resource_type}.read")


def included_resources(
    includes: list[tuple[str, str]], resources: list[dict], may_read: Callable[[str], bool]
) -> list[dict]:
    """The resources ``_include`` asks for that the page's resources point at (each once;
    only types the token covers: the others are left out, not refused)."""
    found, seen = [], set()
    for _, target in includes:
        if not may_read(target):
            continue
        for resource in resources:
            for fhir_id in references_to(resource, target):
                if (target, fhir_id) in seen:
                    continue
                seen.add((target, fhir_id))
                try:
                    included = spec_for(target).read(fhir_id)
                except Gone:
                    included = None
                if included is not None:
                    found.append(included)
    return found


def references_to(value, target: str) -> list[str]:
    """The ids of every ``{"reference": "<target>/<id>"}`` anywhere in a resource."""
    return [fhir_id for kind, fhir_id in all_references(value) if kind == target]


def all_references(value) -> list[tuple[str, str]]:
    """Every ``{"reference": "<type>/<id>"}`` anywhere in a resource, as (type, id), in
    document order.

    One walk for every type, by plain recursion into dicts and lists only: ``$everything``
    asks this of each of tens of thousands of resources, and a walk per directory type
    through nested generators was most of its time (a stack of pending items measured
    three times slower than this; resources are a few levels deep).
    """
    found: list[tuple[str, str]] = []
    _walk(value, found)
    return found


def _walk(value, found: list[tuple[str, str]]) -> None:
    if type(value) is dict:
        reference = value.get("reference")
        if type(reference) is str:
            kind, _, fhir_id = reference.partition("/")
            if fhir_id:
                found.append((kind, fhir_id))
        children = value.values()
    elif type(value) is list:
        children = value
    else:
        return
    for child in children:
        kind = type(child)
        if kind is dict or kind is list:
            _walk(child, found)


# A reference to a directory type in compact JSON (orjson's: no spaces). Inside a JSON
# string a quote is escaped, so this only ever matches where a reference stands.
_DIRECTORY_REFERENCE = re.compile(
    rb'"reference":"(' + "|".join(sorted(DIRECTORY_TYPES)).encode() + rb')/([A-Za-z0-9\-.]{1,64})"'
)


def collect_directory_references(serialized: bytes, into: dict[str, set[str]]) -> None:
    """Add the directory resources (practitioners, locations...) that resources point at,
    read from their compact JSON as sent: one regular expression over a chunk of entries
    (in C), where walking every resource's elements in Python, or testing each resource's
    JSON apart, was a third of a long record's time."""
    for kind, fhir_id in _DIRECTORY_REFERENCE.findall(serialized):
        into.setdefault(kind.decode(), set()).add(fhir_id.decode())


def directory_resources(
    referenced: dict[str, set[str]], may_read: Callable[[str], bool]
) -> list[dict]:
    """The directory resources a record pointed at, of the types the client may read."""
    found = []
    for resource_type, ids in sorted(referenced.items()):
        if not may_read(resource_type):
            continue
        for fhir_id in sorted(ids):
            resource = spec_for(resource_type).read(fhir_id)
            if resource is not None:
                found.append(resource)
    return found
