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

from sqlalchemy import func, or_, select, union
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.clinic.services import clinic_reads_day_first
from portal.extensions import db
from portal.patients.identifiers import (
    is_valid_mrn,
    name_sound,
    new_mrn,
    normalise_phone,
    search_key,
    trigram_similarity,
)
from portal.patients.models import PATIENT_STATUSES, Patient, PatientName
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


def lock_patient(patient_id: int) -> None:
    """Hold the patient's row until this transaction ends, so that use cases which check a
    patient's chart and then write to it run one at a time per patient.

    PostgreSQL (READ COMMITTED) would otherwise let two transactions check the same state
    and both write: "no known allergies" stored beside an allergy recorded at the same
    moment. ``FOR NO KEY UPDATE`` leaves rows that merely reference the patient (foreign
    keys take ``KEY SHARE``) unblocked. On SQLite it is a plain read: a use case's
    ``BEGIN IMMEDIATE`` already serializes every writer.
    """
    db.session.execute(
        select(Patient.id).where(Patient.id == patient_id).with_for_update(key_share=True)
    )


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
            detail = (
                f"registered despite {len(matches)} possible matches (confirmed different person)"
                if matches
                else None
            )
            patient = add_patient(actor, demographics, rng=rng, detail=detail)
    if patient is None:
        raise PossibleDuplicates(matches)
    return patient


def likely_duplicates(demographics: dict) -> list[Patient]:
    """The registration's duplicate rule (same family name and birth date, or a shared
    phone) for work that refuses rather than asks (a FHIR import); reads only."""
    values = _with_search_keys(demographics)
    return find_possible_duplicates(
        values["family_key"], values["birth_date"], [values.get(c) for c in PHONE_COLUMNS]
    )


def add_patient(
    actor, demographics: dict, *, rng: random.Random | None = None, detail: str | None = None
) -> Patient:
    """Insert a patient with a fresh MRN and its audit event; flushes only. The work of
    registration once the duplicates are settled (``register_patient``, a FHIR import's
    use case, which checks ``likely_duplicates`` itself)."""
    patient = Patient(**_with_search_keys(demographics), status="active")
    _insert_with_unique_mrn(patient, rng)
    audit.record(
        actor, "patient.create", patient=patient, obj=patient, category=CATEGORY, detail=detail
    )
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
#
# A name is looked for the way people type it: "Quibbleworth, Rosalind", "Rosalind
# Quibbleworth", "rosalind" alone, with or without a date of birth, or misspelt. Each reading
# of the words (given then family, family then given, one name alone) is an index range read
# in index order and cut at 20, so a common prefix costs the same at a million patients as
# at a thousand. The tiers run in rank order until 20 patients are found:
#   1. exact: the typed words are the whole name (given + family, either order; or one name);
#   2. prefix: the typed words begin the names;
#   3. near misses: the registry's distinct names (patient_names) that sound the same (both
#      databases) or are trigram-similar (PostgreSQL's pg_trgm), then their patients by
#      exact key, most alike first.
# A query that already lists 20 exact or prefix matches never reaches the near misses.

# Words beyond this many are read as one name (a long query is rarely a name to be split).
MAX_NAME_WORDS = 4
# Near misses need a few letters to mean anything ("jo" sounds like half the registry).
MIN_FUZZY_WORD = 3
# How alike (pg_trgm's similarity, 0 to 1) a near miss must be: one letter off in a name
# of eight ("Rosalnd", 0.55) passes, a shared first syllable does not. Shorter names with
# a typo ("Smiht", 0.33) are found by their phonetic key instead.
NEAR_MISS_SIMILARITY = 0.45
# Name keys read per typed word to choose near misses from, and the most alike kept.
NEAR_KEY_CANDIDATES = 60
NEAR_KEYS = 10
# Only names are searched for near misses: "under%" or "x' OR '1'='1" are not misspelt names.
_NAME_CHARACTERS = re.compile(r"^[^\W\d_]+(?:['\u2019.\-][^\W\d_]*)*$")


@dataclass
class SearchQuery:
    """What a typed query means: its kind and the value(s) to compare."""

    # empty, too_short, too_long, mrn, phone, birth_date, name (words in any order),
    # family_given ("family, given")
    kind: str
    mrn: str | None = None
    phone: str | None = None
    birth_date: date | None = None
    family_prefix: str | None = None
    given_prefix: str | None = None
    words: tuple[str, ...] = ()  # the name's words as search keys, in the order typed

    @property
    def audit_kind(self) -> str:
        """The kind as the audit trail records it (never the text)."""
        if self.birth_date is not None and self.kind in ("name", "family_given"):
            return f"{self.kind}+birth_date"
        return self.kind


@dataclass
class SearchOutcome:
    query: SearchQuery
    patients: list[Patient] = field(default_factory=list)
    # Ids of the listed patients found by a near miss, not by what was typed.
    near_miss_ids: set[int] = field(default_factory=set)

    @property
    def kind(self) -> str:
        return self.query.kind


_PHONE_CHARACTERS = re.compile(r"^\+?[\d\s().\-]+$")
_PHONE_SEPARATORS = re.compile(r"[+().\-]")
_WORDED_DATE_FORMATS = (
    "%d %b %Y",  # 3 Feb 1980
    "%d %B %Y",  # 3 February 1980
    "%b %d %Y",  # Feb 3 1980
    "%B %d %Y",  # February 3 1980
)
_MONTH_FIRST_FORMATS = ("%m/%d/%Y", "%m-%d-%Y", "%m.%d.%Y")  # 02/03/1980 is 3 February
_DAY_FIRST_FORMATS = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y")  # 02/03/1980 is 2 March


def parse_birth_date(text: str, *, day_first: bool = False) -> date | None:
    """A date typed in one of the common formats, or None.

    ISO (1980-02-03) and dates with the month's name read the same everywhere; numbers only
    (02/03/1980) are read in the clinic's order: month first (US) unless ``day_first``.
    """
    cleaned = " ".join(text.replace(",", " ").split())
    numeric = _DAY_FIRST_FORMATS if day_first else _MONTH_FIRST_FORMATS
    for pattern in ("%Y-%m-%d", *numeric, *_WORDED_DATE_FORMATS):
        try:
            return datetime.strptime(cleaned, pattern).date()
        except ValueError:
            continue
    return None


def _split_off_birth_date(text: str, day_first: bool) -> tuple[str, date | None]:
    """A name typed with a date of birth before or after it: ("Rosalind", 1980-02-03)."""
    tokens = text.split()
    for count in (3, 1):  # "3 Feb 1980" / "Feb 3, 1980", or "03/02/1980" / "1980-02-03"
        if len(tokens) <= count:
            continue
        for date_part, rest in (
            (tokens[-count:], tokens[:-count]),
            (tokens[:count], tokens[count:]),
        ):
            found = parse_birth_date(" ".join(date_part), day_first=day_first)
            if found is not None:
                return " ".join(rest).strip(" ,"), found
    return text, None


def classify_query(text: str, region: str, *, day_first: bool = False) -> SearchQuery:
    """Decide what the user typed: an MRN, a phone, a date of birth, or a name (with or
    without a date of birth)."""
    text = " ".join(text.split())
    if not text:
        return SearchQuery("empty")
    if len(text) < MIN_QUERY_LENGTH:
        return SearchQuery("too_short")
    if len(text) > MAX_QUERY_LENGTH:
        return SearchQuery("too_long")
    if is_valid_mrn(text):
        return SearchQuery("mrn", mrn=text)
    birth_date = parse_birth_date(text, day_first=day_first)
    if birth_date is not None:
        return SearchQuery("birth_date", birth_date=birth_date)
    if _PHONE_CHARACTERS.match(text):
        digits = sum(char.isdigit() for char in text)
        if digits >= 10 or _PHONE_SEPARATORS.search(text):
            number = normalise_phone(text, region)
            if number is not None:
                return SearchQuery("phone", phone=number)
    name, birth_date = _split_off_birth_date(text, day_first)
    if "," in name:
        family, _, given = name.partition(",")
        family_key, given_key = search_key(family), search_key(given)
        if not family_key:
            return SearchQuery("too_short")
        return SearchQuery(
            "family_given",
            family_prefix=family_key,
            given_prefix=given_key or None,
            birth_date=birth_date,
            words=tuple((family_key + " " + given_key).split()),
        )
    key = search_key(name)
    if not key:
        return SearchQuery("too_short")
    return SearchQuery("name", birth_date=birth_date, words=tuple(key.split()))


def _readings(query: SearchQuery) -> list[tuple[str | None, str | None]]:
    """(family, given) readings of the typed words, most likely first; None: not typed."""
    if query.kind == "family_given":
        return [(query.family_prefix, query.given_prefix)]
    words = query.words
    whole = " ".join(words)
    readings: list[tuple[str | None, str | None]] = []
    if 1 < len(words) <= MAX_NAME_WORDS:
        for cut in range(1, len(words)):  # "Rosalind Quibbleworth": given, then family
            readings.append((" ".join(words[cut:]), " ".join(words[:cut])))
        for cut in range(1, len(words)):  # "Quibbleworth Rosalind": family, then given
            readings.append((" ".join(words[:cut]), " ".join(words[cut:])))
    readings += [(whole, None), (None, whole)]  # "van der Berg", "Mary Ann", "Rosalind"
    return readings


def _tiers(query: SearchQuery) -> list[tuple[bool, str | None, str | None]]:
    """(exact, family, given): the exact tier, then the prefix tier, over the readings.

    Several words read as one name ("van der berg") are looked up as a prefix only: the
    exact rows come first in that range anyway, and each statement saved is a round trip.
    """
    readings = _readings(query)
    several = len(query.words) > 1 and query.kind == "name"
    exact = [
        (True, family, given)
        for family, given in readings
        if not (several and (family is None or given is None))
    ]
    return exact + [(False, family, given) for family, given in readings]


def _prefix_range(column, prefix: str):
    """``column`` starts with ``prefix``, as a range the (family, given, dob) index serves.

    LIKE would need escaping and, on PostgreSQL, a special operator class; a range on
    byte-ordered keys (collation "C") needs neither and reads the index directly.
    """
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if ord(prefix[-1]) < 0x10FFFF else None
    condition = column >= prefix
    return condition & (column < upper) if upper is not None else condition


def _name_statement(family: str | None, given: str | None, *, exact: bool, birth_date):
    """One reading in one tier, read in the order of the index it uses."""
    match = (lambda column, value: column == value) if exact else _prefix_range
    if family is not None:
        statement = select(Patient).where(match(Patient.family_key, family))
        if given:
            statement = statement.where(match(Patient.given_key, given))
        order = (Patient.family_key, Patient.given_key, Patient.birth_date)
    else:
        statement = select(Patient).where(match(Patient.given_key, given))
        order = (Patient.given_key, Patient.family_key, Patient.birth_date)
    if birth_date is not None:
        statement = statement.where(Patient.birth_date == birth_date)
    return statement.order_by(*order).limit(SEARCH_LIMIT)


def _near_miss_readings(query: SearchQuery) -> list[tuple[str | None, str | None]]:
    """(family, given) readings to look for near misses of; [] when the query is not a
    plain name (digits, "%", "_" are not misspellings). A part of at least MIN_FUZZY_WORD
    letters is matched as a near miss, a shorter one as a prefix ("jo smiht")."""
    if not query.words or not all(_NAME_CHARACTERS.match(word) for word in query.words):
        return []
    if query.kind == "family_given":
        readings = [(query.family_prefix, query.given_prefix)]
    elif len(query.words) == 2:
        first, second = query.words
        readings = [(second, first), (first, second)]  # given first, as the name is said
    else:
        whole = " ".join(query.words)
        readings = [(whole, None), (None, whole)]
    return [
        (family, given)
        for family, given in readings
        if any(part and len(part) >= MIN_FUZZY_WORD for part in (family, given))
    ]


def near_keys_statement(term: str, dialect: str):
    """Name keys that may be near misses of ``term``: the same phonetic key (both
    databases) or, on PostgreSQL, trigram-similar (pg_trgm's "%", served by the GIN index).
    Read from ``patient_names`` (a few thousand words), never from the patients."""
    alike = []
    sound = name_sound(term)
    if sound:
        alike.append(PatientName.sound == sound)
    if dialect == "postgresql":
        alike.append(PatientName.key.op("%")(term))
    if not alike:
        return None
    statement = select(PatientName.key, PatientName.sound).where(or_(*alike))
    if dialect == "postgresql":
        # Many words share a trigram or two with a common name: read the most alike.
        statement = statement.order_by(func.similarity(PatientName.key, term).desc())
    return statement.limit(NEAR_KEY_CANDIDATES)


def best_near_keys(term: str, candidates) -> list[str]:
    """The (key, sound) candidates most alike ``term`` first: those that sound the same or
    are at least NEAR_MISS_SIMILARITY alike (pg_trgm's measure, computed here for both
    databases, so both rank alike)."""
    sound = name_sound(term)
    scored = []
    for key, key_sound in candidates:
        likeness = trigram_similarity(term, key)
        if likeness >= NEAR_MISS_SIMILARITY or (sound and key_sound == sound):
            scored.append((-likeness, key))
    return [key for _, key in sorted(scored)[:NEAR_KEYS]]


def _near_miss_statements(query: SearchQuery, keys_of) -> list:
    """The SELECTs of patients whose names are near misses, given ``keys_of(term)`` (the
    best near keys of a term): by key, most alike first, when one name was typed; one
    statement per reading when two were (the key lists are short: index seeks)."""
    statements = []

    def condition(column, part):
        if len(part) < MIN_FUZZY_WORD:
            return _prefix_range(column, part)
        keys = keys_of(part)
        return column.in_(keys) if keys else None

    for family, given in _near_miss_readings(query):
        if family and given:
            conditions = [
                condition(Patient.family_key, family),
                condition(Patient.given_key, given),
            ]
            if any(c is None for c in conditions):
                continue
            statement = select(Patient).where(*conditions)
            order = (Patient.family_key, Patient.given_key, Patient.birth_date)
            candidates = [(statement, order)]
        else:
            column, other = (
                (Patient.family_key, Patient.given_key)
                if family
                else (Patient.given_key, Patient.family_key)
            )
            term = family or given
            candidates = [
                (select(Patient).where(column == key), (column, other, Patient.birth_date))
                for key in keys_of(term)
                if key != term  # the exact tier has read it already
            ]
        for statement, order in candidates:
            if query.birth_date is not None:
                statement = statement.where(Patient.birth_date == query.birth_date)
            statements.append(statement.order_by(*order).limit(SEARCH_LIMIT))
    return statements


def search_statements(query: SearchQuery, dialect: str) -> list:
    """The statements of the exact and prefix tiers (or the one lookup of an MRN, a phone
    or a date of birth), then the near-miss key lookups: each served by an index."""
    if query.kind not in ("name", "family_given"):
        return [_lookup_statement(query)]
    statements = [
        _name_statement(family, given, exact=exact, birth_date=query.birth_date)
        for exact, family, given in _tiers(query)
    ]
    for term in _near_miss_terms(query):
        statement = near_keys_statement(term, dialect)
        if statement is not None:
            statements.append(statement)
    return statements


def _near_miss_terms(query: SearchQuery) -> list[str]:
    """The typed parts whose near keys are looked up."""
    terms = []
    for reading in _near_miss_readings(query):
        for part in reading:
            if part and len(part) >= MIN_FUZZY_WORD and part not in terms:
                terms.append(part)
    return terms


def _lookup_statement(query: SearchQuery):
    """The SELECT of an MRN, a phone or a date of birth: each kind is served by an index."""
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
    else:
        statement = statement.where(Patient.birth_date == query.birth_date)
    # Exactly the index's columns, so both databases read rows in index order and stop at 20.
    statement = statement.order_by(Patient.family_key, Patient.given_key, Patient.birth_date)
    return statement.limit(SEARCH_LIMIT)


def find_patients(query: SearchQuery, dialect: str, fetch, fetch_keys) -> tuple[list, set]:
    """Run a classified query's statements in rank order until 20 patients are found.

    ``fetch(statement)`` returns patient rows (ORM objects for the service, plain rows for
    the benchmark's floor), ``fetch_keys(statement)`` (key, sound) rows of names. Returns
    the rows and the ids of those found as near misses (ranked among themselves by
    likeness).
    """
    found: dict[int, object] = {}
    if query.kind not in ("name", "family_given"):
        for row in fetch(_lookup_statement(query)):
            found[row.id] = row
        return list(found.values()), set()
    for exact, family, given in _tiers(query):
        if len(found) >= SEARCH_LIMIT:
            break
        statement = _name_statement(family, given, exact=exact, birth_date=query.birth_date)
        for row in fetch(statement):
            found.setdefault(row.id, row)
    near_misses: dict[int, object] = {}
    if len(found) < SEARCH_LIMIT:
        known: dict[str, list[str]] = {}

        def keys_of(term: str) -> list[str]:
            if term not in known:
                statement = near_keys_statement(term, dialect)
                known[term] = (
                    [] if statement is None else best_near_keys(term, fetch_keys(statement))
                )
            return known[term]

        for statement in _near_miss_statements(query, keys_of):
            if len(found) + len(near_misses) >= SEARCH_LIMIT:
                break
            for row in fetch(statement):
                if row.id not in found:
                    near_misses.setdefault(row.id, row)
    words = [word for word in query.words if len(word) >= MIN_FUZZY_WORD]

    def likeness(row) -> float:
        return sum(
            max(trigram_similarity(w, row.family_key), trigram_similarity(w, row.given_key))
            for w in words
        )

    ranked = sorted(near_misses.values(), key=lambda row: -likeness(row))  # stable: index order
    rows = (list(found.values()) + ranked)[:SEARCH_LIMIT]
    return rows, {row.id for row in ranked} & {row.id for row in rows}


def _run_search(query: SearchQuery) -> tuple[list[Patient], set[int]]:
    """The search on the ORM session: Patient objects, loaded once each."""
    dialect = db.session.get_bind().dialect.name
    return find_patients(
        query,
        dialect,
        lambda statement: list(db.session.scalars(statement)),
        lambda statement: db.session.execute(statement).all(),
    )


def search_patients(actor, text: str, region: str) -> SearchOutcome:
    """Find patients by MRN, phone, date of birth or name (at most 20, best first).

    Numeric dates are read in the clinic's date order. A search that lists anyone is audited
    once, with the count and the query's kind only: the query text itself may be patient
    data and never leaves this function.
    """
    query = classify_query(text, region, day_first=clinic_reads_day_first())
    if query.kind in ("empty", "too_short", "too_long"):
        return SearchOutcome(query)
    with use_case():
        patients, near_misses = _run_search(query)
        if patients:
            audit.record(
                actor,
                "patient.search",
                category=CATEGORY,
                detail=f"results={len(patients)} kind={query.audit_kind}",
            )
    return SearchOutcome(query, patients, near_misses)
