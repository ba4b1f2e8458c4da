"""Patient: the registry's patients as FHIR R4 Patient (US Core Patient where it applies).

The MRN is the identifier (type MR, the clinic's system URI: ``FHIR_MRN_SYSTEM``);
``gender`` is the administrative gender, which the registry records as sex at birth, also
sent as US Core's birth sex. The registry holds no race or ethnicity, so neither extension
is sent. Every patient is served (inactive and deceased ones too: ``active`` and
``deceased[x]`` say so); the registry never deletes one.

Search by name compares the registry's search keys (accents removed, case folded) by
prefix through the name indexes, as the registry's own search does, so "Zoe" finds "Zoë";
``:exact`` compares the name as written.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import date, datetime

from flask import current_app
from sqlalchemy import Select, and_, false, func, or_, select, tuple_

from portal.extensions import db
from portal.fhir.resources import RESOURCE_TYPES
from portal.fhir.resources.keyset import page_of, row_id, walk
from portal.fhir.spec import Criterion, InvalidSearch, Page
from portal.patients.identifiers import normalise_phone, search_key
from portal.patients.models import Patient

DEFAULT_MRN_SYSTEM = "urn:practice-portal:mrn"
BIRTH_SEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"
_BIRTH_SEX_CODES = {"female": "F", "male": "M", "unknown": "UNK"}
_GENDERS = {"female", "male", "unknown", "other"}
_PHONES = (("phone_mobile", "mobile"), ("phone_home", "home"), ("phone_work", "work"))
# As the clinical types read dates (portal/fhir/params.py): sa, eb and ap are refused.
_DATE_PREFIXES = ("eq", "ne", "lt", "gt", "ge", "le")


def mrn_system() -> str:
    """The identifier system of this clinic's MRNs (a URI the clinic controls)."""
    return current_app.config.get("FHIR_MRN_SYSTEM") or DEFAULT_MRN_SYSTEM


# The registry's columns, read as plain rows: a row has the attributes ``to_fhir`` reads,
# under the same names, and costs a fraction of an ORM object to load (the bulk export
# reads a million of them; profiling showed the ORM's loading as most of its time).
def patient_columns() -> Select:
    """A select of every column of the registry's patients, as rows."""
    return select(*(getattr(Patient, column.key) for column in Patient.__mapper__.column_attrs))


def to_fhir(patient: Patient) -> dict:
    """One registry row (an ORM object or a row of ``patient_columns()``) as a Patient
    resource."""
    resource = {
        "resourceType": "Patient",
        "id": str(patient.id),
        "meta": {"lastUpdated": _instant(patient.updated_at)},
        "extension": [
            {"url": BIRTH_SEX, "valueCode": _BIRTH_SEX_CODES.get(patient.sex_at_birth, "UNK")}
        ],
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                            "code": "MR",
                            "display": "Medical record number",
                        }
                    ]
                },
                "system": mrn_system(),
                "value": patient.mrn,
            }
        ],
        "active": patient.status != "inactive",
        "name": [{"use": "official", "family": patient.family_name, "given": [patient.given_name]}],
        "gender": patient.sex_at_birth if patient.sex_at_birth in _GENDERS else "unknown",
        "birthDate": patient.birth_date.isoformat(),
    }
    if patient.preferred_name and patient.preferred_name != patient.given_name:
        resource["name"].append(
            {"use": "usual", "family": patient.family_name, "given": [patient.preferred_name]}
        )
    telecom = [
        {"system": "phone", "value": getattr(patient, column), "use": use}
        for column, use in _PHONES
        if getattr(patient, column)
    ]
    if patient.email:
        telecom.append({"system": "email", "value": patient.email})
    if telecom:
        resource["telecom"] = telecom
    if patient.deceased_date is not None:
        resource["deceasedDateTime"] = patient.deceased_date.isoformat()
    elif patient.status == "deceased":
        resource["deceasedBoolean"] = True
    address = _address(patient)
    if address:
        resource["address"] = [address]
    if patient.emergency_contact_name:
        contact = {
            "relationship": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0131",
                            "code": "C",
                            "display": "Emergency Contact",
                        }
                    ],
                    **(
                        {"text": patient.emergency_contact_relationship}
                        if patient.emergency_contact_relationship
                        else {}
                    ),
                }
            ],
            "name": {"text": patient.emergency_contact_name},
        }
        if patient.emergency_contact_phone:
            contact["telecom"] = [{"system": "phone", "value": patient.emergency_contact_phone}]
        resource["contact"] = [contact]
    if patient.preferred_language:
        # Free text in the registry, not a BCP 47 code: sent as text only.
        resource["communication"] = [
            {"language": {"text": patient.preferred_language}, "preferred": True}
        ]
    return resource


def _address(patient: Patient) -> dict | None:
    lines = [line for line in (patient.address_line1, patient.address_line2) if line]
    parts = {
        "line": lines,
        "city": patient.city,
        "state": patient.state,
        "postalCode": patient.postal_code,
        "country": patient.country,
    }
    parts = {key: value for key, value in parts.items() if value}
    return {"use": "home", **parts} if parts else None


def _instant(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- search -------------------------------------------------------------------------------


def _prefix(column, key: str):
    """``column`` starts with ``key``: a range on the byte-ordered search keys, which the
    name indexes serve on both databases (the registry's search reads them the same way)."""
    following = ord(key[-1]) + 1
    if following > 0x10FFFF:
        return column >= key
    if 0xD800 <= following <= 0xDFFF:  # surrogates cannot be encoded: skip past them
        following = 0xE000
    return and_(column >= key, column < key[:-1] + chr(following))


def _string_condition(criterion: Criterion, keys, names):
    """One string parameter (OR of its values) on the key columns ``keys`` (prefix) or,
    with ``:exact``, on the columns ``names`` as written."""
    if criterion.modifier not in (None, "exact"):
        raise InvalidSearch(criterion.name, f"Modifier :{criterion.modifier} is not supported.")
    alternatives = []
    for value in criterion.values:
        if criterion.modifier == "exact":
            alternatives.append(or_(false(), *(column == value for column in names)))
            continue
        words = search_key(value).split()
        if not words:
            raise InvalidSearch(criterion.name, "An empty name matches nothing useful.")
        # "ada love": every word starts one of the name parts.
        alternatives.append(
            and_(*(or_(false(), *(_prefix(k, word) for k in keys)) for word in words))
        )
    return or_(false(), *alternatives)


def _identifier_condition(criterion: Criterion):
    if criterion.modifier is not None:
        raise InvalidSearch("identifier", f"Modifier :{criterion.modifier} is not supported.")
    alternatives = []
    for value in criterion.values:
        system, bar, code = value.rpartition("|")
        if not bar:
            system, code = None, value
        if system and system != mrn_system():
            alternatives.append(false())  # another system's identifiers: none held here
        else:
            alternatives.append(Patient.mrn == code.replace("-", "").strip())
    return or_(false(), *alternatives)


def _token_values(criterion: Criterion) -> list[str]:
    if criterion.modifier is not None:
        raise InvalidSearch(criterion.name, f"Modifier :{criterion.modifier} is not supported.")
    return [value.rpartition("|")[2] for value in criterion.values]


def _phone_condition(criterion: Criterion):
    region = current_app.config.get("DEFAULT_PHONE_REGION", "US")
    alternatives = []
    for value in _token_values(criterion):
        number = normalise_phone(value, region)
        if number is None:
            raise InvalidSearch("phone", "Not a phone number.")
        alternatives.append(
            or_(Patient.phone_mobile == number, Patient.phone_home == number)
            | (Patient.phone_work == number)
        )
    return or_(false(), *alternatives)


def _gender_condition(criterion: Criterion):
    values = _token_values(criterion)
    unknown = [value for value in values if value not in _GENDERS]
    if unknown:
        raise InvalidSearch("gender", "gender is one of male, female, other, unknown.")
    return Patient.sex_at_birth.in_(values)


def date_range(value: str, parameter: str) -> tuple[str, date, date]:
    """(prefix, first day, last day) of a date search value: ``ge1970``, ``1970-03``,
    ``le1970-03-02`` (a partial date is the range of days it covers)."""
    prefix = value[:2] if value[:2] in _DATE_PREFIXES else "eq"
    text = value[2:] if value[:2] in _DATE_PREFIXES else value
    text = text.split("T")[0]
    try:
        parts = [int(part) for part in text.split("-")]
        if len(parts) == 1 and len(text) == 4:
            return prefix, date(parts[0], 1, 1), date(parts[0], 12, 31)
        if len(parts) == 2:
            last = calendar.monthrange(parts[0], parts[1])[1]
            return prefix, date(parts[0], parts[1], 1), date(parts[0], parts[1], last)
        if len(parts) == 3:
            day = date(*parts)
            return prefix, day, day
    except ValueError:
        pass
    raise InvalidSearch(parameter, "Dates are YYYY, YYYY-MM or YYYY-MM-DD, with a prefix.")


def _birthdate_condition(criterion: Criterion):
    if criterion.modifier is not None:
        raise InvalidSearch("birthdate", f"Modifier :{criterion.modifier} is not supported.")
    column = Patient.birth_date
    alternatives = []
    for value in criterion.values:
        prefix, first, last = date_range(value, "birthdate")
        alternatives.append(
            {
                "eq": and_(column >= first, column <= last),
                "ne": or_(column < first, column > last),
                "lt": column < first,
                "gt": column > last,
                "ge": column >= first,
                "le": column <= last,
            }[prefix]
        )
    return or_(false(), *alternatives)


def _id_condition(criterion: Criterion):
    if criterion.modifier is not None:
        raise InvalidSearch("_id", f"Modifier :{criterion.modifier} is not supported.")
    ids = [row_id(value) for value in criterion.values]
    return Patient.id.in_([value for value in ids if value is not None])


_CONDITIONS = {
    "_id": _id_condition,
    "identifier": _identifier_condition,
    "name": lambda c: _string_condition(
        c,
        (Patient.family_key, Patient.given_key),
        (Patient.family_name, Patient.given_name, Patient.preferred_name),
    ),
    "family": lambda c: _string_condition(c, (Patient.family_key,), (Patient.family_name,)),
    "given": lambda c: _string_condition(
        c, (Patient.given_key,), (Patient.given_name, Patient.preferred_name)
    ),
    "birthdate": _birthdate_condition,
    "gender": _gender_condition,
    "phone": _phone_condition,
}


def _statement(criteria: list[Criterion]) -> Select:
    statement = patient_columns()
    for criterion in criteria:
        condition = _CONDITIONS.get(criterion.name)
        if condition is None:
            raise InvalidSearch(criterion.name, "Not a search parameter of Patient.")
        statement = statement.where(condition(criterion))
    return statement


# A search by family (or given) name is read in the order of that name's index, so a page
# is the next rows of one index range: in id order, a rare name made the database walk the
# whole registry by id to fill a page (hundreds of milliseconds), a common one sort
# thousands of rows. The page key is still the last patient's id (no name in a link): the
# next page starts after that patient's place in the order.
_FAMILY_ORDER = (Patient.family_key, Patient.given_key, Patient.birth_date, Patient.id)
_GIVEN_ORDER = (Patient.given_key, Patient.family_key, Patient.birth_date, Patient.id)


def _name_order(criteria: list[Criterion]) -> tuple | None:
    """The order a search is read in: a name index's when it searches by a name's start,
    else None (by id)."""
    names = {criterion.name for criterion in criteria if criterion.modifier is None}
    if "family" in names:
        return _FAMILY_ORDER
    if "given" in names:
        return _GIVEN_ORDER
    return None


def _after_in_order(order: tuple, after: str):
    """The rows after the patient ``after`` in ``order`` (their place read by id)."""
    key = row_id(after)
    place = (
        db.session.execute(select(*order).where(Patient.id == key)).first()
        if key is not None
        else None
    )
    if place is None:
        raise InvalidSearch("_after", "The page key is not one this server gave.")
    # The first column's bound alone lets the index range start at the place; the row
    # comparison then skips what precedes it within that value.
    return and_(order[0] >= place[0], tuple_(*order) > tuple_(*place))


class PatientSpec:
    type = "Patient"
    search_params = {
        "identifier": "token",
        "name": "string",
        "family": "string",
        "given": "string",
        "birthdate": "date",
        "gender": "token",
        "phone": "token",
    }
    includes: dict[str, str] = {}

    def read(self, fhir_id: str) -> dict | None:
        key = row_id(fhir_id)
        if key is None:
            return None
        patient = db.session.execute(patient_columns().where(Patient.id == key)).first()
        return to_fhir(patient) if patient is not None else None

    def search(self, criteria: list[Criterion], after: str | None, count: int) -> Page:
        order = _name_order(criteria)
        if order is None:
            rows, next_after = page_of(_statement(criteria), Patient.id, after, count, columns=True)
            return Page([to_fhir(row) for row in rows], next_after)
        statement = _statement(criteria)
        if after is not None:
            statement = statement.where(_after_in_order(order, after))
        rows = db.session.execute(statement.order_by(*order).limit(count + 1)).all()
        more = len(rows) > count
        rows = rows[:count]
        return Page([to_fhir(row) for row in rows], str(rows[-1].id) if more and rows else None)

    def count(self, criteria: list[Criterion]) -> int:
        statement = _statement(criteria).with_only_columns(func.count(Patient.id))
        return db.session.scalar(statement)

    def for_patient(self, patient_id: int, since=None, care=()) -> Iterator[dict]:
        patient = self.read(str(patient_id))
        if patient is not None:
            yield patient

    def stream(self, since: datetime | None, patient_ids: list[int] | None) -> Iterator[dict]:
        statement = patient_columns()
        if since is not None:
            statement = statement.where(Patient.updated_at >= since)
        if patient_ids is not None:
            statement = statement.where(Patient.id.in_(patient_ids))
        for patient in walk(statement, Patient.id, columns=True):
            yield to_fhir(patient)


RESOURCE_TYPES["Patient"] = PatientSpec()
