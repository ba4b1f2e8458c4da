"""Bulk export audits each patient whose data it exports, once per job: "who saw this
patient's record" finds the export (the demo clinic's charts, every real resource type)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from portal.charting.models import VitalSigns
from portal.extensions import db
from portal.fhir.bulk import export
from portal.fhir.bulk.models import BulkExportJob
from portal.patients.models import Patient
from portal.scheduling.models import Appointment
from portal.transaction import use_case
from tests.fhir.bulk.helpers import give_token, job_folder, run_exports
from tests.fhir.resources.records import seed_records
from tests.support.audit import audit_events
from tests.support.factories import patient_row

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
# Any reference to a patient in a line as the worker writes it (compact JSON).
PATIENT_REFERENCE = re.compile(r'"reference":"Patient/(\d+)"')


@pytest.fixture
def records(app):
    found = seed_records(app)
    with app.app_context(), use_case():  # someone registered with nothing in their chart
        bare = patient_row("Nadia", "Blank", date(1990, 2, 3))
        db.session.add(bare)
    with app.app_context():
        found.bare = db.session.scalar(select(Patient.id).where(Patient.family_name == "Blank"))
    return found


def _export(app, client, headers, query="") -> int:
    response = client.get(f"/fhir/$export{query}", headers={**ASYNC, **headers})
    assert response.status_code == 202, response.get_data(as_text=True)
    job_id = int(response.headers["Content-Location"].rsplit("/", 1)[1])
    run_exports(app)
    with app.app_context():
        assert db.session.get(BulkExportJob, job_id).status == "completed"
    return job_id


def _patients_in_files(app, job_id: int) -> set[int]:
    """The patients whose data the job's files hold, read from the files themselves."""
    found = set()
    for path in job_folder(app, job_id).glob("*.ndjson"):
        for line in path.read_text().splitlines():
            if line.startswith('{"resourceType":"Patient",'):
                found.add(int(re.search(r'"id":"(\d+)"', line).group(1)))
            found.update(int(value) for value in PATIENT_REFERENCE.findall(line))
    return found


def _audited(app, job_id: int) -> Counter:
    events = audit_events(app, "fhir.export_patient")
    for event in events:
        assert event.username == "api:Acme HIE"
        assert (event.object_type, event.object_id) == ("fhir_bulk_export_jobs", str(job_id))
        assert event.category == "fhir" and event.source == "worker"
        assert event.outcome == "success"
    return Counter(event.patient_id for event in events)


def test_a_system_export_audits_each_exported_patient_once(app, client, records, monkeypatch):
    # Small batches: a patient met again in a later batch or type is still audited once.
    monkeypatch.setattr(export, "AUDIT_BATCH", 4)
    token = give_token(app, "t-acme")
    job_id = _export(app, client, token)

    with app.app_context():
        everyone = set(db.session.scalars(select(Patient.id)))
    assert _patients_in_files(app, job_id) == everyone
    audited = _audited(app, job_id)
    assert set(audited) == everyone
    assert set(audited.values()) == {1}
    # The job's own events are still there, once each.
    assert len(audit_events(app, "fhir.export_request")) == 1
    assert len(audit_events(app, "fhir.export_complete")) == 1


@pytest.mark.parametrize(
    ("resource_type", "table"),
    [
        ("Observation", VitalSigns),
        # An Appointment names its patient among its participants, not as subject/patient.
        ("Appointment", Appointment),
    ],
)
def test_a_typed_export_audits_only_the_patients_it_carries(
    app, client, records, resource_type, table
):
    token = give_token(app, "t-acme")
    job_id = _export(app, client, token, f"?_type={resource_type}")

    with app.app_context():
        with_rows = set(db.session.scalars(select(table.patient_id)))
    exported = _patients_in_files(app, job_id)
    assert exported >= with_rows and exported
    assert records.bare not in exported
    audited = _audited(app, job_id)
    assert set(audited) == exported
    assert set(audited.values()) == {1}


def test_a_since_export_audits_only_patients_whose_data_changed_since(app, client, records):
    token = give_token(app, "t-acme")
    now = datetime.now(UTC)
    since = (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    changed_vitals, changed_patient = records.patients[0], records.patients[2]
    with app.app_context():
        # Changes "after" the _since instant: one patient's vital signs, another's details.
        vitals = db.session.scalar(
            select(VitalSigns.id).where(VitalSigns.patient_id == changed_vitals).limit(1)
        )
        assert vitals is not None
        db.session.execute(
            update(VitalSigns)
            .where(VitalSigns.id == vitals)
            .values(created_at=now + timedelta(hours=2))
        )
        db.session.execute(
            update(Patient)
            .where(Patient.id == changed_patient)
            .values(updated_at=now + timedelta(hours=2))
        )
        db.session.commit()

    job_id = _export(app, client, token, f"?_since={since}")

    assert _patients_in_files(app, job_id) == {changed_vitals, changed_patient}
    assert _audited(app, job_id) == Counter({changed_vitals: 1, changed_patient: 1})
