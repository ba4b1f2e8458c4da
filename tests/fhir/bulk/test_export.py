"""Bulk export: the kick-off, status polling, the files, deletion, and the worker's run
(leases, resuming, cancelling, giving a job back, flat memory)."""

from __future__ import annotations

import contextlib
import json
import stat
import threading
import tracemalloc
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from portal.extensions import db
from portal.fhir.bulk import export
from portal.fhir.bulk.jobs import periodic_jobs
from portal.fhir.bulk.models import BulkExportJob
from portal.transaction import use_case
from tests.fhir.bulk.helpers import (
    CountingSpec,
    RowSpec,
    client_pk,
    give_token,
    job_folder,
    run_exports,
)
from tests.support.audit import audit_events
from tests.support.factories import patient_row

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def _patients(app, count: int) -> None:
    with app.app_context(), use_case():
        for number in range(count):
            db.session.add(patient_row("Ann", f"Family{number:03d}", date(1970, 1, 1)))


def _kick_off(client, headers, path="/fhir/$export", query=""):
    response = client.get(f"{path}{query}", headers={**ASYNC, **headers})
    assert response.status_code == 202, response.get_data(as_text=True)
    location = response.headers["Content-Location"]
    assert location.startswith("http://localhost/fhir/bulkstatus/")
    return location.removeprefix("http://localhost")


def test_a_client_exports_and_downloads_ndjson_with_the_same_token(
    app, client, resource_types, tmp_path
):
    _patients(app, 7)
    resource_types(RowSpec(), CountingSpec("Observation", 3))
    token = give_token(app, "t-acme")

    status_url = _kick_off(client, token)
    waiting = client.get(status_url, headers=token)
    assert waiting.status_code == 202
    assert waiting.headers["X-Progress"] == "queued"

    assert "2 files" in run_exports(app)
    done = client.get(status_url, headers=token)
    assert done.status_code == 200
    manifest = done.get_json()
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"] == "http://localhost/fhir/$export"
    assert manifest["error"] == []
    assert datetime.fromisoformat(manifest["transactionTime"].replace("Z", "+00:00"))
    assert [(o["type"], o["count"]) for o in manifest["output"]] == [
        ("Patient", 7),
        ("Observation", 3),
    ]

    patient_file = manifest["output"][0]["url"].removeprefix("http://localhost")
    assert client.get(patient_file).status_code == 401  # the token is required
    download = client.get(patient_file, headers=token)
    assert download.status_code == 200
    assert download.mimetype == "application/fhir+ndjson"
    assert download.headers["Cache-Control"] == "no-store"
    lines = download.get_data(as_text=True).splitlines()
    assert [json.loads(line)["resourceType"] for line in lines] == ["Patient"] * 7
    assert len({json.loads(line)["id"] for line in lines}) == 7

    # Private files: the folder 0700, each file 0600.
    folder = job_folder(app, int(status_url.rsplit("/", 1)[1]))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert not path.name.endswith(".part")

    actions = [event.action for event in audit_events(app) if event.action.startswith("fhir.")]
    assert actions == ["fhir.export_request", "fhir.export_complete", "fhir.export_download"]
    download_event = audit_events(app, "fhir.export_download")[0]
    assert download_event.username == "api:Acme HIE"
    assert download_event.detail == "type Patient; 7 resources"


def test_only_the_client_that_started_a_job_sees_it(app, client, resource_types):
    _patients(app, 2)
    resource_types(RowSpec())
    mine = give_token(app, "t-mine")
    theirs = give_token(app, "t-theirs", name="Other")
    status_url = _kick_off(client, mine)
    run_exports(app)
    manifest = client.get(status_url, headers=mine).get_json()
    file_url = manifest["output"][0]["url"].removeprefix("http://localhost")

    for response in (
        client.get(status_url, headers=theirs),
        client.get(file_url, headers=theirs),
        client.delete(status_url, headers=theirs),
    ):
        assert response.status_code == 404
        assert response.get_json()["resourceType"] == "OperationOutcome"
    assert client.get(file_url, headers=mine).status_code == 200
    assert client.get(status_url + "9", headers=mine).status_code == 404


def test_kick_off_refusals_are_operation_outcomes(app, client, resource_types):
    resource_types(RowSpec(), CountingSpec("Observation", 1))
    token = give_token(app, "t-acme")
    patients_only = give_token(app, "t-narrow", scopes=("system/Patient.read",))

    no_token = client.get("/fhir/$export", headers=ASYNC)
    assert no_token.status_code == 401
    assert no_token.headers["WWW-Authenticate"].startswith("Bearer")
    assert (
        client.get("/fhir/$export", headers={**ASYNC, "Authorization": "Bearer nope"}).status_code
        == 401
    )

    cases = [
        ({**token}, "", 400),  # no Prefer: respond-async
        ({**ASYNC, **token}, "?_type=Encounterx", 400),
        ({**ASYNC, **token}, "?_since=yesterday", 400),
        ({**ASYNC, **token}, "?_since=2026-01-01T00:00:00", 400),  # no offset: no instant
        ({**ASYNC, **token}, "?_outputFormat=text/csv", 400),
        ({**ASYNC, **token}, "?_typeFilter=Patient%3Factive%3Dtrue", 400),
        ({**ASYNC, **patients_only}, "?_type=Observation", 403),
    ]
    for headers, query, status in cases:
        response = client.get(f"/fhir/$export{query}", headers=headers)
        assert response.status_code == status, query
        body = response.get_json()
        assert body["resourceType"] == "OperationOutcome"
        assert body["issue"][0]["severity"] == "error"

    lenient = {**ASYNC, "Prefer": "respond-async, handling=lenient", **token}
    assert client.get("/fhir/$export?_elements=id", headers=lenient).status_code == 202
    assert db_jobs(app) == 1  # none of the refused ones made a job


def db_jobs(app) -> int:
    with app.app_context():
        return len(db.session.scalars(select(BulkExportJob.id)).all())


def test_without_type_a_client_gets_what_its_scopes_cover(app, client, resource_types):
    resource_types(RowSpec(), CountingSpec("Observation", 2), CountingSpec("Organization", 1))
    narrow = give_token(app, "t-narrow", scopes=("system/Observation.rs",))
    status_url = _kick_off(client, narrow)
    run_exports(app)
    manifest = client.get(status_url, headers=narrow).get_json()
    assert [o["type"] for o in manifest["output"]] == ["Observation"]


def test_patient_level_export_leaves_out_what_is_no_patient_s(app, client, resource_types):
    _patients(app, 1)
    resource_types(RowSpec(), CountingSpec("Observation", 2), CountingSpec("Organization", 1))
    token = give_token(app, "t-acme")
    status_url = _kick_off(client, token, "/fhir/Patient/$export", "?_type=Patient,Observation")
    run_exports(app)
    manifest = client.get(status_url, headers=token).get_json()
    assert [o["type"] for o in manifest["output"]] == ["Patient", "Observation"]
    refused = client.get("/fhir/Patient/$export?_type=Organization", headers={**ASYNC, **token})
    assert refused.status_code == 400


def test_since_is_handed_to_the_resource_types(app, client, resource_types):
    _patients(app, 3)
    resource_types(RowSpec())
    token = give_token(app, "t-acme")
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status_url = _kick_off(client, token, query=f"?_since={later}")
    run_exports(app)
    manifest = client.get(status_url, headers=token).get_json()
    assert manifest["output"] == []  # nothing changed since: no file at all
    assert manifest["request"].endswith(f"?_since={later}")


def test_delete_cancels_a_job_and_removes_its_files(app, client, resource_types):
    _patients(app, 2)
    resource_types(RowSpec())
    token = give_token(app, "t-acme")
    status_url = _kick_off(client, token)
    run_exports(app)
    job_id = int(status_url.rsplit("/", 1)[1])
    folder = job_folder(app, job_id)
    assert folder.exists()

    deleted = client.delete(status_url, headers=token)
    assert deleted.status_code == 202
    assert not folder.exists()
    assert client.get(status_url, headers=token).status_code == 404
    assert client.delete(status_url, headers=token).status_code == 404
    assert audit_events(app, "fhir.export_cancel")[0].detail == "was completed"


def test_a_job_cancelled_while_it_runs_stops_and_keeps_nothing(
    app, client, resource_types, monkeypatch
):
    token = give_token(app, "t-acme")
    monkeypatch.setattr(export, "HEARTBEAT_SECONDS", 0.0)
    started = {}

    def cancel_midway(number):
        if number == 1500:  # the client deletes the job while the worker writes
            with app.test_request_context():
                export.cancel_export(
                    export.client_actor("Acme HIE", None), client_pk(app), started["id"]
                )

    resource_types(CountingSpec("Observation", 5000, on_item=cancel_midway))
    status_url = _kick_off(client, token)
    started["id"] = job_id = int(status_url.rsplit("/", 1)[1])
    assert "cancelled" in run_exports(app)
    assert not job_folder(app, job_id).exists()
    with app.app_context():
        assert db.session.get(BulkExportJob, job_id).status == "cancelled"


def test_a_stopping_worker_gives_its_job_back_and_the_next_run_resumes(app, client, resource_types):
    token = give_token(app, "t-acme")
    stop = threading.Event()

    def stop_midway(number):
        if number == 1200:
            stop.set()  # SIGTERM while the second type is written

    resource_types(
        CountingSpec("Condition", 10), CountingSpec("Observation", 3000, on_item=stop_midway)
    )
    status_url = _kick_off(client, token, query="?_type=Condition,Observation")
    assert "given back" in run_exports(app, stop)
    waiting = client.get(status_url, headers=token)
    assert waiting.status_code == 202
    assert waiting.headers["X-Progress"] == "queued"
    with app.app_context():
        job = db.session.scalars(select(BulkExportJob)).one()
        assert job.output == [{"type": "Condition", "file": "Condition.ndjson", "count": 10}]

    resource_types(CountingSpec("Condition", 99), CountingSpec("Observation", 3000))
    run_exports(app)
    manifest = client.get(status_url, headers=token).get_json()
    # The finished type is not written again (99 would show); the other is written whole.
    assert [(o["type"], o["count"]) for o in manifest["output"]] == [
        ("Condition", 10),
        ("Observation", 3000),
    ]


def test_a_job_whose_worker_died_is_claimed_again_after_its_lease(app, client, resource_types):
    resource_types(CountingSpec("Observation", 5))
    token = give_token(app, "t-acme")
    status_url = _kick_off(client, token)
    with app.app_context():
        held = export.claim_job("dead-worker", lease_seconds=60)
        assert held is not None
        db.session.remove()
        assert export.claim_job("other") is None  # leased: nobody else takes it
        db.session.remove()
    running = client.get(status_url, headers=token)
    assert running.status_code == 202
    assert running.headers["X-Progress"].startswith("0 of 1 types")

    later = datetime.now(UTC) + timedelta(seconds=61)
    with app.app_context():
        again = export.claim_job("other", now=later)
        assert again is not None and again.id == held.id and again.claim != held.claim
        # The dead worker's late heartbeat no longer holds the job.
        assert export._heartbeat(held, 60) is False
        export.run_job(again)
        db.session.remove()
    assert client.get(status_url, headers=token).status_code == 200


def test_a_job_that_keeps_stopping_fails_with_an_operation_outcome(app, client, resource_types):
    resource_types(CountingSpec("Observation", 5))
    token = give_token(app, "t-acme")
    status_url = _kick_off(client, token)
    moment = datetime.now(UTC)
    with app.app_context():
        for _ in range(export.MAX_ATTEMPTS):
            moment += timedelta(seconds=export.LEASE_SECONDS + 1)
            assert export.claim_job("crashing", now=moment) is not None
            db.session.remove()
        moment += timedelta(seconds=export.LEASE_SECONDS + 1)
        assert export.claim_job("crashing", now=moment) is None
        db.session.remove()
    failed = client.get(status_url, headers=token)
    assert failed.status_code == 500
    assert failed.get_json()["issue"][0]["code"] == "exception"


def test_a_failing_resource_type_is_recorded_by_type_only(app, client, resource_types):
    def explode(number):
        if number == 2:
            raise ValueError("row 17: Doe, Jane")  # a message that could hold patient data

    resource_types(CountingSpec("Observation", 5, on_item=explode))
    token = give_token(app, "t-acme")
    _kick_off(client, token)
    with contextlib.suppress(ValueError):
        run_exports(app)
    with app.app_context():
        job = db.session.scalars(select(BulkExportJob)).one()
        assert job.error == "The last attempt failed (ValueError)."
        assert job.status == "running"  # tried again when its lease ends


def test_the_worker_writes_line_by_line_with_flat_memory(app, client, resource_types):
    """A 50,000-resource export must not be held in memory: the traced peak stays far below
    what the resources would take together (about 3.5 MB as Python dicts)."""
    resource_types(CountingSpec("Observation", 50_000))
    token = give_token(app, "t-acme")
    _kick_off(client, token)
    tracemalloc.start()
    try:
        run_exports(app)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_500_000, peak


def test_expired_jobs_lose_their_files(app, client, resource_types):
    resource_types(CountingSpec("Observation", 2))
    token = give_token(app, "t-acme")
    status_url = _kick_off(client, token)
    run_exports(app)
    job_id = int(status_url.rsplit("/", 1)[1])
    with app.app_context():
        assert export.remove_expired_files() == 0
        assert export.remove_expired_files(now=datetime.now(UTC) + timedelta(days=2)) == 1
    assert not job_folder(app, job_id).exists()


def test_the_worker_runs_the_export_job(app):
    names = [job.name for job in periodic_jobs(app.config, threading.Event())]
    assert names == ["bulk export", "bulk export clean-up"]
