"""Medications: add, edit, stop with a reason, history, refusals."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from portal.charting.models import ChartItemRevision, Medication
from tests.charting.lists_helpers import audit_events, make_patient, rows, text_of, version_of


@pytest.fixture
def patient_id(app):
    return make_patient(app)


@pytest.fixture
def nurse(signed_in):
    return signed_in("nurse")


def add(client, patient_id, **values):
    data = {
        "drug": "metformin",
        "dose": "500 mg",
        "route": "oral",
        "frequency": "twice a day",
        "start_date": "2020-01-15",
        "stop_date": "",
        "prescriber": "Dr. Outside",
        "source": "outside_record",
        "status": "active",
        "stop_reason": "",
    }
    data.update(values)
    return client.post_form(f"/chart/patients/{patient_id}/medications", data)


def test_add_a_medication(app, nurse, patient_id):
    assert add(nurse, patient_id).status_code == 303
    (medication,) = rows(app, Medication, patient_id=patient_id)
    assert (medication.drug, medication.rxnorm_code, medication.dose, medication.source) == (
        "metformin",
        "6809",
        "500 mg",
        "outside_record",
    )
    page = text_of(nurse.get(f"/chart/patients/{patient_id}/medications"))
    assert "metformin" in page and "Outside record" in page
    actions = [action for action, _, _ in audit_events(app, "medications")]
    assert actions == ["medication.create", "medication.list_view"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"drug": ""}, "Enter the drug"),
        ({"drug": "d" * 201}, "At most 200 characters"),
        ({"stop_date": "2019-12-31"}, "The stop date is before the start date"),
        ({"start_date": "1901-01-01"}, "before the patient&#39;s birth"),
        ({"start_date": (date.today() + timedelta(days=5)).isoformat()}, "in the future"),
        ({"status": "paused"}, "Not a valid choice"),
        ({"source": "internet"}, "Not a valid choice"),
        ({"dose": "9" * 101}, "At most 100 characters"),
    ],
)
def test_bad_input_is_refused_beside_the_field_and_kept(app, nurse, patient_id, values, message):
    response = add(nurse, patient_id, **{"prescriber": "Kept Name", **values})
    assert response.status_code == 422
    html = text_of(response)
    assert message in html and "is-invalid" in html and "Kept Name" in html
    assert rows(app, Medication, patient_id=patient_id) == []


def test_stop_needs_a_reason_and_keeps_history(app, signed_in, patient_id):
    nurse = signed_in("nurse")
    add(nurse, patient_id)
    (medication,) = rows(app, Medication, patient_id=patient_id)
    url = f"/chart/patients/{patient_id}/medications/{medication.id}/stop"
    form = text_of(nurse.get(url))
    assert version_of(form) == "1"
    refused = nurse.post_form(url, {"stop_date": "2024-02-01", "reason": "", "version": "1"})
    assert refused.status_code == 422 and "Say why" in text_of(refused)
    early = nurse.post_form(url, {"stop_date": "2019-02-01", "reason": "GI upset", "version": "1"})
    assert early.status_code == 422 and "before the start date" in text_of(early)
    done = nurse.post_form(url, {"stop_date": "2024-02-01", "reason": "GI upset", "version": "1"})
    assert done.status_code == 303
    (medication,) = rows(app, Medication, patient_id=patient_id)
    assert (medication.status, medication.stop_date, medication.stop_reason) == (
        "stopped",
        date(2024, 2, 1),
        "GI upset",
    )
    revisions = rows(app, ChartItemRevision, item_type="medication", item_id=medication.id)
    assert revisions[-1].before == {"stop_date": None, "status": "active", "stop_reason": None}
    history = text_of(
        nurse.get(f"/chart/patients/{patient_id}/medications/{medication.id}/history")
    )
    assert "GI upset" in history and "Stopped" in history and "Sam Okafor" in history
    page = text_of(nurse.get(f"/chart/patients/{patient_id}/medications"))
    assert f"/medications/{medication.id}/stop" not in page  # no "Stop" for a stopped drug


def test_edit_and_stale_edit(app, signed_in, patient_id):
    nurse, doctor = signed_in("nurse"), signed_in("prescriber")
    add(nurse, patient_id)
    (medication,) = rows(app, Medication, patient_id=patient_id)
    url = f"/chart/patients/{patient_id}/medications/{medication.id}"
    values = {
        "drug": "metformin",
        "route": "oral",
        "frequency": "twice a day",
        "start_date": "2020-01-15",
        "stop_date": "",
        "prescriber": "Dr. Outside",
        "source": "outside_record",
        "status": "active",
        "stop_reason": "",
        "version": version_of(text_of(doctor.get(url))),
    }
    assert doctor.post_form(url, {**values, "dose": "1000 mg"}).status_code == 303
    stale = nurse.post_form(url, {**values, "dose": "850 mg"})
    assert stale.status_code == 409
    assert "1000 mg" in text_of(stale) and "850 mg" in text_of(stale)
    assert rows(app, Medication, patient_id=patient_id)[0].dose == "1000 mg"
    unchanged = doctor.post_form(url, {**values, "dose": "1000 mg", "version": "2"})
    assert unchanged.status_code == 303
    assert len(rows(app, ChartItemRevision, item_type="medication")) == 2  # nothing changed


def test_another_patients_medication_is_404(app, nurse, patient_id):
    other = make_patient(app, family="Else")
    add(nurse, other)
    (medication,) = rows(app, Medication, patient_id=other)
    for suffix in ("", "/stop", "/history"):
        path = f"/chart/patients/{patient_id}/medications/{medication.id}{suffix}"
        assert nurse.get(path).status_code == 404
