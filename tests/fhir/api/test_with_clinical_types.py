"""The HTTP layer over the real clinical resource types and the demo clinic's charts: every
patient's ``$everything`` is valid R4 and every reference in it resolves through the API;
every type pages through its next links (with each ``_include`` it offers) to as many
resources as ``_summary=count`` says.
"""

from __future__ import annotations

import importlib
import json
from urllib.parse import urlsplit

from portal.fhir.resources import RESOURCE_TYPES
from tests.fhir.api_support import api_headers
from tests.fhir.resources import records
from tests.support.audit import audit_events


def _validate(resource: dict) -> None:
    name = resource["resourceType"]
    module = importlib.import_module(f"fhir.resources.{name.lower()}")
    getattr(module, name).parse_obj(resource)


def _references(value, found: set[str]) -> set[str]:
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            found.add(value["reference"])
        for item in value.values():
            _references(item, found)
    elif isinstance(value, list):
        for item in value:
            _references(item, found)
    return found


def _local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_every_patients_everything_is_valid_and_its_references_resolve(app):
    seeded = records.seed_records(app)
    client = app.test_client()
    headers = api_headers(app)
    for patient in seeded.patients:
        response = client.get(f"/fhir/Patient/{patient}/$everything", headers=headers)
        assert response.status_code == 200
        bundle = json.loads(response.get_data(as_text=True))
        references: set[str] = set()
        for entry in bundle["entry"]:
            _validate(entry["resource"])
            _references(entry["resource"], references)
        assert len({e["resource"]["resourceType"] for e in bundle["entry"]}) > 3
        for reference in sorted(references):
            assert client.get(f"/fhir/{reference}", headers=headers).status_code == 200, reference
    events = audit_events(app, "fhir.everything")
    assert sorted(e.patient_id for e in events) == sorted(seeded.patients)


def test_every_type_pages_to_its_count_with_its_includes(app):
    records.seed_records(app)
    client = app.test_client()
    headers = api_headers(app)
    for name, spec in sorted(RESOURCE_TYPES.items()):
        includes = "".join(f"&_include={value}" for value in spec.includes)
        path, matches = f"/fhir/{name}?_count=7{includes}", []
        while path:
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.get_data(as_text=True)[:300])
            bundle = response.get_json(force=True)
            for entry in bundle.get("entry", []):
                _validate(entry["resource"])
                if entry["search"]["mode"] == "match":
                    matches.append(entry["resource"]["id"])
            following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
            path = _local(following[0]) if following else None
        total = client.get(f"/fhir/{name}?_summary=count", headers=headers).get_json(force=True)
        assert len(matches) == len(set(matches)) == total["total"], name
