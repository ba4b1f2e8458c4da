"""``Patient/{id}/$everything`` narrowed: ``start`` / ``end`` (dates of care) and ``_since``
(last changed), over the real resource types and the demo clinic's charts.

A type's care date is the date its own search reads (``care_date``): ``$everything`` with a
range must give exactly what searching each type for that patient and range gives.
"""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from portal.charting.models import Medication
from portal.extensions import db
from portal.fhir.resources import RESOURCE_TYPES
from portal.timeutil import utcnow
from tests.fhir.api_support import api_headers
from tests.fhir.resources import records


@pytest.fixture
def seeded(app):
    return records.seed_records(app)


def _everything(client, headers, patient: int, query: str = "") -> list[tuple[str, str]]:
    response = client.get(f"/fhir/Patient/{patient}/$everything{query}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    bundle = json.loads(response.get_data(as_text=True))
    return [
        (e["resource"]["resourceType"], e["resource"]["id"])
        for e in bundle["entry"]
        if e["search"]["mode"] == "match"
    ]


def _searched(client, headers, path: str) -> set[tuple[str, str]]:
    found = set()
    while path:
        bundle = client.get(path, headers=headers).get_json(force=True)
        found |= {
            (e["resource"]["resourceType"], e["resource"]["id"])
            for e in bundle.get("entry", [])
            if e["search"]["mode"] == "match"
        }
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        path = None
        if following:
            parts = urlsplit(following[0])
            path = f"{parts.path}?{parts.query}"
    return found


def test_start_and_end_keep_what_each_types_date_search_keeps(app, seeded):
    client, headers = app.test_client(), api_headers(app)
    patient = seeded.full
    whole = _everything(client, headers, patient)
    start = (utcnow() - timedelta(days=4)).date().isoformat()
    end = (utcnow() - timedelta(days=1)).date().isoformat()
    narrowed = _everything(client, headers, patient, f"?start={start}&end={end}")
    assert narrowed[0] == ("Patient", str(patient))  # the subject, always first
    expected = set()
    for name, spec in RESOURCE_TYPES.items():
        care = getattr(spec, "care_date", None)
        if care is None:
            continue
        expected |= _searched(
            client, headers, f"/fhir/{name}?patient={patient}&{care}=ge{start}&{care}=le{end}"
        )
    assert set(narrowed[1:]) == expected
    # It did narrow: the record has more than that range, and that range holds something.
    assert expected and len(narrowed) < len(whole)
    assert ("Encounter", str(_visit_of(app, patient))) in narrowed


def _visit_of(app, patient: int) -> int:
    """A visit of three days ago (``records``: the telehealth, phone and office visits)."""
    from portal.charting.models import Encounter

    with app.app_context():
        return db.session.scalar(
            select(Encounter.id)
            .where(Encounter.patient_id == patient, Encounter.kind == "telehealth")
            .order_by(Encounter.id.desc())
        )


def test_start_alone_and_end_alone_are_open_ranges(app, seeded):
    client, headers = app.test_client(), api_headers(app)
    patient = seeded.full
    whole = set(_everything(client, headers, patient))
    later = (utcnow() + timedelta(days=400)).date().isoformat()
    # Nothing dated after next year; everything dated before it.
    assert _everything(client, headers, patient, f"?start={later}") == [("Patient", str(patient))]
    before = set(_everything(client, headers, patient, f"?end={later}"))
    undated = {kind for kind, spec in RESOURCE_TYPES.items() if not getattr(spec, "care_date", 1)}
    assert before == {item for item in whole if item[0] not in undated} | {
        ("Patient", str(patient))
    }
    # A year reads as the whole year, as a date search's does.
    year = utcnow().year + 2
    assert _everything(client, headers, patient, f"?start={year}") == [("Patient", str(patient))]


def test_since_keeps_what_changed_after_it(app, seeded):
    client, headers = app.test_client(), api_headers(app)
    patient = seeded.full
    with app.app_context():
        medication = db.session.scalar(
            select(Medication.id).where(Medication.patient_id == patient).order_by(Medication.id)
        )
        db.session.execute(
            update(Medication)
            .where(Medication.id == medication)
            .values(updated_at=utcnow() + timedelta(hours=2))
        )
        db.session.commit()
    since = (utcnow() + timedelta(hours=1)).isoformat(timespec="seconds").replace("+00:00", "Z")
    found = _everything(client, headers, patient, f"?_since={since}")
    assert found == [("Patient", str(patient)), ("MedicationRequest", str(medication))]
    # Long ago: the whole record.
    assert _everything(client, headers, patient, "?_since=2000-01-01T00:00:00Z") == (
        _everything(client, headers, patient)
    )


@pytest.mark.parametrize(
    "query, parameter",
    [
        ("?start=2024-13", "start"),
        ("?start=ge2024-01-01", "start"),
        ("?end=yesterday", "end"),
        ("?end=2024-02-30", "end"),
        ("?_since=2024-01-01", "_since"),  # no offset: not an instant
        ("?_since=2024-01-01T00:00:00", "_since"),
    ],
)
def test_malformed_ranges_are_refused_naming_the_parameter(app, seeded, query, parameter):
    response = app.test_client().get(
        f"/fhir/Patient/{seeded.full}/$everything{query}", headers=api_headers(app)
    )
    assert response.status_code == 400
    outcome = response.get_json(force=True)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == [parameter]


def test_other_parameters_are_reported_or_refused_under_strict_handling(app, seeded):
    client, headers = app.test_client(), api_headers(app)
    path = f"/fhir/Patient/{seeded.full}/$everything?_count=10&start=2020"
    bundle = json.loads(client.get(path, headers=headers).get_data(as_text=True))
    outcomes = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert [issue["expression"] for issue in outcomes[0]["issue"]] == [["_count"]]
    strict = client.get(path, headers={**headers, "Prefer": "handling=strict"})
    assert strict.status_code == 400


def test_the_capability_statement_lists_the_parameters(app):
    statement = app.test_client().get("/fhir/metadata").get_json(force=True)
    (patient,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "Patient"]
    (operation,) = [o for o in patient["operation"] if o["name"] == "everything"]
    for name in ("start", "end", "_since", "_type"):
        assert name in operation["documentation"]
