"""Lab results as FHIR: Observation (category laboratory) and DiagnosticReport (per ordered
test), filed the way the labs file them (an ORU^R01 stored, then filed to its order), read
and searched through the API, valid R4, in ``$everything`` and following corrections."""

from __future__ import annotations

import importlib
import json
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from portal.extensions import db
from portal.labs import services
from portal.labs.models import PROCESSED, LabResult
from portal.timeutil import utcnow
from tests.fhir.api_support import api_headers
from tests.labs.helpers import add_order, add_patient, oru

ZONE = ZoneInfo("America/New_York")
LIPIDS = [
    "OBX|1|NM|2093-3^Cholesterol^LN||212|mg/dL|<200|H|||F|||20240102080000",
    "OBX|2|NM|2085-9^HDL Cholesterol^LN||45|mg/dL|>39|N|||F|||20240102080000",
    "OBX|3|SN|13457-7^LDL Cholesterol calculated^LN||<^5|mg/dL|||||F|||20240102080000",
    "OBX|4|NM|2571-8^Triglyceride^LN||150|mg/dL|0-149|HH|||F|||20240102080000",
    "OBX|5|TX|8251-1^Service comment^LN||Specimen slightly lipemic||||||F|||20240102080000",
    "OBX|6|CWE|LOCAL1^Appearance^L||CLR^Clear|||ZZ|||F|||20240102080000",
]


def _file(text: str) -> None:
    received = services.receive(text.encode())
    assert received.ack_code == "AA", received.ack
    assert services.file_message(received.message_id, zone=ZONE) == PROCESSED


def _a1c(control_id: str, mrn: str, value: str, status: str) -> str:
    obx = f"OBX|1|NM|4548-4^Hemoglobin A1c^LN||{value}|%|4.0-5.6|H|||{status}|||20240105090000"
    return oru(
        control_id=control_id, mrn=mrn, placer="P-2", obr_code="4548-4^A1c^LN", observations=[obx]
    )


@pytest.fixture
def labs(app):
    """A patient with a lipid panel (final) and an A1c (preliminary) on one order; a result
    for nobody (an unknown MRN waits in the queue)."""
    with app.app_context():
        patient, mrn = add_patient(mrn="MRN7001")
        add_order(patient, "P-2", tests=(("24331-1", "Lipid panel"), ("4548-4", "A1c")))
        _file(oru(control_id="L-1", mrn=mrn, placer="P-2", observations=LIPIDS))
        _file(_a1c("A-1", mrn, "7.0", "P"))
        _file(oru(control_id="U-1", mrn="NOBODY", family="Unknown", birth_date="19500101"))
        db.session.remove()
    return patient, mrn


def _get(client, headers, path: str) -> dict:
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return json.loads(response.get_data(as_text=True))


def _matches(bundle: dict) -> list[dict]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def _validate(resource: dict) -> None:
    name = resource["resourceType"]
    module = importlib.import_module(f"fhir.resources.{name.lower()}")
    getattr(module, name).parse_obj(resource)


def test_lab_observations_carry_loinc_ucum_range_interpretation_and_status(app, labs):
    patient, _ = labs
    client, headers = app.test_client(), api_headers(app)
    bundle = _get(client, headers, f"/fhir/Observation?patient={patient}&category=laboratory")
    found = {r["code"]["text"]: r for r in _matches(bundle)}
    assert sorted(found) == sorted(
        [
            "Cholesterol",
            "HDL Cholesterol",
            "LDL Cholesterol calculated",
            "Triglyceride",
            "Service comment",
            "Appearance",
            "Hemoglobin A1c",
        ]
    )
    for resource in found.values():
        _validate(resource)
        assert resource["category"][0]["coding"][0]["code"] == "laboratory"
        assert resource["subject"] == {"reference": f"Patient/{patient}"}
    cholesterol = found["Cholesterol"]
    assert cholesterol["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "2093-3",
        "display": "Cholesterol",
    }
    assert cholesterol["valueQuantity"] == {
        "value": 212,
        "unit": "mg/dL",
        "system": "http://unitsofmeasure.org",
        "code": "mg/dL",
    }
    assert cholesterol["referenceRange"][0]["high"]["value"] == 200
    assert "low" not in cholesterol["referenceRange"][0]
    assert cholesterol["interpretation"][0]["coding"][0]["code"] == "H"
    assert cholesterol["status"] == "final"
    assert cholesterol["effectiveDateTime"] == "2024-01-02T13:00:00Z"  # 08:00 in New York
    assert cholesterol["performer"] == [{"display": "ACME LAB"}]
    assert found["HDL Cholesterol"]["referenceRange"][0]["low"]["value"] == 39
    assert found["HDL Cholesterol"]["interpretation"][0]["coding"][0]["display"] == "Normal"
    triglyceride = found["Triglyceride"]
    assert (
        triglyceride["referenceRange"][0]["low"]["value"],
        triglyceride["referenceRange"][0]["high"]["value"],
    ) == (0, 149)
    assert triglyceride["interpretation"][0]["coding"][0]["display"] == "Critical high"
    ldl = found["LDL Cholesterol calculated"]["valueQuantity"]
    assert (ldl["comparator"], ldl["value"], ldl["code"]) == ("<", 5, "mg/dL")
    assert found["Service comment"]["valueString"] == "Specimen slightly lipemic"
    appearance = found["Appearance"]
    assert appearance["valueCodeableConcept"] == {"text": "Clear"}
    assert appearance["code"]["coding"] == [{"code": "LOCAL1", "display": "Appearance"}]
    assert appearance["interpretation"] == [{"text": "ZZ"}]  # not an HL7 flag: as sent
    assert found["Hemoglobin A1c"]["status"] == "preliminary"


def test_a_correction_replaces_the_result_and_the_report_follows(app, labs):
    patient, mrn = labs
    client, headers = app.test_client(), api_headers(app)

    def a1c_state():
        bundle = _get(client, headers, f"/fhir/Observation?patient={patient}&code=4548-4")
        (only,) = _matches(bundle)
        reports = _get(
            client,
            headers,
            f"/fhir/DiagnosticReport?patient={patient}&code=http://loinc.org|4548-4",
        )
        (report,) = _matches(reports)
        assert report["result"] == [{"reference": f"Observation/{only['id']}"}]
        return only["id"], only["status"], only["valueQuantity"]["value"], report["status"]

    first = a1c_state()
    assert first[1:] == ("preliminary", 7.0, "preliminary")
    with app.app_context():
        _file(_a1c("A-2", mrn, "7.1", "F"))
    final = a1c_state()
    assert final[1:] == ("final", 7.1, "final") and final[0] != first[0]
    # The preliminary it replaced is no longer served: gone (410), not unknown.
    replaced = client.get(f"/fhir/Observation/{first[0]}", headers=headers)
    assert replaced.status_code == 410
    assert replaced.get_json()["issue"][0]["code"] == "deleted"
    with app.app_context():
        _file(_a1c("A-3", mrn, "6.9", "C"))
    assert a1c_state()[1:] == ("corrected", 6.9, "corrected")


def test_one_report_per_ordered_test_with_its_results(app, labs):
    patient, _ = labs
    client, headers = app.test_client(), api_headers(app)
    bundle = _get(
        client,
        headers,
        f"/fhir/DiagnosticReport?patient={patient}&_include=DiagnosticReport:result",
    )
    reports = _matches(bundle)
    assert sorted(r["code"]["coding"][0]["code"] for r in reports) == ["24331-1", "4548-4"]
    (lipids,) = [r for r in reports if r["code"]["coding"][0]["code"] == "24331-1"]
    _validate(lipids)
    assert lipids["status"] == "final"
    assert lipids["category"][0]["coding"][0]["code"] == "LAB"
    assert lipids["effectiveDateTime"] == "2024-01-02T13:00:00Z"
    assert len(lipids["result"]) == len(LIPIDS)
    included = {
        f"Observation/{e['resource']['id']}"
        for e in bundle["entry"]
        if e["search"]["mode"] == "include"
    }
    assert {ref["reference"] for r in reports for ref in r["result"]} == included
    # Every result reads on its own.
    for reference in included:
        assert client.get(f"/fhir/{reference}", headers=headers).status_code == 200


@pytest.mark.parametrize(
    "query, codes",
    [
        ("status=final", ["24331-1"]),
        ("status=preliminary", ["4548-4"]),
        ("status=corrected,cancelled", []),
        ("category=LAB", ["24331-1", "4548-4"]),
        ("category=http://terminology.hl7.org/CodeSystem/v2-0074|LAB", ["24331-1", "4548-4"]),
        ("category=vital-signs", []),
        ("date=2024-01-02", ["24331-1"]),
        ("date=ge2024-01-03", ["4548-4"]),
        ("date=lt2024", []),
        ("code=24331-1", ["24331-1"]),
    ],
)
def test_report_search(app, labs, query, codes):
    patient, _ = labs
    bundle = _get(
        app.test_client(), api_headers(app), f"/fhir/DiagnosticReport?patient={patient}&{query}"
    )
    assert sorted(r["code"]["coding"][0]["code"] for r in _matches(bundle)) == codes


@pytest.mark.parametrize(
    "query, count",
    [
        ("category=laboratory", 7),
        ("category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", 7),
        ("category=vital-signs", 0),
        ("category=laboratory&status=final", 6),
        ("category=laboratory&status=preliminary", 1),
        ("code=http://loinc.org|2093-3", 1),
        ("category=laboratory&date=2024-01-02", 6),
        ("category=laboratory&date=ge2024-01-05", 1),
        ("category=laboratory&date=lt2024-01-01", 0),
    ],
)
def test_observation_search_reads_the_lab_results(app, labs, query, count):
    patient, _ = labs
    client, headers = app.test_client(), api_headers(app)
    bundle = _get(client, headers, f"/fhir/Observation?patient={patient}&{query}")
    assert len(_matches(bundle)) == count
    counted = _get(client, headers, f"/fhir/Observation?patient={patient}&{query}&_summary=count")
    assert counted["total"] == count


def test_a_replaced_result_is_gone_only_to_a_token_that_may_read_it(app, labs):
    patient, mrn = labs
    client, headers = app.test_client(), api_headers(app)
    query = f"/fhir/Observation?patient={patient}&code=4548-4"
    (preliminary,) = _matches(_get(client, headers, query))
    with app.app_context():
        _file(_a1c("A-2", mrn, "7.1", "F"))
    (final,) = _matches(_get(client, headers, query))
    path = f"/fhir/Observation/{preliminary['id']}"
    assert client.get(path, headers=headers).status_code == 410
    # A search by id lists what is served, and leaves the replaced one out.
    both = _get(client, headers, f"/fhir/Observation?_id={preliminary['id']},{final['id']}")
    assert [r["id"] for r in _matches(both)] == [final["id"]]
    # A token without Observation learns nothing of it: refused, as any Observation is.
    patients_only = api_headers(app, ("system/Patient.read",), name="Registry only")
    assert client.get(path, headers=patients_only).status_code == 403
    # An id that never named a served result stays 404: one never filed, and one that waits
    # in the queue for its patient (never served, so never gone).
    with app.app_context():
        waiting = db.session.scalar(
            select(LabResult.id).where(LabResult.patient_id.is_(None)).limit(1)
        )
    assert waiting is not None
    for unknown in (f"lab-{waiting}", "lab-987654"):
        response = client.get(f"/fhir/Observation/{unknown}", headers=headers)
        assert response.status_code == 404, unknown
        assert response.get_json()["issue"][0]["code"] == "not-found"


def test_a_report_whose_results_were_all_replaced_elsewhere_is_gone(app, labs):
    patient, _ = labs
    client, headers = app.test_client(), api_headers(app)
    query = f"/fhir/DiagnosticReport?patient={patient}&code=http://loinc.org|4548-4"
    (report,) = _matches(_get(client, headers, query))
    path = f"/fhir/DiagnosticReport/{report['id']}"
    assert client.get(path, headers=headers).status_code == 200
    with app.app_context():
        # Its only result replaced by a correction that was not filed to this test.
        db.session.execute(
            update(LabResult)
            .where(LabResult.order_test_id == int(report["id"].removeprefix("lab-")))
            .values(superseded_at=utcnow())
        )
        db.session.commit()
    gone = client.get(path, headers=headers)
    assert gone.status_code == 410
    assert gone.get_json()["resourceType"] == "OperationOutcome"
    assert _matches(_get(client, headers, query)) == []
    # The lipid panel's report (results current) is served as before.
    assert len(_matches(_get(client, headers, f"/fhir/DiagnosticReport?patient={patient}"))) == 1


def test_results_waiting_for_a_patient_are_not_served(app, labs):
    client, headers = app.test_client(), api_headers(app)
    everyone = _get(client, headers, "/fhir/Observation?category=laboratory&_count=100")
    assert {r["subject"]["reference"] for r in _matches(everyone)} == {f"Patient/{labs[0]}"}


def test_everything_and_export_carry_the_lab_results(app, labs):
    patient, _ = labs
    client, headers = app.test_client(), api_headers(app)
    bundle = _get(client, headers, f"/fhir/Patient/{patient}/$everything")
    kinds = [
        (e["resource"]["resourceType"], e["resource"].get("category", [{}])[0])
        for e in bundle["entry"]
    ]
    assert sum(1 for kind, _ in kinds if kind == "DiagnosticReport") == 2
    assert sum(1 for kind, _ in kinds if kind == "Observation") == 7
    for entry in bundle["entry"]:
        _validate(entry["resource"])
    narrowed = _get(client, headers, f"/fhir/Patient/{patient}/$everything?start=2024-01-04")
    names = sorted(
        e["resource"]["resourceType"] for e in narrowed["entry"] if e["search"]["mode"] == "match"
    )
    assert names == ["DiagnosticReport", "Observation", "Patient"]  # the A1c of the 5th


def test_the_capability_statement_lists_diagnostic_report(app):
    statement = _get(app.test_client(), {}, "/fhir/metadata")
    (report,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "DiagnosticReport"]
    assert {p["name"] for p in report["searchParam"]} >= {
        "patient",
        "category",
        "code",
        "date",
        "status",
    }
