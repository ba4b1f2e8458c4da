"""Round trip: export a patient's record, import it into a fresh database, export again: the
clinical content is the same.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from portal import create_app
from portal.actors import Actor
from portal.charting.immunizations.services import record_immunization
from portal.charting.lists.services import add_allergy, add_medication, add_problem
from portal.charting.vitals.services import record_vitals
from portal.extensions import db
from portal.fhir.resources import RESOURCE_TYPES
from portal.patients.services import register_patient
from tests.fhir.bulk.helpers import give_token, run_exports
from tests.support.database import fresh_database, seed_baseline

CLINICAL = ("AllergyIntolerance", "Condition", "Immunization", "Observation", "MedicationRequest")
NEEDED = ("Patient", *CLINICAL)
ASYNC = {"Prefer": "respond-async"}


def _chart(app) -> int:
    """One patient with something of every kind the import takes."""
    actor = Actor(id=None, username="test", source="test")
    with app.app_context():
        patient = register_patient(
            actor,
            {
                "given_name": "Rosa",
                "family_name": "Delgado",
                "birth_date": date(1961, 3, 9),
                "sex_at_birth": "female",
                "phone_mobile": "+14135550177",
            },
        )
        add_allergy(
            actor,
            patient.id,
            {"substance_kind": "food", "substance": "Shellfish", "reactions": ["Hives"]},
        )
        add_problem(actor, patient.id, {"icd10_code": "I10", "onset_date": date(2015, 5, 1)})
        add_medication(actor, patient.id, {"drug": "Lisinopril 10 mg tablet", "dose": "10 mg"})
        record_immunization(
            actor, patient.id, cvx_code="115", occurred_on=date(2022, 9, 1), source="historical"
        )
        record_vitals(
            actor,
            patient.id,
            {"systolic": 132, "diastolic": 84, "heart_rate": 71, "weight": 150.0},
            taken_at=datetime.now(UTC) - timedelta(days=3),
        )
        db.session.remove()
        return patient.id


def _export(app, client, token) -> dict[str, list[dict]]:
    """Every exported resource, by type, through the bulk API."""
    kick = client.get("/fhir/$export", headers={**ASYNC, **token})
    assert kick.status_code == 202
    run_exports(app)
    manifest = client.get(kick.headers["Content-Location"], headers=token).get_json()
    found = {}
    for output in manifest["output"]:
        text = client.get(output["url"], headers=token).get_data(as_text=True)
        found[output["type"]] = [json.loads(line) for line in text.splitlines()]
    return found


def _as_bundle(exported: dict[str, list[dict]]) -> dict:
    """A transaction of the exported patient and the clinical resources that import takes,
    references turned into the Bundle's own ``urn:uuid:`` fullUrls."""
    (patient,) = exported["Patient"]
    url = "urn:uuid:5d1f0c3e-0000-4000-8000-00000000a11e"
    entries = [{"fullUrl": url, "resource": _bare(patient), "request": {"method": "POST"}}]
    for kind in CLINICAL:
        for resource in exported.get(kind, []):
            if kind == "Observation" and resource["code"]["coding"][0]["code"] == "39156-5":
                continue  # BMI: recomputed on import
            if kind == "MedicationRequest" and resource.get("intent") != "plan":
                continue  # a prescription: not imported
            if kind == "Condition" and resource["id"].startswith("dx-"):
                continue  # a visit's diagnosis: visits are not imported
            if kind == "AllergyIntolerance" and resource["id"].startswith("nka-"):
                pass  # "no known allergies": imported as the statement
            copy = json.loads(
                json.dumps(resource).replace(f'"Patient/{patient["id"]}"', f'"{url}"')
            )
            entries.append({"resource": _bare(copy), "request": {"method": "POST"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


IGNORED = {"id", "meta", "identifier", "text", "encounter", "recorder", "asserter", "performer"}


def _bare(resource: dict) -> dict:
    return {key: value for key, value in resource.items() if key not in IGNORED}


def _clinical_content(exported: dict[str, list[dict]]) -> dict[str, list[str]]:
    """What must survive the trip: each resource without ids, references, who recorded it
    and what a clinic assigns (MRN, the primary source of an immunization given elsewhere)."""
    content = {}
    for kind, resources in exported.items():
        if kind not in NEEDED:
            continue
        bare = []
        for resource in resources:
            kept = _bare(resource)
            for key in (
                "subject",
                "patient",
                "primarySource",
                "recorded",
                "recordedDate",
                "authoredOn",
            ):
                kept.pop(key, None)
            # The list's dosage is one text (dose route frequency): its words survive the
            # trip, not their order (the import keeps the route apart).
            for dosage in kept.get("dosageInstruction", []):
                dosage["text"] = sorted(dosage.get("text", "").split())
            bare.append(json.dumps(kept, sort_keys=True))
        content[kind] = sorted(bare)
    return content


def test_a_patient_exported_and_imported_elsewhere_exports_the_same(
    app, client, test_database, tmp_path, password_hash
):
    assert set(NEEDED) <= set(RESOURCE_TYPES)
    _chart(app)
    reader = give_token(app, "t-rt", scopes=("system/*.read", "system/*.write"))
    first = _export(app, client, reader)

    # A fresh database with the same baseline (clinic, users) and no patients: another
    # clinic. (On PostgreSQL the run's one database is emptied for it: the export is held.)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    (tmp_path / "elsewhere").mkdir()
    elsewhere = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": fresh_database(test_database, tmp_path / "elsewhere"),
            "INSTANCE_PATH": str(tmp_path / "elsewhere-instance"),
            **{key: app.config[key] for key in ("SECRET_KEY", "DATA_ENCRYPTION_KEY", "AUDIT_KEY")},
        }
    )
    with elsewhere.app_context():
        seed_baseline(password_hash)
    other_client = elsewhere.test_client()
    token = give_token(elsewhere, "t-rt", scopes=("system/*.read", "system/*.write"))
    imported = other_client.post(
        "/fhir",
        data=json.dumps(_as_bundle(first)),
        headers={**token, "Content-Type": "application/fhir+json"},
    )
    assert imported.status_code == 200, imported.get_data(as_text=True)
    second = _export(elsewhere, other_client, token)
    with elsewhere.app_context():
        db.session.remove()
        db.engine.dispose()

    assert _clinical_content(second) == _clinical_content(first)
