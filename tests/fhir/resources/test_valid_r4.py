"""Every resource the clinical resource types emit is valid FHIR R4 (fhir.resources 6.4),
for every kind of patient the demo seeds and every state a row can be in."""

from __future__ import annotations

from collections import Counter

import pytest
from fhir.resources import get_fhir_model_class

from portal.fhir.resources import RESOURCE_TYPES
from tests.fhir.resources.records import seed_records

CLINICAL_TYPES = (
    "Encounter",
    "Condition",
    "AllergyIntolerance",
    "Immunization",
    "Observation",
    "Appointment",
    "DocumentReference",
    "MedicationRequest",
)


def _validate(resource: dict) -> None:
    model = get_fhir_model_class(resource["resourceType"])
    parsed = model.parse_obj(resource)
    # Nothing dropped on the way: what we emit is what the model holds.
    assert parsed.dict(exclude_none=True)["id"] == resource["id"]


@pytest.fixture
def records(app):
    return seed_records(app)


def test_the_clinical_types_are_registered():
    for name in CLINICAL_TYPES:
        assert RESOURCE_TYPES[name].type == name


def test_every_resource_of_every_seeded_patient_is_valid_r4(app, records):
    seen = Counter()
    statuses = Counter()
    with app.app_context():
        for patient in records.patients:
            for name in CLINICAL_TYPES:
                for resource in RESOURCE_TYPES[name].for_patient(patient):
                    assert resource["resourceType"] == name
                    _validate(resource)
                    seen[name] += 1
                    statuses[(name, resource.get("status"))] += 1
                    # Read by its id gives the same resource.
                    assert RESOURCE_TYPES[name].read(resource["id"]) == resource
    assert all(seen[name] for name in CLINICAL_TYPES), seen
    # The states the records put rows in all came out.
    for expected in (
        ("Observation", "entered-in-error"),
        ("Immunization", "not-done"),
        ("Immunization", "entered-in-error"),
        ("MedicationRequest", "stopped"),
        ("MedicationRequest", "completed"),
        ("MedicationRequest", "entered-in-error"),
        ("MedicationRequest", "draft"),
        ("MedicationRequest", "cancelled"),
        ("Appointment", "noshow"),
        ("Appointment", "fulfilled"),
        ("Appointment", "checked-in"),
        ("Encounter", "finished"),
    ):
        assert statuses[expected], expected


def test_the_whole_export_is_valid_r4_and_agrees_with_each_patients_record(app, records):
    with app.app_context():
        for name in CLINICAL_TYPES:
            spec = RESOURCE_TYPES[name]
            exported = list(spec.stream(None, None))
            for resource in exported:
                _validate(resource)
            by_patient = [
                resource for patient in records.patients for resource in spec.for_patient(patient)
            ]
            assert sorted(r["id"] for r in exported) == sorted(r["id"] for r in by_patient)
            assert len({r["id"] for r in exported}) == len(exported)
            # Export limited to some patients gives theirs only.
            some = list(spec.stream(None, [records.full]))
            assert some == list(spec.for_patient(records.full))


def _references(value, found: list[str]) -> list[str]:
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            found.append(value["reference"])
        for item in value.values():
            _references(item, found)
    elif isinstance(value, list):
        for item in value:
            _references(item, found)
    return found


def test_references_between_the_clinical_resources_resolve(app, records):
    """An Encounter's diagnoses, a document's visit, an addendum's note, a vital sign's
    visit: every reference to a clinical type names a resource that is served."""
    with app.app_context():
        checked = 0
        for patient in records.patients:
            for name in CLINICAL_TYPES:
                for resource in RESOURCE_TYPES[name].for_patient(patient):
                    for target in _references(resource, []):
                        kind, _, fhir_id = target.partition("/")
                        if kind == "Patient":
                            assert fhir_id == str(patient)
                        elif kind in CLINICAL_TYPES:
                            assert RESOURCE_TYPES[kind].read(fhir_id) is not None, target
                            checked += 1
                        else:
                            assert kind in ("Practitioner", "Location", "Organization"), target
        assert checked
