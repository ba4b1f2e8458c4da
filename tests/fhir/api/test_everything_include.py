"""``_include`` and ``Patient/{id}/$everything``, on a stand-in clinical type (the real
ones come from the resource modules; the HTTP layer does not depend on which)."""

from __future__ import annotations

import json
from datetime import date

import pytest
from fhir.resources.bundle import Bundle
from sqlalchemy import select

from portal.auth.models import User
from portal.clinic.models import Location
from portal.extensions import db
from portal.fhir.resources import RESOURCE_TYPES
from portal.fhir.services import patient_ids_of
from portal.fhir.spec import Gone
from portal.transaction import Refused
from tests.fhir.api.helpers import VisitSpec, add_patients
from tests.fhir.api_support import api_headers
from tests.support.audit import audit_events


@pytest.fixture
def visits(app, monkeypatch):
    """Two patients; three visits of Ada's and one of Bea's, with drlee at a location."""
    ada, bea = add_patients(
        app, ("Ada", "Lovelace", date(1815, 12, 10)), ("Bea", "Other", date(1990, 1, 1))
    )
    with app.app_context():
        drlee = db.session.scalar(select(User.id).where(User.username == "drlee"))
        location = db.session.scalar(select(Location.id).order_by(Location.id).limit(1))
    rows = [(1, ada, drlee, location), (2, ada, drlee, location), (3, bea, drlee, location)]
    rows.append((4, ada, drlee, location))
    monkeypatch.setitem(RESOURCE_TYPES, "Encounter", VisitSpec(rows))
    return ada, bea, drlee, location


def _entries(bundle, mode):
    return [
        (e["resource"]["resourceType"], e["resource"]["id"])
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == mode
    ]


def test_include_adds_each_referenced_resource_once_and_audits_each_patient(app, visits):
    ada, bea, drlee, _ = visits
    response = app.test_client().get(
        "/fhir/Encounter?_include=Encounter:patient&_include=Encounter:practitioner",
        headers=api_headers(app),
    )
    bundle = response.get_json(force=True)
    assert _entries(bundle, "match") == [("Encounter", str(n)) for n in (1, 2, 3, 4)]
    assert sorted(_entries(bundle, "include")) == sorted(
        [("Patient", str(ada)), ("Patient", str(bea)), ("Practitioner", str(drlee))]
    )
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"].endswith(f"/fhir/{resource['resourceType']}/{resource['id']}")
    events = audit_events(app, "fhir.search")
    assert sorted(e.patient_id for e in events) == sorted([ada, bea])  # one each
    assert {e.detail for e in events} == {"types=Encounter,Patient"}


def test_include_leaves_out_types_the_token_does_not_cover(app, visits):
    headers = api_headers(app, scopes=["system/Encounter.read"])
    bundle = (
        app.test_client()
        .get("/fhir/Encounter?_include=Encounter:patient", headers=headers)
        .get_json(force=True)
    )
    assert _entries(bundle, "include") == []
    assert len(_entries(bundle, "match")) == 4


def test_search_by_reference_through_the_spec(app, visits):
    ada, *_ = visits
    bundle = (
        app.test_client()
        .get(f"/fhir/Encounter?patient=Patient/{ada}&_count=2", headers=api_headers(app))
        .get_json(force=True)
    )
    assert _entries(bundle, "match") == [("Encounter", "1"), ("Encounter", "2")]
    assert any(link["relation"] == "next" for link in bundle["link"])


def test_everything_is_the_whole_record_with_the_directory_it_points_at(app, visits):
    ada, _, drlee, location = visits
    response = app.test_client().get(f"/fhir/Patient/{ada}/$everything", headers=api_headers(app))
    assert response.status_code == 200
    assert response.mimetype == "application/fhir+json"
    bundle = json.loads(response.get_data(as_text=True))  # streamed, still one JSON document
    Bundle.parse_obj(bundle)
    assert bundle["type"] == "searchset"
    matches = _entries(bundle, "match")
    assert matches[0] == ("Patient", str(ada))
    assert matches[1:] == [("Encounter", "1"), ("Encounter", "2"), ("Encounter", "4")]
    assert bundle["total"] == 4
    assert sorted(_entries(bundle, "include")) == [
        ("Location", str(location)),
        ("Practitioner", str(drlee)),
    ]
    [event] = audit_events(app, "fhir.everything")
    # The types the client may read, recorded before the record is streamed.
    assert event.patient_id == ada
    assert {"Encounter", "Patient"} <= set(event.detail.removeprefix("types=").split(","))
    assert event.username == "api:Test client"


def test_everything_with_a_narrow_token_and_for_nobody(app, visits):
    ada, *_ = visits
    client = app.test_client()
    narrow = api_headers(app, scopes=["system/Patient.read"])
    bundle = client.get(f"/fhir/Patient/{ada}/$everything", headers=narrow).get_json(force=True)
    assert _entries(bundle, "match") == [("Patient", str(ada))]
    assert _entries(bundle, "include") == []
    response = client.get("/fhir/Patient/987654/$everything", headers=api_headers(app))
    assert response.status_code == 404
    assert response.get_json(force=True)["resourceType"] == "OperationOutcome"
    no_patients = api_headers(app, scopes=["system/Encounter.read"])
    assert client.get(f"/fhir/Patient/{ada}/$everything", headers=no_patients).status_code == 403
    strict = {**api_headers(app), "Prefer": "handling=strict"}
    assert (
        client.get(f"/fhir/Patient/{ada}/$everything?_count=5", headers=strict).status_code == 400
    )
    assert len(audit_events(app, "fhir.everything")) == 1


class _Refusing:
    """A type whose rows are gone (410) or which refuses what it is asked (422)."""

    type = "Basic"
    search_params: dict = {}
    includes: dict = {}

    def read(self, fhir_id):
        if fhir_id == "1":
            raise Gone()
        raise Refused("This record cannot be shared.")


def test_gone_is_410_and_a_refusal_is_422(app, monkeypatch):
    monkeypatch.setitem(RESOURCE_TYPES, "Basic", _Refusing())
    client = app.test_client()
    headers = api_headers(app)
    response = client.get("/fhir/Basic/1", headers=headers)
    assert response.status_code == 410
    assert response.get_json(force=True)["issue"][0]["code"] == "deleted"
    response = client.get("/fhir/Basic/2", headers=headers)
    assert response.status_code == 422
    assert (
        response.get_json(force=True)["issue"][0]["diagnostics"] == "This record cannot be shared."
    )


def test_everything_narrowed_by_type_and_reporting_what_it_ignored(app, visits):
    ada, *_ = visits
    client = app.test_client()
    headers = api_headers(app)
    bundle = client.get(
        f"/fhir/Patient/{ada}/$everything?_type=Patient&_since=2020-01-01T00:00:00Z&_count=1",
        headers=headers,
    ).get_json(force=True)
    assert _entries(bundle, "match") == [("Patient", str(ada))]
    [outcome] = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert [issue["expression"] for issue in outcome["issue"]] == [["_count"]]
    Bundle.parse_obj(bundle)


def test_a_patient_named_anywhere_in_a_resource_is_audited():
    """An Appointment names its patient among its participants, not in ``subject``."""
    appointment = {
        "resourceType": "Appointment",
        "id": "5",
        "participant": [
            {"actor": {"reference": "Patient/12"}},
            {"actor": {"reference": "Practitioner/3"}},
        ],
    }
    assert patient_ids_of(appointment) == {12}
    assert patient_ids_of({"resourceType": "Patient", "id": "7"}) == {7}
    assert patient_ids_of({"resourceType": "Location", "id": "1"}) == set()


class _Broken(_Refusing):
    def read(self, fhir_id):
        raise RuntimeError("a bug with Patient data in its message")


def test_a_server_error_is_an_operation_outcome_that_says_nothing_of_it(app, monkeypatch):
    monkeypatch.setitem(RESOURCE_TYPES, "Basic", _Broken())
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as served: the error handler answers
    response = app.test_client().get("/fhir/Basic/1", headers=api_headers(app))
    assert response.status_code == 500
    body = response.get_json(force=True)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "exception"
    assert "Patient data" not in response.get_data(as_text=True)
