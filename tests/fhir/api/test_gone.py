"""What is 404 rather than 410 (docs/ARCHITECTURE.md, "What a 410 says"): a 410 is answered
only where a row proves the resource was served once, never from the existence of other
rows a token of another scope would have to read. (The 410s themselves are tested with
their sources: lab results and reports in tests/fhir/resources/test_laboratory.py, the
"no known allergies" statement in tests/fhir/bulk/test_import.py.)"""

from __future__ import annotations

from sqlalchemy import delete, select

from portal.charting.models import encounter_problems
from portal.extensions import db
from tests.fhir.api_support import api_headers
from tests.fhir.resources.records import seed_records


def test_a_diagnosis_taken_off_its_visit_is_404_to_a_condition_only_token(app):
    records = seed_records(app)
    with app.app_context():
        encounter_id, problem_id = db.session.execute(
            select(encounter_problems.c.encounter_id, encounter_problems.c.problem_id).limit(1)
        ).one()
    client = app.test_client()
    headers = api_headers(app, ("system/Condition.read",), name="Problems only")
    path = f"/fhir/Condition/dx-{encounter_id}-{problem_id}"
    assert client.get(path, headers=headers).status_code == 200
    with app.app_context():
        db.session.execute(
            delete(encounter_problems).where(
                encounter_problems.c.encounter_id == encounter_id,
                encounter_problems.c.problem_id == problem_id,
            )
        )
        db.session.commit()
    # The visit and the problem are still there; a 410 would tell this token, which may
    # not read Encounter, that the visit exists. No row keeps the link's history: 404.
    response = client.get(path, headers=headers)
    assert response.status_code == 404
    assert response.get_json()["issue"][0]["code"] == "not-found"
    assert client.get(f"/fhir/Condition/{problem_id}", headers=headers).status_code == 200
    # Nor does a "no known allergies" id of a patient who never had one say anything.
    allergies = api_headers(app, ("system/AllergyIntolerance.read",), name="Allergies only")
    missing = client.get(f"/fhir/AllergyIntolerance/nka-{records.not_asked}", headers=allergies)
    assert missing.status_code == 404
