"""The clinic's directory as FHIR: Practitioner (its clinical staff), Organization (the
clinic) and Location (its locations). Not patient data: reading them is not audited.

Practitioner: every account holding a clinical role that charts (prescriber or nurse),
since notes, vitals and orders name them as authors and performers; disabled accounts are
still served (``active: false``) so old records' references resolve. Front desk and admin
accounts are not practitioners and are not served. The portal holds no NPI yet: when it
does, it goes in as ``http://hl7.org/fhir/sid/us-npi``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import Select, and_, false, func, or_, select

from portal.auth.models import User, UserRole
from portal.clinic.models import Clinic, Location
from portal.extensions import db
from portal.fhir.resources import RESOURCE_TYPES
from portal.fhir.resources.keyset import page_of, row_id, walk
from portal.fhir.spec import Criterion, InvalidSearch, Page

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
PRACTITIONER_ROLES = ("prescriber", "nurse")


def _name_condition(column, criterion: Criterion):
    """Each value (OR): every one of its words starts a word of the name, case-insensitive
    (a directory holds few rows: a plain scan)."""
    if criterion.modifier is not None:
        raise InvalidSearch(criterion.name, f"Modifier :{criterion.modifier} is not supported.")
    lowered = func.lower(column)

    def starts_a_word(word: str):
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return or_(
            lowered.like(f"{escaped}%", escape="\\"), lowered.like(f"% {escaped}%", escape="\\")
        )

    alternatives = []
    for value in criterion.values:
        words = value.casefold().split()
        if not words:
            raise InvalidSearch(criterion.name, "An empty name matches nothing useful.")
        alternatives.append(and_(*(starts_a_word(word) for word in words)))
    return or_(false(), *alternatives)


class _RowSpec:
    """What the three directory types share: rows read by id, searched by name."""

    type: str
    search_params = {"name": "string"}
    includes: dict[str, str] = {}
    model = None
    name_attribute = "name"  # the model's column a name search reads

    def base(self) -> Select:
        return select(self.model)

    def to_fhir(self, row) -> dict:
        raise NotImplementedError

    def condition(self, criterion: Criterion):
        """The WHERE clause of one criterion."""
        if criterion.name == "_id":
            if criterion.modifier is not None:
                raise InvalidSearch("_id", f"Modifier :{criterion.modifier} is not supported.")
            ids = [row_id(value) for value in criterion.values]
            return self.model.id.in_([value for value in ids if value is not None])
        if criterion.name == "name":
            return _name_condition(getattr(self.model, self.name_attribute), criterion)
        raise InvalidSearch(criterion.name, f"Not a search parameter of {self.type}.")

    def statement(self, criteria: list[Criterion]) -> Select:
        statement = self.base()
        for criterion in criteria:
            statement = statement.where(self.condition(criterion))
        return statement

    def read(self, fhir_id: str) -> dict | None:
        key = row_id(fhir_id)
        if key is None:
            return None
        row = db.session.scalars(self.base().where(self.model.id == key)).first()
        return self.to_fhir(row) if row is not None else None

    def search(self, criteria: list[Criterion], after: str | None, count: int) -> Page:
        rows, next_after = page_of(self.statement(criteria), self.model.id, after, count)
        return Page([self.to_fhir(row) for row in rows], next_after)

    def count(self, criteria: list[Criterion]) -> int:
        statement = self.statement(criteria)
        return db.session.scalar(select(func.count()).select_from(statement.subquery()))

    def for_patient(self, patient_id: int, since=None, care=()) -> Iterator[dict]:
        return iter(())  # the directory belongs to no patient

    def stream(self, since: datetime | None, patient_ids: list[int] | None) -> Iterator[dict]:
        if patient_ids is not None:
            return  # a patient-level export holds patients' records, not the directory
        for row in walk(self.base(), self.model.id):
            yield self.to_fhir(row)


def _human_name(full_name: str) -> dict:
    # Accounts hold one full name: the last word is taken as the family name, as US Core
    # asks for one; the text keeps the name as written.
    words = full_name.split()
    name = {"use": "official", "text": full_name}
    if words:
        name["family"] = words[-1]
    if len(words) > 1:
        name["given"] = words[:-1]
    return name


class PractitionerSpec(_RowSpec):
    type = "Practitioner"
    model = User
    name_attribute = "full_name"

    def base(self) -> Select:
        clinical = select(UserRole.user_id).where(UserRole.role.in_(PRACTITIONER_ROLES))
        return select(User).where(User.id.in_(clinical))

    def to_fhir(self, user: User) -> dict:
        resource = {
            "resourceType": "Practitioner",
            "id": str(user.id),
            "active": bool(user.is_enabled),
            "name": [_human_name(user.full_name)],
        }
        npi = getattr(user, "npi", None)
        if npi:
            resource["identifier"] = [{"system": NPI_SYSTEM, "value": npi}]
        return resource


def _address_text(text: str | None) -> list[dict]:
    return [{"text": text}] if text else []


class OrganizationSpec(_RowSpec):
    type = "Organization"
    model = Clinic

    def to_fhir(self, clinic: Clinic) -> dict:
        resource = {
            "resourceType": "Organization",
            "id": str(clinic.id),
            "active": True,
            "type": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                            "code": "prov",
                            "display": "Healthcare Provider",
                        }
                    ]
                }
            ],
            "name": clinic.name,
        }
        if clinic.phone:
            resource["telecom"] = [{"system": "phone", "value": clinic.phone, "use": "work"}]
        if clinic.address:
            resource["address"] = _address_text(clinic.address)
        return resource


class LocationSpec(_RowSpec):
    type = "Location"
    model = Location
    search_params = {"name": "string", "organization": "reference"}
    includes = {"Location:organization": "Organization"}

    def to_fhir(self, location: Location) -> dict:
        resource = {
            "resourceType": "Location",
            "id": str(location.id),
            "status": "active" if location.is_active else "inactive",
            "name": location.name,
            "mode": "instance",
            "managingOrganization": {"reference": f"Organization/{location.clinic_id}"},
        }
        if location.phone:
            resource["telecom"] = [{"system": "phone", "value": location.phone, "use": "work"}]
        if location.address:
            resource["address"] = {"text": location.address}
        return resource

    def condition(self, criterion: Criterion):
        if criterion.name != "organization":
            return super().condition(criterion)
        if criterion.modifier is not None:
            raise InvalidSearch("organization", "Modifiers are not supported here.")
        ids = [row_id(value.removeprefix("Organization/")) for value in criterion.values]
        return Location.clinic_id.in_([value for value in ids if value is not None])


RESOURCE_TYPES["Practitioner"] = PractitionerSpec()
RESOURCE_TYPES["Organization"] = OrganizationSpec()
RESOURCE_TYPES["Location"] = LocationSpec()
