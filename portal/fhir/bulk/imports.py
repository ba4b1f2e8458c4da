"""Import of a FHIR ``transaction`` or ``batch`` Bundle (``POST /fhir``).

What comes in: Patient, AllergyIntolerance, Condition, Immunization, Observation (vital
signs) and MedicationStatement (and MedicationRequest with intent ``plan``, the way this
API exports the medication list), each entry a ``POST``; entries point at a patient of the
same Bundle by its ``urn:uuid:`` fullUrl, or at one already here (``Patient/123``).

How: every resource is first validated as R4 (``fhir.resources``), then mapped onto the
registry's and charting's own work functions, so an imported record meets the rules a
typed one does: the registration's duplicate rule (a likely duplicate is refused for that
entry, never merged), ICD-10-CM billable codes, CVX codes, the vital signs' impossible
values, the dates a death allows. A ``transaction`` is one use case: every entry or none.
A ``batch`` runs each entry as its own use case and answers an OperationOutcome for each
one refused (vital signs taken together, the Observations of one patient at one instant,
are one set and one use case). Each change is audited by its work function, with the API
client as the actor; the import itself is one more event with its counts.

Decisions: the sender's MRN is not kept (the patient gets this clinic's MRN; the response's
``location`` gives the new id); imported immunizations are "historical" (this clinic did
not give them); BMI is recomputed from weight and height, not taken; a vital sign outside
the plausible range is stored (another clinic recorded it) but an impossible one is
refused; records marked entered in error, and a prescription (MedicationRequest with
intent ``order``), are refused.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from fhir.resources import get_fhir_model_class
from flask import current_app
from pydantic import ValidationError
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.charting.immunizations.services import ROUTES, SITES, add_immunization
from portal.charting.lists.services import (
    insert_allergy,
    insert_medication,
    insert_problem,
    state_no_known_allergies,
)
from portal.charting.vitals.services import MEASURES_BY_NAME, add_vitals
from portal.clinic.clock import clinic_today
from portal.dates import parse_date, parse_instant
from portal.fhir.bulk.responses import issue, outcome
from portal.patients.identifiers import normalise_phone
from portal.patients.models import Patient
from portal.patients.services import add_patient, get_patient_for, likely_duplicates
from portal.terminology.ucum import to_canonical
from portal.transaction import Refused, use_case

CATEGORY = "fhir"
IMPORTED_TYPES = (
    "Patient",
    "AllergyIntolerance",
    "Condition",
    "Immunization",
    "Observation",
    "MedicationStatement",
    "MedicationRequest",
)
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CVX = "http://hl7.org/fhir/sid/cvx"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
NO_KNOWN_ALLERGY = "716186003"  # SNOMED CT: No known allergy
BIRTH_SEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"

# LOINC code -> the measure of a vital signs set (charting/vitals MEASURES), and the part of
# the set's Observation id (``<set id>-<part>``, as the resource type names them).
VITAL_CODES = {
    "8480-6": "systolic",
    "8462-4": "diastolic",
    "8867-4": "heart_rate",
    "9279-1": "respiratory_rate",
    "8310-5": "temperature",
    "59408-5": "spo2",
    "2708-6": "spo2",
    "29463-7": "weight",
    "8302-2": "height",
    "72514-3": "pain_score",
    "9843-4": "head_circumference",
}
BP_PANEL = "85354-9"
BMI = "39156-5"
ID_PARTS = {
    "systolic": "bp",
    "diastolic": "bp",
    "heart_rate": "hr",
    "respiratory_rate": "rr",
    "temperature": "temp",
    "spo2": "spo2",
    "weight": "weight",
    "height": "height",
    "pain_score": "pain",  # not served as an Observation (not a FHIR vital sign)
    "head_circumference": "head",
}
# Units a measure may come in (UCUM), beyond its canonical one.
OTHER_UNITS = {"temperature": {"[degF]"}, "weight": {"[lb_av]", "g"}, "length": {"[in_i]"}}
CANONICAL_UNITS = {"temperature": "Cel", "weight": "kg", "length": "cm"}
# FHIR (v3 RouteOfAdministration and common short codes) -> the chart's routes.
IMMUNIZATION_ROUTES = {
    "IM": "IM",
    "SQ": "SC",
    "SC": "SC",
    "IDINJ": "ID",
    "ID": "ID",
    "PO": "PO",
    "NASINHL": "NS",
    "NASAL": "NS",
    "NS": "NS",
}
HTTP_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
}


class EntryRefused(Exception):
    """One entry cannot be imported: answered as an OperationOutcome with ``status``."""

    def __init__(self, text: str, *, status: int = 422, code: str = "processing", where=None):
        super().__init__(text)
        self.text = text
        self.status = status
        self.code = code
        self.where = where


@dataclass
class ImportResult:
    status: int
    body: dict


@dataclass
class _Entry:
    index: int
    full_url: str | None
    resource: dict
    problems: list[dict] = field(default_factory=list)
    # After the import: (status, location or None, OperationOutcome or None).
    response: tuple[int, str | None, dict | None] | None = None


def types_in(body) -> list[str]:
    """The resource types a Bundle's entries hold (for the scope check before anything)."""
    if not isinstance(body, dict) or not isinstance(body.get("entry"), list):
        return []
    found = []
    for entry in body["entry"]:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
            found.append(resource["resourceType"])
    return sorted(set(found))


def import_bundle(actor, body) -> ImportResult:
    """Import a ``transaction`` or ``batch`` Bundle; the answer's status and body."""
    shell = _check_shell(body)
    if shell is not None:
        return shell
    entries = [_read_entry(index, raw) for index, raw in enumerate(body.get("entry") or [])]
    if body["type"] == "transaction":
        return _transaction(actor, entries)
    return _batch(actor, entries)


def _check_shell(body) -> ImportResult | None:
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        return ImportResult(422, outcome(issue("error", "structure", "The body must be a Bundle.")))
    if body.get("type") not in ("transaction", "batch"):
        return ImportResult(
            422,
            outcome(
                issue(
                    "error",
                    "not-supported",
                    "Only transaction and batch Bundles are imported.",
                    "Bundle.type",
                )
            ),
        )
    shell = {key: value for key, value in body.items() if key != "entry"}
    problems = _validation_problems("Bundle", shell, "Bundle")
    if not isinstance(body.get("entry", []), list):
        problems.append(issue("error", "structure", "entry must be a list.", "Bundle.entry"))
    if problems:
        return ImportResult(422, outcome(*problems))
    return None


def _validation_problems(resource_type: str, resource: dict, where: str) -> list[dict]:
    """R4 validation by ``fhir.resources``: issues naming the element, never its value."""
    try:
        get_fhir_model_class(resource_type).parse_obj(resource)
    except ValidationError as error:
        return [
            issue(
                "error",
                "invalid",
                str(problem.get("msg", "invalid"))[:200],
                where
                + "".join(f".{part}" for part in problem.get("loc", ()) if part != "__root__"),
            )
            for problem in error.errors()[:20]
        ]
    except (TypeError, ValueError, KeyError):
        return [issue("error", "invalid", "Not a valid resource.", where)]
    return []


def _read_entry(index: int, raw) -> _Entry:
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("resource"), dict):
        entry = _Entry(index, None, {})
        entry.problems.append(issue("error", "required", "An entry needs a resource.", where))
        return entry
    resource = raw["resource"]
    entry = _Entry(index, raw.get("fullUrl"), resource)
    resource_type = resource.get("resourceType")
    request = raw.get("request") or {}
    if resource_type not in IMPORTED_TYPES:
        entry.problems.append(
            issue("error", "not-supported", "This resource type is not imported.", where)
        )
        return entry
    if request.get("method", "POST") != "POST":
        entry.problems.append(
            issue("error", "not-supported", "Only POST (create) entries are imported.", where)
        )
        return entry
    entry.problems = _validation_problems(resource_type, resource, f"{where}.resource")
    return entry


# --- transaction and batch ------------------------------------------------------------------


def _transaction(actor, entries: list[_Entry]) -> ImportResult:
    problems = [problem for entry in entries for problem in entry.problems]
    if problems:
        return ImportResult(422, outcome(*problems))
    try:
        with use_case():
            patients: dict[str, Patient] = {}
            _import_entries(actor, entries, patients, each_alone=False)
            _record_import(actor, "transaction", entries)
    except EntryRefused as refusal:
        return ImportResult(refusal.status, outcome(_refusal_issue(refusal)))
    except Refused as refusal:
        return ImportResult(refusal.status, outcome(_refused_issue(refusal, None)))
    return ImportResult(200, _response_bundle("transaction-response", entries))


def _batch(actor, entries: list[_Entry]) -> ImportResult:
    patients: dict[str, Patient] = {}
    for entry in entries:
        if entry.problems:
            entry.response = (422, None, outcome(*entry.problems))
    _import_entries(actor, [e for e in entries if not e.problems], patients, each_alone=True)
    with use_case():
        _record_import(actor, "batch", entries)
    return ImportResult(200, _response_bundle("batch-response", entries))


def _refusal_issue(refusal: EntryRefused) -> dict:
    return issue("error", refusal.code, refusal.text, refusal.where)


def _refused_issue(refusal: Refused, where: str | None) -> dict:
    # A work function's refusal names its form field; the entry is what the client knows.
    code = "duplicate" if refusal.status == 409 else "business-rule"
    return issue("error", code, refusal.message, where)


def _import_entries(actor, entries, patients, *, each_alone: bool) -> None:
    """Patients first (the others point at them), then the rest in the Bundle's order; the
    vital signs of one patient at one instant together, as one set."""
    ordered = [e for e in entries if e.resource["resourceType"] == "Patient"]
    ordered += [e for e in entries if e.resource["resourceType"] not in ("Patient", "Observation")]
    for entry in ordered:
        _run(actor, [entry], patients, each_alone, _import_one)
    sets: dict[tuple, list[_Entry]] = defaultdict(list)
    for entry in entries:
        if entry.resource["resourceType"] == "Observation":
            key = (
                _reference_of(entry.resource.get("subject")),
                entry.resource.get("effectiveDateTime"),
            )
            sets[key].append(entry)
    for group in sets.values():
        _run(actor, group, patients, each_alone, _import_vitals)


def _run(actor, group: list[_Entry], patients, each_alone: bool, work) -> None:
    """Run ``work`` for a group of entries: in the transaction's use case, or (batch) in one
    of its own, turning a refusal into each entry's OperationOutcome."""
    where = f"Bundle.entry[{group[0].index}]"
    if not each_alone:
        try:
            work(actor, group, patients)
        except EntryRefused as refusal:
            refusal.where = refusal.where or where
            raise
        except NotFound:
            raise EntryRefused(
                "The patient referred to is not here.", code="not-found", where=where
            ) from None
        except Refused as refusal:
            raise EntryRefused(
                refusal.message,
                status=refusal.status,
                code="duplicate" if refusal.status == 409 else "business-rule",
                where=where,
            ) from None
        return
    try:
        with use_case():
            work(actor, group, patients)
    except EntryRefused as refusal:
        refusal.where = refusal.where or where
        for entry in group:
            entry.response = (refusal.status, None, outcome(_refusal_issue(refusal)))
        _forget_patients(group, patients)
    except NotFound:
        for entry in group:
            entry.response = (
                422,
                None,
                outcome(issue("error", "not-found", "The patient referred to is not here.", where)),
            )
    except Refused as refusal:
        for entry in group:
            entry.response = (refusal.status, None, outcome(_refused_issue(refusal, where)))
        _forget_patients(group, patients)


def _forget_patients(group: list[_Entry], patients: dict) -> None:
    # A patient whose use case rolled back was never made: later entries must not use it.
    for entry in group:
        if entry.full_url in patients and entry.response and entry.response[0] >= 400:
            patients.pop(entry.full_url, None)


def _record_import(actor, bundle_type: str, entries: list[_Entry]) -> None:
    created = sum(1 for e in entries if e.response and e.response[0] < 400)
    refused = sum(1 for e in entries if e.response is None or e.response[0] >= 400)
    audit.record(
        actor,
        "fhir.import",
        category=CATEGORY,
        detail=f"{bundle_type}: {len(entries)} entries, {created} imported, {refused} refused",
    )


def _response_bundle(bundle_type: str, entries: list[_Entry]) -> dict:
    answered = []
    for entry in entries:
        status, location, entry_outcome = entry.response or (500, None, None)
        response = {"status": f"{status} {HTTP_REASONS.get(status, '')}".strip()}
        if location:
            response["location"] = location
        if entry_outcome:
            response["outcome"] = entry_outcome
        answered.append({"response": response})
    return {"resourceType": "Bundle", "type": bundle_type, "entry": answered}


# --- references -------------------------------------------------------------------------------


def _reference_of(value) -> str | None:
    return value.get("reference") if isinstance(value, dict) else None


def _patient_of(actor, resource: dict, patients: dict[str, Patient], element: str) -> Patient:
    """The patient an entry points at: one of this Bundle (``urn:uuid:``) or one here."""
    reference = _reference_of(resource.get(element))
    if not reference:
        raise EntryRefused(f"{element} must name the patient.", code="required")
    if reference.startswith("urn:uuid:"):
        patient = patients.get(reference)
        if patient is None:
            raise EntryRefused(
                "The patient referred to is not an imported entry of this Bundle.",
                code="not-found",
            )
        return patient
    kind, _, patient_id = reference.partition("/")
    if kind != "Patient" or not patient_id.isdigit() or len(patient_id) > 18:
        raise EntryRefused(f"{element} must be a Patient reference.", code="invalid")
    return get_patient_for(actor, int(patient_id))


# --- one resource ------------------------------------------------------------------------------


def _import_one(actor, group: list[_Entry], patients: dict[str, Patient]) -> None:
    entry = group[0]
    resource = entry.resource
    kind = resource["resourceType"]
    if kind == "Patient":
        patient = _import_patient(actor, resource)
        if entry.full_url:
            patients[entry.full_url] = patient
        entry.response = (201, f"Patient/{patient.id}", None)
        return
    element = "patient" if kind in ("AllergyIntolerance", "Immunization") else "subject"
    patient = _patient_of(actor, resource, patients, element)
    if kind == "AllergyIntolerance":
        location = _import_allergy(actor, patient, resource)
    elif kind == "Condition":
        location = _import_condition(actor, patient, resource)
    elif kind == "Immunization":
        location = _import_immunization(actor, patient, resource)
    else:
        location = _import_medication(actor, patient, resource)
    entry.response = (201, location, None)


def _text_of(concept) -> str | None:
    """A CodeableConcept's text, or its first coding's display."""
    if not isinstance(concept, dict):
        return None
    if concept.get("text"):
        return concept["text"]
    for coding in concept.get("coding") or []:
        if coding.get("display"):
            return coding["display"]
    return None


def _code_in(concept, system: str) -> str | None:
    for coding in (concept or {}).get("coding") or []:
        if coding.get("system") == system and coding.get("code"):
            return coding["code"]
    return None


def _status_code(concept) -> str | None:
    for coding in (concept or {}).get("coding") or []:
        if coding.get("code"):
            return coding["code"]
    return None


def _day(value: str | None, element: str) -> date | None:
    """The date part of a FHIR date or dateTime (a year or year-month alone is refused)."""
    if not value:
        return None
    day = parse_date(value[:10]) if len(value) >= 10 else None
    if day is None:
        raise EntryRefused(f"{element} must be a full date.", code="invalid", where=element)
    return day


def _not_in_error(resource: dict, status_element: str = "status") -> None:
    status = resource.get(status_element)
    if isinstance(status, dict):
        status = _status_code(status)
    if status == "entered-in-error":
        raise EntryRefused("A record entered in error is not imported.", code="business-rule")


def _import_patient(actor, resource: dict) -> Patient:
    names = resource.get("name") or []
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    family = (name.get("family") or "").strip()
    given = ((name.get("given") or [""])[0] or "").strip()
    if not family or not given:
        raise EntryRefused("A patient needs a family and a given name.", code="required")
    if len(family) > 100 or len(given) > 100:
        raise EntryRefused("Names are limited to 100 characters.", code="invalid")
    birth_date = _day(resource.get("birthDate"), "birthDate")
    if birth_date is None:
        raise EntryRefused("A patient needs a birth date.", code="required", where="birthDate")
    if birth_date > clinic_today():
        raise EntryRefused("The birth date cannot be in the future.", code="invalid")
    demographics = {
        "given_name": given,
        "family_name": family,
        "birth_date": birth_date,
        "sex_at_birth": _sex_at_birth(resource),
    }
    usual = next((n for n in names if n.get("use") == "usual" and n.get("given")), None)
    if usual and usual["given"][0] and usual["given"][0] != given:
        demographics["preferred_name"] = usual["given"][0][:100]
    demographics.update(_phones_and_email(resource))
    demographics.update(_address(resource))
    demographics.update(_contact_and_language(resource))
    if likely_duplicates(demographics):
        # The registration's rule: a person may already be registered. Refused for this
        # entry (never merged); which patients matched is not said.
        raise EntryRefused(
            "A patient with the same family name and birth date, or a shared phone number, is "
            "already registered: check the registry before importing this person.",
            status=409,
            code="duplicate",
        )
    return add_patient(actor, demographics, detail="imported (FHIR)")


def _sex_at_birth(resource: dict) -> str:
    for extension in resource.get("extension") or []:
        if extension.get("url") == BIRTH_SEX:
            return {"F": "female", "M": "male"}.get(extension.get("valueCode"), "unknown")
    return resource.get("gender") if resource.get("gender") in ("female", "male") else "unknown"


def _phones_and_email(resource: dict) -> dict:
    region = current_app.config.get("DEFAULT_PHONE_REGION", "US")
    found: dict = {}
    columns = {"mobile": "phone_mobile", "home": "phone_home", "work": "phone_work"}
    for contact in resource.get("telecom") or []:
        value = (contact.get("value") or "").strip()
        if not value:
            continue
        if contact.get("system") == "email":
            if len(value) > 254 or "@" not in value:
                raise EntryRefused("The e-mail address is not valid.", code="invalid")
            found.setdefault("email", value)
        elif contact.get("system") == "phone":
            number = normalise_phone(value, region)
            if number is None:
                raise EntryRefused("A phone number is not valid.", code="invalid")
            column = columns.get(contact.get("use"))
            if column is None or column in found:
                column = next((c for c in columns.values() if c not in found), None)
            if column is not None:
                found[column] = number
    return found


def _contact_and_language(resource: dict) -> dict:
    """The first contact (the emergency contact) and the preferred language, as text."""
    found = {}
    contacts = resource.get("contact") or []
    if contacts:
        contact = contacts[0]
        name = contact.get("name") or {}
        found["emergency_contact_name"] = (
            name.get("text") or " ".join([*(name.get("given") or []), name.get("family") or ""])
        ).strip()[:200] or None
        relationship = next(
            (r.get("text") for r in contact.get("relationship") or [] if r.get("text")), None
        )
        found["emergency_contact_relationship"] = (relationship or "")[:100] or None
        phone = next(
            (t.get("value") for t in contact.get("telecom") or [] if t.get("system") == "phone"),
            None,
        )
        if phone:
            number = normalise_phone(phone, current_app.config.get("DEFAULT_PHONE_REGION", "US"))
            if number is None:
                raise EntryRefused("The contact's phone number is not valid.", code="invalid")
            found["emergency_contact_phone"] = number
    for communication in resource.get("communication") or []:
        language = _text_of(communication.get("language"))
        if language and (communication.get("preferred") or "preferred_language" not in found):
            found["preferred_language"] = language[:50]
    return {name: value for name, value in found.items() if value}


def _address(resource: dict) -> dict:
    addresses = resource.get("address") or []
    if not addresses:
        return {}
    address = addresses[0]
    lines = address.get("line") or []
    values = {
        "address_line1": lines[0] if lines else None,
        "address_line2": lines[1] if len(lines) > 1 else None,
        "city": address.get("city"),
        "state": address.get("state"),
        "postal_code": address.get("postalCode"),
        "country": address.get("country") if len(address.get("country") or "") == 2 else None,
    }
    limits = {"postal_code": 20, "city": 100, "state": 100}
    for name, value in values.items():
        if value is not None and len(value) > limits.get(name, 200):
            raise EntryRefused("An address part is too long.", code="invalid")
    return {name: value for name, value in values.items() if value}


ALLERGY_KINDS = {
    "food": "food",
    "environment": "environmental",
    "medication": "drug",
    "biologic": "drug",
}
CLINICAL_STATUSES = {"active": "active", "inactive": "inactive", "resolved": "inactive"}


def _import_allergy(actor, patient: Patient, resource: dict) -> str:
    _not_in_error(resource, "verificationStatus")
    if _status_code(resource.get("verificationStatus")) == "refuted":
        raise EntryRefused("A refuted allergy is not imported.", code="business-rule")
    if _code_in(resource.get("code"), SNOMED) == NO_KNOWN_ALLERGY:
        # "No known allergies" is a statement of its own, never an allergy named so.
        recorded = parse_instant(resource.get("recordedDate"))
        state_no_known_allergies(actor, patient, recorded_at=recorded)
        return f"AllergyIntolerance/nka-{patient.id}"
    substance = _text_of(resource.get("code"))
    if not substance:
        raise EntryRefused("An allergy needs its substance.", code="required")
    categories = resource.get("category") or ["medication"]
    reaction = (resource.get("reaction") or [{}])[0]
    reactions = [
        text
        for manifestation in reaction.get("manifestation") or []
        if (text := _text_of(manifestation))
    ]
    values = {
        "substance_kind": ALLERGY_KINDS.get(categories[0], "drug"),
        "substance": substance[:200],
        "reactions": reactions,
        "severity": reaction.get("severity"),
        "criticality": {"unable-to-assess": "unable_to_assess"}.get(
            resource.get("criticality"), resource.get("criticality")
        ),
        "onset_date": _day(resource.get("onsetDateTime"), "onsetDateTime"),
        "status": CLINICAL_STATUSES.get(
            _status_code(resource.get("clinicalStatus")) or "active", "active"
        ),
        "comment": _note(resource),
    }
    allergy = insert_allergy(actor, patient, values)
    return f"AllergyIntolerance/{allergy.id}"


def _note(resource: dict) -> str | None:
    notes = [note.get("text") for note in resource.get("note") or [] if note.get("text")]
    return "\n".join(notes)[:1000] if notes else None


PROBLEM_STATUSES = {
    "active": "active",
    "recurrence": "active",
    "relapse": "active",
    "inactive": "inactive",
    "remission": "resolved",
    "resolved": "resolved",
}


def _import_condition(actor, patient: Patient, resource: dict) -> str:
    _not_in_error(resource, "verificationStatus")
    categories = {
        coding.get("code")
        for concept in resource.get("category") or []
        for coding in concept.get("coding") or []
    }
    if categories and "problem-list-item" not in categories:
        raise EntryRefused(
            "Only problem list items are imported (encounters are not).", code="not-supported"
        )
    code = _code_in(resource.get("code"), ICD10CM)
    if not code:
        raise EntryRefused("A condition needs an ICD-10-CM code.", code="required")
    onset = resource.get("onsetDateTime") or (resource.get("onsetPeriod") or {}).get("start")
    values = {
        "icd10_code": code,
        "onset_date": _day(onset, "onsetDateTime"),
        "status": PROBLEM_STATUSES.get(
            _status_code(resource.get("clinicalStatus")) or "active", "active"
        ),
        "comment": _note(resource),
    }
    problem = insert_problem(actor, patient, values)
    return f"Condition/{problem.id}"


def _import_immunization(actor, patient: Patient, resource: dict) -> str:
    _not_in_error(resource)
    cvx = _code_in(resource.get("vaccineCode"), CVX)
    if not cvx:
        raise EntryRefused("An immunization needs a CVX code.", code="required")
    occurred = _day(resource.get("occurrenceDateTime"), "occurrenceDateTime")
    if occurred is None:
        raise EntryRefused("An immunization needs its date.", code="required")
    refused = resource.get("status") == "not-done"
    site = _text_of(resource.get("site"))
    site = next((s for s in SITES if site and s.lower() == site.lower()), None)
    route_concept = resource.get("route") or {}
    route = IMMUNIZATION_ROUTES.get(_status_code(route_concept) or route_concept.get("text") or "")
    dose = None
    for applied in resource.get("protocolApplied") or []:
        dose = applied.get("doseNumberPositiveInt") or dose
    immunization = add_immunization(
        actor,
        patient,
        cvx_code=cvx,
        occurred_on=occurred,
        # Given elsewhere, whoever gave it: this clinic did not.
        source="historical",
        dose_number=dose,
        lot_number=(resource.get("lotNumber") or None),
        manufacturer=((resource.get("manufacturer") or {}).get("display") or None),
        site=site,
        route=route if route in ROUTES else None,
        refused=refused,
        refusal_reason=(_text_of(resource.get("statusReason")) or "Refused") if refused else None,
    )
    return f"Immunization/{immunization.id}"


MEDICATION_STATUSES = {
    "active": "active",
    "intended": "active",
    "on-hold": "active",
    # The list says "completed" when an entry's stop date passed without anyone stopping it.
    "completed": "active",
    "stopped": "stopped",
    "cancelled": "stopped",
    "not-taken": "stopped",
}


def _import_medication(actor, patient: Patient, resource: dict) -> str:
    _not_in_error(resource)
    is_request = resource["resourceType"] == "MedicationRequest"
    if is_request and resource.get("intent") != "plan":
        raise EntryRefused(
            "Prescriptions are not imported: send the medication list (intent plan) or "
            "MedicationStatement.",
            code="not-supported",
        )
    drug = _text_of(resource.get("medicationCodeableConcept"))
    if not drug:
        raise EntryRefused("A medication needs its name.", code="required")
    if is_request:
        period = (resource.get("dispenseRequest") or {}).get("validityPeriod") or {}
    else:
        period = resource.get("effectivePeriod") or {}
    dosage = (resource.get("dosage") or resource.get("dosageInstruction") or [{}])[0]
    route = (_text_of(dosage.get("route")) or "")[:100]
    # One text ("dose route frequency" as this API exports it): the route, given on its own
    # too, is taken out of it once, so it is not said twice when the entry is shown.
    words = (dosage.get("text") or "").split()
    if route and route in words:
        words.remove(route)
    status = MEDICATION_STATUSES.get(resource.get("status"), "active")
    values = {
        "drug": drug[:200],
        "dose": " ".join(words)[:200],
        "route": route,
        "start_date": _day(period.get("start"), "start"),
        "stop_date": _day(period.get("end"), "end"),
        "prescriber": ((resource.get("requester") or {}).get("display") or "")[:200],
        "source": "outside_record",
        "status": status,
        "stop_reason": (_text_of(resource.get("statusReason")) or "")[:500]
        if status == "stopped"
        else "",
    }
    medication = insert_medication(actor, patient, values)
    return f"{resource['resourceType']}/{medication.id}"


# --- vital signs ------------------------------------------------------------------------------


def _import_vitals(actor, group: list[_Entry], patients: dict[str, Patient]) -> None:
    """The Observations of one patient at one instant: one set of vital signs."""
    first = group[0].resource
    patient = _patient_of(actor, first, patients, "subject")
    taken_at = parse_instant(first.get("effectiveDateTime"))
    if taken_at is None:
        raise EntryRefused(
            "A vital sign needs effectiveDateTime with its time zone.", code="required"
        )
    entered: dict[str, float] = {}
    parts: dict[int, str] = {}
    for entry in group:
        resource = entry.resource
        _not_in_error(resource)
        if "vital-signs" not in {
            coding.get("code")
            for concept in resource.get("category") or []
            for coding in concept.get("coding") or []
        }:
            raise EntryRefused("Only vital signs Observations are imported.", code="not-supported")
        code = _code_in(resource.get("code"), LOINC)
        if code == BMI:
            parts[entry.index] = "bmi"  # recomputed from weight and height
            continue
        values = [(code, resource.get("valueQuantity"))]
        if code == BP_PANEL:
            values = [
                (_code_in(component.get("code"), LOINC), component.get("valueQuantity"))
                for component in resource.get("component") or []
            ]
        for value_code, quantity in values:
            name = VITAL_CODES.get(value_code or "")
            if name is None:
                raise EntryRefused(
                    "This vital sign's code is not one kept here.", code="not-supported"
                )
            entered[name] = _canonical_value(name, quantity)
            parts[entry.index] = ID_PARTS[name]
    if not entered:
        raise EntryRefused("No vital sign to record.", code="required")
    vitals = add_vitals(
        actor,
        patient,
        entered,
        taken_at=taken_at,
        # Recorded elsewhere and accepted there: an unusual value is kept, an impossible one
        # is still refused.
        confirmed=True,
        units=CANONICAL_UNITS,
    )
    for entry in group:
        entry.response = (201, f"Observation/{vitals.id}-{parts[entry.index]}", None)


def _canonical_value(name: str, quantity) -> float:
    measure = MEASURES_BY_NAME[name]
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        raise EntryRefused("A vital sign needs valueQuantity.", code="required")
    value = float(quantity["value"])
    unit = quantity.get("code") or quantity.get("unit")
    if measure.quantity is None:
        if unit not in (measure.unit, None):
            raise EntryRefused(f"{measure.label} is taken in {measure.unit}.", code="invalid")
        return value
    if unit == CANONICAL_UNITS[measure.quantity]:
        return value
    if unit == "g":
        return value / 1000
    if unit in OTHER_UNITS[measure.quantity]:
        return to_canonical(value, unit)
    raise EntryRefused(f"{measure.label}: the unit is not one kept here.", code="invalid")
