"""Import of transaction and batch Bundles: validated as R4, mapped onto the registry's and
charting's rules, all or nothing for a transaction, entry by entry for a batch, audited."""

from __future__ import annotations

import json
from datetime import date

from sqlalchemy import func, select

from portal.charting.models import (
    Allergy,
    Immunization,
    Medication,
    NoKnownAllergies,
    Problem,
    VitalSigns,
)
from portal.extensions import db
from portal.patients.models import Patient
from tests.fhir.bulk.helpers import give_token
from tests.support.audit import audit_events

WRITE = ("system/*.write",)
JSON = {"Content-Type": "application/fhir+json"}
PATIENT_URL = "urn:uuid:6f1c0e4a-1b2c-4d5e-8f90-123456789abc"


def _patient(family="Okonkwo", given="Adaeze", birth="1980-04-12", **extra) -> dict:
    return {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": "female",
        "birthDate": birth,
        "telecom": [{"system": "phone", "value": "(413) 555-0188", "use": "mobile"}],
        **extra,
    }


def _subject(url=PATIENT_URL) -> dict:
    return {"reference": url}


def _clinical(url=PATIENT_URL) -> list[dict]:
    when = "2025-03-04T14:30:00Z"
    vital = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs",
            }
        ]
    }
    return [
        {
            "resourceType": "AllergyIntolerance",
            "patient": _subject(url),
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "category": ["food"],
            "criticality": "high",
            "code": {"text": "Peanut"},
            "reaction": [{"manifestation": [{"text": "Hives"}], "severity": "severe"}],
        },
        {
            "resourceType": "Condition",
            "subject": _subject(url),
            "category": [{"coding": [{"code": "problem-list-item"}]}],
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]},
            "onsetDateTime": "2019-06-01",
        },
        {
            "resourceType": "Immunization",
            "status": "completed",
            "patient": _subject(url),
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "115"}]},
            "occurrenceDateTime": "2024-10-01",
            "lotNumber": "AB123",
            "route": {"coding": [{"code": "IM"}]},
        },
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [vital],
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "subject": _subject(url),
            "effectiveDateTime": when,
            "component": [
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                    "valueQuantity": {
                        "value": 128,
                        "unit": "mmHg",
                        "system": "http://unitsofmeasure.org",
                        "code": "mm[Hg]",
                    },
                },
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                    "valueQuantity": {
                        "value": 82,
                        "unit": "mmHg",
                        "system": "http://unitsofmeasure.org",
                        "code": "mm[Hg]",
                    },
                },
            ],
        },
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [vital],
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": _subject(url),
            "effectiveDateTime": when,
            "valueQuantity": {
                "value": 154.5,
                "unit": "lb",
                "system": "http://unitsofmeasure.org",
                "code": "[lb_av]",
            },
        },
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "subject": _subject(url),
            "medicationCodeableConcept": {"text": "Metformin 500 mg tablet"},
            "effectivePeriod": {"start": "2020-01-15"},
            "dosage": [{"text": "1 tablet twice daily"}],
        },
    ]


def _bundle(kind: str, resources: list[dict], urls: dict[int, str] | None = None) -> dict:
    entries = []
    for index, resource in enumerate(resources):
        entry = {
            "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"]},
        }
        if urls and index in urls:
            entry["fullUrl"] = urls[index]
        entries.append(entry)
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def _post(client, headers, body, **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/fhir", data=data, headers={**JSON, **headers, **extra.pop("more", {})})


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_a_transaction_imports_a_patient_and_their_record(app, client):
    token = give_token(app, "t-write", name="Valley HIE", scopes=WRITE)
    body = _bundle("transaction", [_patient(), *_clinical()], {0: PATIENT_URL})
    response = _post(client, token, body)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["type"] == "transaction-response"
    statuses = [entry["response"]["status"] for entry in answer["entry"]]
    assert statuses == ["201 Created"] * 7
    locations = [entry["response"]["location"] for entry in answer["entry"]]
    assert locations[0].startswith("Patient/")
    patient_id = int(locations[0].split("/")[1])
    # Both vital signs Observations (one instant) are one set; their ids name the parts.
    set_ids = {loc.split("/")[1].split("-")[0] for loc in locations[4:6]}
    assert len(set_ids) == 1
    assert [loc.rsplit("-", 1)[1] for loc in locations[4:6]] == ["bp", "weight"]

    with app.app_context():
        patient = db.session.get(Patient, patient_id)
        assert (patient.family_name, patient.given_name) == ("Okonkwo", "Adaeze")
        assert patient.birth_date == date(1980, 4, 12)
        assert patient.phone_mobile == "+14135550188"
        assert patient.mrn  # this clinic's own MRN
        allergy = db.session.scalars(select(Allergy)).one()
        assert (allergy.substance_kind, allergy.substance, allergy.severity) == (
            "food",
            "Peanut",
            "severe",
        )
        assert allergy.reactions == ["Hives"] and allergy.criticality == "high"
        problem = db.session.scalars(select(Problem)).one()
        assert (problem.icd10_code, problem.onset_date) == ("E11.9", date(2019, 6, 1))
        shot = db.session.scalars(select(Immunization)).one()
        assert (shot.cvx_code, shot.source, shot.route) == ("115", "historical", "IM")
        vitals = db.session.scalars(select(VitalSigns)).one()
        assert (vitals.systolic_mmhg, vitals.diastolic_mmhg) == (128, 82)
        assert abs(vitals.weight_kg - 70.08) < 0.01
        medication = db.session.scalars(select(Medication)).one()
        assert (medication.source, medication.status) == ("outside_record", "active")
        assert medication.start_date == date(2020, 1, 15)

    created = audit_events(app, "patient.create")
    assert created[0].username == "api:Valley HIE"
    assert created[0].detail == "imported (FHIR)"
    summary = audit_events(app, "fhir.import")[0]
    assert summary.detail == "transaction: 7 entries, 7 imported, 0 refused"


def test_a_transaction_with_a_likely_duplicate_imports_nothing(app, client):
    token = give_token(app, "t-write", scopes=WRITE)
    assert _post(client, token, _bundle("transaction", [_patient()])).status_code == 200
    before = (_count(app, Patient), _count(app, Allergy))

    again = _bundle("transaction", [_patient(telecom=[]), *_clinical()], {0: PATIENT_URL})
    response = _post(client, token, again)
    assert response.status_code == 409
    found = response.get_json()
    assert found["resourceType"] == "OperationOutcome"
    assert found["issue"][0]["code"] == "duplicate"
    assert found["issue"][0]["expression"] == ["Bundle.entry[0]"]
    assert "Okonkwo" not in response.get_data(as_text=True)
    assert (_count(app, Patient), _count(app, Allergy)) == before  # all or nothing


def test_a_transaction_refused_by_a_chart_rule_leaves_nothing(app, client):
    token = give_token(app, "t-write", scopes=WRITE)
    clinical = _clinical()
    clinical[1]["code"]["coding"][0]["code"] = "E11"  # a category, not a billable code
    response = _post(
        client, token, _bundle("transaction", [_patient(), *clinical], {0: PATIENT_URL})
    )
    assert response.status_code == 422
    issue = response.get_json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[2]"]
    assert "billable" in issue["diagnostics"]
    assert _count(app, Patient) == 0


def test_a_batch_answers_entry_by_entry(app, client):
    token = give_token(app, "t-write", scopes=WRITE)
    _post(client, token, _bundle("transaction", [_patient()]))
    second = "urn:uuid:0f0f0f0f-0000-4000-8000-000000000002"
    impossible = _clinical(second)[3]
    impossible["component"][0]["valueQuantity"]["value"] = 500  # systolic 500: impossible
    body = _bundle(
        "batch",
        [
            _patient(),  # the same person again: refused
            _patient(family="Lindqvist", given="Elsa", birth="1992-11-30", telecom=[]),
            _clinical(second)[0],
            impossible,
            {"resourceType": "Encounter", "status": "finished"},
            {**_clinical(second)[1], "onsetDateTime": "not a date"},
        ],
        {1: second},
    )
    response = _post(client, token, body)
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["type"] == "batch-response"
    statuses = [entry["response"]["status"] for entry in answer["entry"]]
    assert statuses == [
        "409 Conflict",
        "201 Created",
        "201 Created",
        "422 Unprocessable Entity",
        "422 Unprocessable Entity",
        "422 Unprocessable Entity",
    ]
    outcomes = [entry["response"].get("outcome") for entry in answer["entry"]]
    assert outcomes[0]["issue"][0]["code"] == "duplicate"
    assert "Systolic" in outcomes[3]["issue"][0]["diagnostics"]
    assert outcomes[4]["issue"][0]["code"] == "not-supported"
    assert outcomes[5]["issue"][0]["expression"][0].startswith("Bundle.entry[5].resource.onset")
    assert "not a date" not in json.dumps(outcomes)  # the sent value is never echoed
    assert _count(app, Patient) == 2 and _count(app, Allergy) == 1
    assert audit_events(app, "fhir.import")[-1].detail == "batch: 6 entries, 2 imported, 4 refused"


def test_no_known_allergies_is_a_statement_not_an_allergy(app, client):
    token = give_token(app, "t-write", scopes=WRITE)
    nka = {
        "resourceType": "AllergyIntolerance",
        "patient": _subject(),
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "code": {
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "716186003",
                    "display": "No known allergy",
                }
            ]
        },
    }
    response = _post(client, token, _bundle("transaction", [_patient(), nka], {0: PATIENT_URL}))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert _count(app, NoKnownAllergies) == 1 and _count(app, Allergy) == 0

    # "No known allergies" beside an allergy of the same Bundle contradicts it.
    other = "urn:uuid:0f0f0f0f-0000-4000-8000-000000000003"
    clash = [
        _patient(family="Brandt", given="Ute", birth="1950-02-02", telecom=[]),
        _clinical(other)[0],
        {**nka, "patient": _subject(other)},
    ]
    refused = _post(client, token, _bundle("transaction", clash, {0: other}))
    assert refused.status_code == 409
    assert _count(app, Patient) == 1


def test_a_no_known_allergies_statement_an_allergy_replaced_is_gone(app, client):
    token = give_token(app, "t-write", scopes=("system/*.write", "system/*.read"))
    nka = {
        "resourceType": "AllergyIntolerance",
        "patient": _subject(),
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "716186003"}]},
    }
    first = _post(client, token, _bundle("transaction", [_patient(), nka], {0: PATIENT_URL}))
    assert first.status_code == 200, first.get_data(as_text=True)
    with app.app_context():
        patient_id = db.session.scalar(select(Patient.id))
    path = f"/fhir/AllergyIntolerance/nka-{patient_id}"
    assert client.get(path, headers=token).status_code == 200
    allergy = _clinical(f"Patient/{patient_id}")[0]
    added = _post(client, token, _bundle("batch", [allergy]))
    assert added.status_code == 200, added.get_data(as_text=True)
    gone = client.get(path, headers=token)
    assert gone.status_code == 410
    assert gone.get_json()["issue"][0]["code"] == "deleted"
    # A patient who never had the statement: 404, as an id that names nothing.
    stranger = _patient(family="Brandt", given="Ute", birth="1950-02-02", telecom=[])
    assert _post(client, token, _bundle("transaction", [stranger])).status_code == 200
    with app.app_context():
        other = db.session.scalar(select(func.max(Patient.id)))
    assert other != patient_id
    missing = client.get(f"/fhir/AllergyIntolerance/nka-{other}", headers=token)
    assert missing.status_code == 404


def test_references_must_reach_a_patient(app, client):
    token = give_token(app, "t-write", scopes=WRITE)
    orphan = _clinical("urn:uuid:00000000-0000-4000-8000-00000000dead")[0]
    unknown = _clinical("Patient/987654")[1]
    for resource in (orphan, unknown):
        response = _post(client, token, _bundle("transaction", [resource]))
        assert response.status_code == 422
        assert response.get_json()["issue"][0]["code"] == "not-found"

    _post(client, token, _bundle("transaction", [_patient()]))
    with app.app_context():
        patient_id = db.session.scalar(select(Patient.id))
    known = _clinical(f"Patient/{patient_id}")[1]
    assert _post(client, token, _bundle("transaction", [known])).status_code == 200
    assert _count(app, Problem) == 1


def test_what_is_not_a_bundle_of_ours_is_refused(app, client):
    token = give_token(app, "t-write", scopes=WRITE)
    cases = [
        ("{not json", 400, "structure"),
        (json.dumps(_patient()), 422, "structure"),
        (
            json.dumps({"resourceType": "Bundle", "type": "collection", "entry": []}),
            422,
            "not-supported",
        ),
        (json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": "x"}), 422, None),
        (
            json.dumps(
                _bundle("transaction", [{"resourceType": "Encounter", "status": "finished"}])
            ),
            422,
            "not-supported",
        ),
        (json.dumps(_bundle("transaction", [_patient(birth="12/04/1980")])), 422, "invalid"),
    ]
    for data, status, code in cases:
        response = _post(client, token, data)
        assert response.status_code == status, data[:60]
        body = response.get_json()
        assert body["resourceType"] == "OperationOutcome"
        if code:
            assert body["issue"][0]["code"] == code
    wrong_type = client.post(
        "/fhir", data="<Bundle/>", headers={**token, "Content-Type": "application/xml"}
    )
    assert wrong_type.status_code == 415
    assert _count(app, Patient) == 0


def test_a_bundle_over_ten_megabytes_is_refused_unread(app, client):
    token = give_token(app, "t-write", scopes=WRITE)
    big = json.dumps(
        _bundle(
            "transaction", [_patient(), {"resourceType": "Basic", "x": "a" * (10 * 1024 * 1024)}]
        )
    )
    response = _post(client, token, big)
    assert response.status_code == 413
    assert response.get_json()["issue"][0]["code"] == "too-costly"


def test_importing_needs_a_write_scope(app, client):
    reader = give_token(app, "t-read", scopes=("system/*.read",))
    patients_only = give_token(app, "t-patients", scopes=("system/Patient.write",))
    body = _bundle("transaction", [_patient(), *_clinical()], {0: PATIENT_URL})
    assert _post(client, reader, body).status_code == 403
    assert _post(client, patients_only, body).status_code == 403
    assert _post(client, {}, body).status_code == 401
    assert _post(client, patients_only, _bundle("transaction", [_patient()])).status_code == 200
    assert _count(app, Patient) == 1


def test_a_script_in_an_imported_name_is_inert_on_the_chart(app, client, signed_in):
    token = give_token(app, "t-write", scopes=WRITE)
    script = "<script>alert('x')</script>"
    response = _post(client, token, _bundle("transaction", [_patient(family=script, telecom=[])]))
    assert response.status_code == 200
    patient_id = response.get_json()["entry"][0]["response"]["location"].split("/")[1]
    page = signed_in("nurse").get(f"/patients/{patient_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert script not in html
    assert "&lt;script&gt;alert(" in html


def test_the_medication_list_imports_and_prescriptions_do_not(app, client):
    token = give_token(app, "t-write", scopes=WRITE)
    listed = {
        "resourceType": "MedicationRequest",
        "status": "stopped",
        "statusReason": {"text": "Cough"},
        "intent": "plan",
        "subject": _subject(),
        "medicationCodeableConcept": {"text": "Lisinopril 10 mg tablet"},
        "requester": {"display": "Dr. Elsewhere"},
        "dosageInstruction": [{"text": "10 mg oral daily", "route": {"text": "oral"}}],
        "dispenseRequest": {"validityPeriod": {"start": "2021-02-01", "end": "2023-03-01"}},
    }
    ordered = {**listed, "intent": "order", "status": "active"}
    refused_shot = {
        "resourceType": "Immunization",
        "status": "not-done",
        "statusReason": {"text": "patient objection"},
        "patient": _subject(),
        "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "115"}]},
        "occurrenceDateTime": "2024-10-01",
    }
    body = _bundle("batch", [_patient(), listed, ordered, refused_shot], {0: PATIENT_URL})
    answer = _post(client, token, body).get_json()
    statuses = [entry["response"]["status"] for entry in answer["entry"]]
    assert statuses == ["201 Created", "201 Created", "422 Unprocessable Entity", "201 Created"]
    assert answer["entry"][2]["response"]["outcome"]["issue"][0]["code"] == "not-supported"
    with app.app_context():
        medication = db.session.scalars(select(Medication)).one()
        assert (medication.status, medication.stop_reason, medication.prescriber) == (
            "stopped",
            "Cough",
            "Dr. Elsewhere",
        )
        assert (medication.dose, medication.route) == ("10 mg daily", "oral")
        assert (medication.start_date, medication.stop_date) == (date(2021, 2, 1), date(2023, 3, 1))
        shot = db.session.scalars(select(Immunization)).one()
        assert shot.refused and shot.refusal_reason == "patient objection"
