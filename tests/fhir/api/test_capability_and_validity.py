"""What the server says about itself, and that every resource of the HTTP layer's types is
valid FHIR R4 (``fhir.resources``, 4.0.1) for every kind of registry row, not one example."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlsplit

import pytest
from fhir.resources.bundle import Bundle
from fhir.resources.capabilitystatement import CapabilityStatement
from fhir.resources.location import Location
from fhir.resources.operationoutcome import OperationOutcome
from fhir.resources.organization import Organization
from fhir.resources.patient import Patient
from fhir.resources.practitioner import Practitioner

from portal.demo.patients import seed_patients
from portal.fhir.capability import OAUTH_URIS
from tests.fhir.api.helpers import add_patients
from tests.fhir.api_support import api_headers

VALIDATORS = {
    "Patient": Patient,
    "Practitioner": Practitioner,
    "Organization": Organization,
    "Location": Location,
    "OperationOutcome": OperationOutcome,
}

# Every shape a registry row takes: bare, complete, renamed, inactive, deceased with and
# without a date, unknown sex, names with accents, quotes and markup.
PATIENT_KINDS = {
    "bare": {},
    "complete": {
        "preferred_name": "Addie",
        "gender_identity": "woman",
        "pronouns": "she/her",
        "phone_mobile": "+14155550123",
        "phone_home": "+14155550124",
        "phone_work": "+14155550125",
        "email": "ada@example.org",
        "address_line1": "1 Analytical Way",
        "address_line2": "Apt 2",
        "city": "London",
        "state": "CA",
        "postal_code": "94110",
        "country": "US",
        "preferred_language": "English",
        "emergency_contact_name": "Charles Babbage",
        "emergency_contact_relationship": "friend",
        "emergency_contact_phone": "+14155550126",
        "insurance_payer": "Acme",
        "insurance_member_id": "X1",
    },
    "inactive": {"status": "inactive"},
    "deceased_dated": {"status": "deceased", "deceased_date": date(2020, 5, 1)},
    "deceased_undated": {"status": "deceased"},
    "unknown_sex": {"sex_at_birth": "unknown"},
    "emergency_contact_only_name": {"emergency_contact_name": "Someone"},
    "city_only": {"city": "Springfield"},
}


def test_the_capability_statement_is_public_valid_and_says_what_is_served(app):
    response = app.test_client().get("/fhir/metadata")
    assert response.status_code == 200
    assert response.mimetype == "application/fhir+json"
    assert "Set-Cookie" not in response.headers
    body = response.get_json(force=True)
    statement = CapabilityStatement.parse_obj(body)
    assert statement.fhirVersion == "4.0.1" and statement.format == ["json"]
    [rest] = body["rest"]
    assert rest["mode"] == "server"
    assert rest["security"]["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    [oauth] = [e for e in rest["security"]["extension"] if e["url"] == OAUTH_URIS]
    assert oauth["extension"][0]["url"] == "token"
    assert oauth["extension"][0]["valueUri"].endswith("/fhir/auth/token")
    types = {resource["type"]: resource for resource in rest["resource"]}
    assert {"Patient", "Practitioner", "Organization", "Location"} <= set(types)
    patient = types["Patient"]
    assert {i["code"] for i in patient["interaction"]} == {"read", "search-type"}
    params = {p["name"]: p["type"] for p in patient["searchParam"]}
    assert params == {
        "_id": "token",
        "identifier": "token",
        "name": "string",
        "family": "string",
        "given": "string",
        "birthdate": "date",
        "gender": "token",
        "phone": "token",
    }
    # $everything; "export" too once the bulk routes are there (listed only if served).
    assert "everything" in [o["name"] for o in patient["operation"]]
    assert types["Location"]["searchInclude"] == ["Location:organization"]


def test_smart_configuration(app):
    response = app.test_client().get("/fhir/.well-known/smart-configuration")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert body["token_endpoint"].endswith("/fhir/auth/token")
    assert "client_credentials" in body["grant_types_supported"]
    assert "private_key_jwt" in body["token_endpoint_auth_methods_supported"]


@pytest.mark.parametrize("kind", sorted(PATIENT_KINDS))
def test_every_kind_of_patient_is_valid_r4(app, kind):
    columns = dict(PATIENT_KINDS[kind])
    sex = columns.pop("sex_at_birth", "female")
    given = "Zoë 'O\"<script>alert(1)</script>"
    [patient_id] = add_patients(
        app, (given, "Łukasiewicz", date(1950, 2, 28)), sex_at_birth=sex, **columns
    )
    response = app.test_client().get(f"/fhir/Patient/{patient_id}", headers=api_headers(app))
    body = response.get_json(force=True)
    Patient.parse_obj(body)
    assert body["name"][0]["given"] == [given]  # data, sent as data (JSON escapes it)
    if kind == "deceased_dated":
        assert body["deceasedDateTime"] == "2020-05-01"
    if kind == "deceased_undated":
        assert body["deceasedBoolean"] is True
    if kind == "inactive":
        assert body["active"] is False


def test_every_directory_resource_and_search_bundle_is_valid_r4(app):
    add_patients(app, ("Ada", "Lovelace", date(1815, 12, 10)))
    client = app.test_client()
    headers = api_headers(app)
    for resource_type in ("Patient", "Practitioner", "Organization", "Location"):
        response = client.get(f"/fhir/{resource_type}?shoe-size=1", headers=headers)
        body = response.get_json(force=True)
        Bundle.parse_obj(body)
        assert body["entry"], resource_type
        for entry in body["entry"]:
            resource = entry["resource"]
            VALIDATORS[resource["resourceType"]].parse_obj(resource)
    for path in ("/fhir/Patient/999999", "/fhir/Patient?birthdate=x"):
        OperationOutcome.parse_obj(client.get(path, headers=headers).get_json(force=True))


def test_every_demo_patient_read_page_by_page_is_valid_r4(app):
    """The demo clinic's registry (what ``flask seed-demo`` makes), walked through the API
    with the next links: every Patient validates, each appears once."""
    with app.app_context():
        seeded = seed_patients(300, seed=7)
    client = app.test_client()
    headers = api_headers(app)
    path, seen = "/fhir/Patient?_count=120", []
    while path:
        bundle = client.get(path, headers=headers).get_json(force=True)
        Bundle.parse_obj(bundle)
        for entry in bundle["entry"]:
            Patient.parse_obj(entry["resource"])
            seen.append(entry["resource"]["id"])
        [path] = [_local(link["url"]) for link in bundle["link"] if link["relation"] == "next"] or [
            None
        ]
    assert len(seen) == len(set(seen)) == seeded


def _local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"
