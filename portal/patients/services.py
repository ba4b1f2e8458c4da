"""Use cases of the patient registry: each public function that changes a record or shows
one is a use case (``use_case()``), its audit event committed with it.

Every patient-scoped use case loads the patient through ``get_patient_for``: the one place
that answers 404 for an unknown id and, later, for a patient the actor may not see.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select, union
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.extensions import db
from portal.patients.identifiers import is_valid_mrn, new_mrn, normalise_phone, search_key
from portal.patients.models import PATIENT_STATUSES, Patient
from portal.transaction import Refused, use_case

CATEGORY = "demographics"
SEARCH_LIMIT = 20
MIN_QUERY_LENGTH = 2
MAX_QUERY_LENGTH = 100
DUPLICATE_LIMIT = 10
MRN_ATTEMPTS = 10
PHONE_COLUMNS = ("phone_mobile", "phone_home", "phone_work")


class PossibleDuplicates(Refused):
    """Registration stopped: these existing patients may be the same person."""

    status = 409

    def __init__(self, matches: list[Patient]):
        super().__init__(f"{len(matches)} possible matches")
        self.matches = matches


@dataclass(frozen=True)
class DatedRecordKind:
    """A kind of record another domain keeps for a patient, dated (vital signs, an
    immunization), and how to count the patient's records of that kind dated after a day
    (leaving out those marked entered in error)."""

    singular: str  # "set of vital signs"
    plural: str  # "sets of vital signs"
    count_after: Callable[[int, date], int]  # (patient id, day) -> how many
    position: int  # where it comes in the list the user reads


# Filled by the domains that keep such records (charting registers its vital signs and
# immunizations with ``counts_records_dated_after``): the registry must not import them,
# since they build on it.
_DATED_RECORD_KINDS: list[DatedRecordKind] = []


def counts_records_dated_after(singular: str, plural: str, *, position: int) -> Callable:
    """Decorate a function ``(patient_id, day) -> int`` that counts one kind of a patient's
    records dated after ``day``: marking the patient deceased on that day warns of them."""

    def register(count_after: Callable[[int, date], int]):
        _DATED_RECORD_KINDS.append(DatedRecordKind(singular, plural, count_after, position))
        _DATED_RECORD_KINDS.sort(key=lambda kind: kind.position)
        return count_after

    return register


@dataclass(frozen=True)
class RecordsAfter:
    """How many records of each registered kind are dated after a day (kinds with none are
    left out)."""

    counts: tuple[tuple[DatedRecordKind, int], ...] = ()

    @property
    def total(self) -> int:
        return sum(count for _kind, count in self.counts)

    def phrases(self) -> list[str]:
        """ "2 sets of vital signs", "1 immunization": one per kind found."""
        return [f"{n} {kind.singular if n == 1 else kind.plural}" for kind, n in self.counts]


class RecordsAfterDeath(Refused):
    """Marking the patient deceased on this date would leave charted records dated after
    the death: nothing was changed; the user confirms (or corrects the date) first."""

    def __init__(self, found: RecordsAfter):
        super().__init__(f"{found.total} charted records after the date of death", "deceased_date")
        self.found = found


def get_patient_for(actor, patient_id: int) -> Patient:
    """The patient ``actor`` may see, or 404 (unknown ids and, later, hidden records alike)."""
    patient = db.session.get(Patient, patient_id)
    if patient is None:
        raise NotFound()
    return patient


def get_row_of_patient(patient: Patient, model, row_id: int):
    """The row ``row_id`` of ``model`` (any table with a ``patient_id``) if it is
    ``patient``'s, else 404: another patient's id is as unknown as any (object-level check)."""
    row = db.session.get(model, row_id)
    if row is None or row.patient_id != patient.id:
        raise NotFound()
    return row


def view_patient(actor, patient_id: int, *, purpose: str = "chart") -> Patient:
    """Load a patient for display and record that ``actor`` saw their demographics.

    The returned row stays loaded after the commit, for the page to render without a reload.
    """
    with use_case():
        patient = get_patient_for(actor, patient_id)
        audit.record(
            actor, "patient.view", patient=patient, obj=patient, category=CATEGORY, detail=purpose
        )
    return patient


def _with_search_keys(values: dict) -> dict:
    values = dict(values)
    values["given_key"] = search_key(values["given_name"])
    values["family_key"] = search_key(values["family_name"])
    return values


def find_possible_duplicates(
    family_key: str, birth_date: date, phones: list[str | None], exclude_id: int | None = None
) -> list[Patient]:
    """Patients with the same family name and birth date, or sharing any phone number."""
    lookups = [
        select(Patient.id).where(Patient.family_key == family_key, Patient.birth_date == birth_date)
    ]
    numbers = sorted({number for number in phones if number})
    if numbers:
        lookups += [
            select(Patient.id).where(getattr(Patient, column).in_(numbers))
            for column in PHONE_COLUMNS
        ]
    # One index lookup per condition, united (see search_patients for why not OR).
    query = (
        select(Patient)
        .where(Patient.id.in_(union(*lookups)))
        .order_by(Patient.family_key, Patient.given_key, Patient.birth_date)
        .limit(DUPLICATE_LIMIT)
    )
    if exclude_id is not None:
        query = query.where(Patient.id != exclude_id)
    return list(db.session.scalars(query))


def register_patient(
    actor,
    demographics: dict,
    *,
    confirmed_different: bool = False,
    rng: random.Random | None = None,
) -> Patient:
    """Create a patient with a fresh MRN, unless they may already be registered.

    Possible duplicates (same family name + birth date, or a shared phone) stop the
    registration with ``PossibleDuplicates`` until the user confirms a different person;
    showing that list is itself audited (one event per patient shown, committed before the
    refusal is raised). ``rng`` makes MRN generation reproducible (tests); by default MRNs
    come from ``secrets``.
    """
    values = _with_search_keys(demographics)
    patient = None
    with use_case():
        matches = find_possible_duplicates(
            values["family_key"], values["birth_date"], [values.get(c) for c in PHONE_COLUMNS]
        )
        if matches and not confirmed_different:
            audit.record_many(
                actor,
                "patient.duplicate_shown",
                [
                    {
                        "patient_id": match.id,
                        "object_type": Patient.__tablename__,
                        "object_id": match.id,
                        "detail": "listed as a possible match at registration "
                        f"({len(matches)} shown)",
                    }
                    for match in matches
                ],
                category=CATEGORY,
            )
        else:
            patient = Patient(**values, status="active")
            _insert_with_unique_mrn(patient, rng)
            detail = (
                f"registered despite {len(matches)} possible matches (confirmed different person)"
                if matches
                else None
            )
            audit.record(
                actor,
                "patient.create",
                patient=patient,
                obj=patient,
                category=CATEGORY,
                detail=detail,
            )
    if patient is None:
        raise PossibleDuplicates(matches)
    return patient


def _insert_with_unique_mrn(patient: Patient, rng: random.Random | None) -> None:
    """Insert under a savepoint and draw another MRN if the unique index says it is taken."""
    for _attempt in range(MRN_ATTEMPTS):
        patient.mrn = new_mrn(rng)
        savepoint = db.session.begin_nested()
        db.session.add(patient)
        try:
            db.session.flush()
        except IntegrityError:
            savepoint.rollback()
            taken = db.session.scalar(select(Patient.id).where(Patient.mrn == patient.mrn))
            if taken is None:
                raise  # some other constraint failed: not ours to retry
            continue
        savepoint.commit()
        return
    raise RuntimeError(f"no free MRN after {MRN_ATTEMPTS} attempts")


def update_demographics(actor, patient_id: int, demographics: dict) -> list[str]:
    """Apply edited demographics; audit the names (never the values) of changed fields."""
    values = _with_search_keys(demographics)
    with use_case():
        patient = get_patient_for(actor, patient_id)
        changed = []
        for name, value in values.items():
            if getattr(patient, name) != value:
                setattr(patient, name, value)
                if not name.endswith("_key"):
                    changed.append(name)
        audit.record(
            actor,
            "patient.update",
            patient=patient,
            obj=patient,
            category=CATEGORY,
            detail=("changed: " + ", ".join(sorted(changed))) if changed else "no changes",
        )
    return changed


@dataclass(frozen=True)
class DeathLimit:
    """What the charting forms may still take for a deceased patient.

    With a date of death: entries dated up to that day (late entries for care given before
    the death are ordinary charting). Without one (``deceased_on`` None): nothing, until the
    date is recorded. The same rule ``refusal_after_death`` enforces, for the forms to say
    beforehand.
    """

    deceased_on: date | None

    @property
    def takes_nothing(self) -> bool:
        return self.deceased_on is None

    def allows(self, day: date) -> bool:
        return self.deceased_on is not None and day <= self.deceased_on


def death_limit(patient: Patient) -> DeathLimit | None:
    """The limit a recorded death puts on new chart entries, or None for a living patient."""
    if patient.status != "deceased":
        return None
    return DeathLimit(patient.deceased_date)


def refusal_after_death(patient: Patient, day: date, what: str) -> str | None:
    """Why ``what`` (e.g. "Vital signs") dated ``day`` on the clinic's calendar cannot be
    recorded for this patient, or None when it can.

    Nothing is dated after the recorded date of death; the day itself is allowed (the time
    of death is not recorded). A patient marked deceased without a date takes nothing new
    until the date is recorded: there is nothing to compare with.
    """
    limit = death_limit(patient)
    if limit is None or limit.allows(day):
        return None
    if limit.takes_nothing:
        return (
            f"The patient is recorded as deceased without a date of death: {what.lower()} "
            "cannot be recorded until the date of death is added on the patient's page."
        )
    died = f"{limit.deceased_on.day} {limit.deceased_on:%b %Y}"
    return f"{what} cannot be dated after the patient's recorded date of death ({died})."


def records_dated_after(patient_id: int, day: date) -> RecordsAfter:
    """The patient's records of every registered kind dated after ``day``: what a date of
    death on ``day`` would leave after the death."""
    counts = ((kind, kind.count_after(patient_id, day)) for kind in _DATED_RECORD_KINDS)
    return RecordsAfter(tuple((kind, count) for kind, count in counts if count))


def change_status(
    actor,
    patient_id: int,
    status: str,
    deceased_date: date | None,
    today: date,
    *,
    confirmed_after_death: bool = False,
) -> Patient:
    """Mark a patient active, inactive or deceased (with the date). Records are never deleted.

    A date of death with vital signs or immunizations dated after it is usually a mistyped
    date (or records charted on the wrong patient): ``RecordsAfterDeath`` says how many,
    and nothing changes until the user confirms (``confirmed_after_death``). The records
    stay as they are either way; the audit event notes how many were confirmed.
    """
    if status not in PATIENT_STATUSES:
        raise Refused("Choose a status from the list.", "status")
    with use_case():
        patient = get_patient_for(actor, patient_id)
        found = RecordsAfter()
        if status == "deceased":
            if deceased_date is None:
                raise Refused("Give the date of death.", "deceased_date")
            if deceased_date > today:
                raise Refused("The date of death can't be in the future.", "deceased_date")
            if deceased_date < patient.birth_date:
                raise Refused("The date of death can't be before the birth date.", "deceased_date")
            found = records_dated_after(patient.id, deceased_date)
            if found.total and not confirmed_after_death:
                raise RecordsAfterDeath(found)
        else:
            deceased_date = None
        previous = patient.status
        patient.status = status
        patient.deceased_date = deceased_date
        detail = f"{previous} -> {status}"
        if found.total:
            detail += f"; {found.total} charted records dated after the death confirmed"
        audit.record(
            actor, "patient.status", patient=patient, obj=patient, category=CATEGORY, detail=detail
        )
    return patient


# ---------------------------------------------------------------------------------------
# Search


@dataclass
class SearchQuery:
    """What a typed query means: its kind and the value(s) to compare."""

    kind: str  # empty, too_short, too_long, mrn, phone, birth_date, family_given, family
    mrn: str | None = None
    phone: str | None = None
    birth_date: date | None = None
    family_prefix: str | None = None
    given_prefix: str | None = None


@dataclass
class SearchOutcome:
    query: SearchQuery
    patients: list[Patient] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.query.kind


_PHONE_CHARACTERS = re.compile(r"^\+?[\d\s().\-]+$")
_PHONE_SEPARATORS = re.compile(r"[+().\-]")
_DATE_FORMATS = (
    "%Y-%m-%d",  # 1980-02-03
    "%m/%d/%Y",  # 02/03/1980 (US: month first)
    "%d %b %Y",  # 3 Feb 1980
    "%d %B %Y",  # 3 February 1980
    "%b %d %Y",  # Feb 3 1980
    "%B %d %Y",  # February 3 1980
)


def parse_birth_date(text: str) -> date | None:
    """A date typed in one of the common formats, or None."""
    cleaned = " ".join(text.replace(",", " ").split())
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(cleaned, pattern).date()
        except ValueError:
            continue
    return None


def classify_query(text: str, region: str) -> SearchQuery:
    """Decide what the user typed: an MRN, a phone, a date of birth, or a name."""
    text = " ".join(text.split())
    if not text:
        return SearchQuery("empty")
    if len(text) < MIN_QUERY_LENGTH:
        return SearchQuery("too_short")
    if len(text) > MAX_QUERY_LENGTH:
        return SearchQuery("too_long")
    if is_valid_mrn(text):
        return SearchQuery("mrn", mrn=text)
    birth_date = parse_birth_date(text)
    if birth_date is not None:
        return SearchQuery("birth_date", birth_date=birth_date)
    if _PHONE_CHARACTERS.match(text):
        digits = sum(char.isdigit() for char in text)
        if digits >= 10 or _PHONE_SEPARATORS.search(text):
            number = normalise_phone(text, region)
            if number is not None:
                return SearchQuery("phone", phone=number)
    if "," in text:
        family, _, given = text.partition(",")
        family_key, given_key = search_key(family), search_key(given)
        if family_key and given_key:
            return SearchQuery("family_given", family_prefix=family_key, given_prefix=given_key)
        if family_key:
            return SearchQuery("family", family_prefix=family_key)
        return SearchQuery("too_short")
    return SearchQuery("family", family_prefix=search_key(text))


def _prefix_range(column, prefix: str):
    """``column`` starts with ``prefix``, as a range the (family, given, dob) index serves.

    LIKE would need escaping and, on PostgreSQL, a special operator class; a range on
    byte-ordered keys (collation "C") needs neither and reads the index directly.
    """
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if ord(prefix[-1]) < 0x10FFFF else None
    condition = column >= prefix
    return condition & (column < upper) if upper is not None else condition


def search_statement(query: SearchQuery):
    """The SELECT for a classified query: each kind is served by an index."""
    statement = select(Patient)
    if query.kind == "mrn":
        statement = statement.where(Patient.mrn == query.mrn)
    elif query.kind == "phone":
        # A UNION of three index lookups: with OR, SQLite prefers walking the name index in
        # ORDER BY order and filtering every row (hundreds of ms at 100k patients).
        matching_ids = union(
            *(select(Patient.id).where(getattr(Patient, c) == query.phone) for c in PHONE_COLUMNS)
        )
        statement = statement.where(Patient.id.in_(matching_ids))
    elif query.kind == "birth_date":
        statement = statement.where(Patient.birth_date == query.birth_date)
    else:
        statement = statement.where(_prefix_range(Patient.family_key, query.family_prefix))
        if query.given_prefix:
            statement = statement.where(_prefix_range(Patient.given_key, query.given_prefix))
    # Exactly the index's columns, so both databases read rows in index order and stop at 20.
    statement = statement.order_by(Patient.family_key, Patient.given_key, Patient.birth_date)
    statement = statement.limit(SEARCH_LIMIT)
    return statement


def search_patients(actor, text: str, region: str) -> SearchOutcome:
    """Find patients by MRN, phone, date of birth or name prefix (at most 20).

    A search that lists anyone is audited once, with the count and the query's kind only:
    the query text itself may be patient data and never leaves this function.
    """
    query = classify_query(text, region)
    if query.kind in ("empty", "too_short", "too_long"):
        return SearchOutcome(query)
    with use_case():
        patients = list(db.session.scalars(search_statement(query)))
        if patients:
            audit.record(
                actor,
                "patient.search",
                category=CATEGORY,
                detail=f"results={len(patients)} kind={query.kind}",
            )
    return SearchOutcome(query, patients)
