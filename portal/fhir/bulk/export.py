"""Bulk export (FHIR Bulk Data ``$export``): the client's request, the worker's run, the files.

The kick-off only writes a job row (``start_export``). The worker claims it with a lease
(``claim_job``: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of workers share the
jobs) and writes one NDJSON file per resource type into the private instance folder, line
by line from ``ResourceSpec.stream``: a resource is serialised, written and dropped, so the
worker's memory stays flat however large the export. While it writes it renews its lease
and records its progress through a connection of its own (``_heartbeat``), leaving the
stream's read alone; a job cancelled meanwhile, or whose lease another worker took over,
stops at the next heartbeat. A worker that dies leaves the lease to run out: the next
claim resumes the job after the last finished type (a type's file is written under a
``.part`` name and renamed when complete, so a half-written file is never served).

Audit: a bulk export can hold every patient's record, so it is audited as one act, not one
event per patient (a million events for one request would bury the trail): the request
(types, since), each file downloaded (type and count) and the end (counts), all naming the
API client and the job.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import orjson
from flask import current_app
from sqlalchemy import and_, or_, select, update

from portal.actors import Actor
from portal.audit import services as audit
from portal.extensions import db
from portal.fhir.bulk.models import BulkExportJob
from portal.fhir.catalog import DIRECTORY_TYPES
from portal.fhir.resources import RESOURCE_TYPES
from portal.private_files import create_private_file, make_private_folder
from portal.timeutil import utcnow
from portal.transaction import Refused, use_case, writing

CATEGORY = "fhir"
FOLDER_NAME = "fhir-bulk"
LEASE_SECONDS = 120.0
# A job that stopped this many times (its worker died or it raised) is failed, not retried.
MAX_ATTEMPTS = 3
# How long finished files stay for the client to download.
KEEP_FILES = timedelta(hours=24)
# Heartbeat at most this often (seconds), checked every HEARTBEAT_LINES lines.
HEARTBEAT_SECONDS = 5.0
HEARTBEAT_LINES = 1000
# Resource types outside the patient compartment: a Patient-level export leaves them out.


def files_root() -> Path:
    """Where export files live: ``FHIR_BULK_FOLDER`` or ``<instance>/fhir-bulk``."""
    configured = current_app.config.get("FHIR_BULK_FOLDER")
    return Path(configured) if configured else Path(current_app.instance_path) / FOLDER_NAME


def job_folder(job_id: int) -> Path:
    return files_root() / str(job_id)


def client_actor(client_name: str, source: str | None) -> Actor:
    """The audit trail's name for an API client when the worker acts for it (the same name
    its requests carry: ``api:<name>``)."""
    return Actor(id=None, username=f"api:{client_name}", source=source)


def exportable_types(level: str) -> list[str]:
    """The resource types an export of ``level`` covers, in a stable order (Patient first,
    so a reader of the files meets the patients before what points at them)."""
    names = sorted(RESOURCE_TYPES, key=lambda name: (name != "Patient", name))
    if level == "patient":
        names = [name for name in names if name not in DIRECTORY_TYPES]
    return names


# --- the client's side --------------------------------------------------------------------


def start_export(
    actor: Actor,
    client_id: str,
    client_name: str,
    *,
    level: str,
    types: list[str],
    since: datetime | None,
    request_url: str,
) -> BulkExportJob:
    """Queue an export for the worker; audited as the client's request."""
    if not types:
        raise Refused("No resource type to export.", "_type")
    with use_case():
        job = BulkExportJob(
            client_id=client_id,
            client_name=client_name,
            level=level,
            types=list(types),
            since=since,
            request_url=request_url,
            status="queued",
            types_done=0,
            resources_written=0,
            output=[],
            attempts=0,
            transaction_time=utcnow(),
        )
        db.session.add(job)
        db.session.flush()
        audit.record(
            actor,
            "fhir.export_request",
            obj=job,
            category=CATEGORY,
            detail=f"level {level}; types {','.join(types)}"
            + (f"; since {since.isoformat()}" if since else ""),
        )
    return job


def job_of_client(client_id: str, job_id: int, now: datetime | None = None):
    """The client's job, or None: another client's job, a cancelled one and an expired one
    are as unknown as a missing one."""
    job = db.session.get(BulkExportJob, job_id)
    now = now or utcnow()
    if job is None or job.client_id != client_id or job.status == "cancelled":
        return None
    if job.expires_at is not None and job.expires_at <= now:
        return None
    return job


def cancel_export(actor: Actor, client_id: str, job_id: int) -> bool:
    """Cancel a queued or running job, or delete a finished one's files (the ``DELETE`` of
    the status URL); False when the client has no such job. A running job's worker sees the
    cancellation at its next heartbeat and removes what it wrote."""
    with use_case():
        job = job_of_client(client_id, job_id)
        if job is None:
            return False
        was = job.status
        job.status = "cancelled"
        job.leased_by = None
        job.lease_until = None
        job.finished_at = job.finished_at or utcnow()
        job.expires_at = utcnow()
        audit.record(actor, "fhir.export_cancel", obj=job, category=CATEGORY, detail=f"was {was}")
    if was != "running":
        shutil.rmtree(job_folder(job_id), ignore_errors=True)
    return True


def output_file(job: BulkExportJob, file_name: str) -> tuple[dict, Path] | None:
    """The output entry and path of one of a completed job's files, or None."""
    if job.status != "completed":
        return None
    for entry in job.output:
        if entry["file"] == file_name:
            path = job_folder(job.id) / file_name
            return (entry, path) if path.is_file() else None
    return None


def record_download(actor: Actor, job: BulkExportJob, entry: dict) -> None:
    """Audit the download of one file (the resources it holds leave the clinic here)."""
    with use_case():
        audit.record(
            actor,
            "fhir.export_download",
            object_type=BulkExportJob.__tablename__,
            object_id=job.id,
            category=CATEGORY,
            detail=f"type {entry['type']}; {entry['count']} resources",
        )


def progress_text(job: BulkExportJob) -> str:
    """``X-Progress``: where the job is, in words a client's operator can read."""
    if job.status == "queued":
        return "queued"
    return (
        f"{job.types_done} of {len(job.types)} types done, "
        f"{job.resources_written} resources written"
    )


# --- the worker's side --------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs of a job it holds (plain values: the run outlives the claim's
    transaction)."""

    id: int
    claim: str
    client_name: str
    level: str
    types: tuple[str, ...]
    since: datetime | None
    output: tuple[dict, ...]
    resources_written: int


def claim_job(
    worker_name: str, *, lease_seconds: float = LEASE_SECONDS, now: datetime | None = None
) -> ClaimedJob | None:
    """Take the oldest queued job, or one whose worker's lease ran out, in one short
    transaction; None when there is none. A job out of attempts is failed instead."""
    now = now or utcnow()
    due = or_(
        BulkExportJob.status == "queued",
        and_(BulkExportJob.status == "running", BulkExportJob.lease_until < now),
    )
    while True:
        # A plain read first: an idle worker asks every two seconds, and on SQLite a use
        # case would take the write lock each time for nothing.
        waiting = db.session.scalar(select(BulkExportJob.id).where(due).limit(1))
        _end_read()
        if waiting is None:
            return None
        with use_case():
            job = db.session.scalars(
                select(BulkExportJob)
                .where(due)
                .order_by(BulkExportJob.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if job is None:
                return None
            job.attempts += 1
            if job.attempts > MAX_ATTEMPTS:
                job.status = "failed"
                job.error = f"The export stopped {MAX_ATTEMPTS} times before it finished."
                job.finished_at = now
                job.expires_at = now + KEEP_FILES
                job.leased_by = job.lease_until = None
                continue  # the next job, in a use case of its own
            claim = f"{worker_name}:{uuid.uuid4().hex[:12]}"
            job.status = "running"
            job.leased_by = claim
            job.lease_until = now + timedelta(seconds=lease_seconds)
            job.started_at = job.started_at or now
            return ClaimedJob(
                id=job.id,
                claim=claim,
                client_name=job.client_name,
                level=job.level,
                types=tuple(job.types),
                since=job.since,
                output=tuple(job.output or ()),
                resources_written=job.resources_written
                - sum(entry["count"] for entry in job.output or ()),
            )


def _held(job: ClaimedJob):
    return and_(
        BulkExportJob.id == job.id,
        BulkExportJob.status == "running",
        BulkExportJob.leased_by == job.claim,
    )


def _heartbeat(job: ClaimedJob, lease_seconds: float, **values) -> bool:
    """Renew the lease (and record progress) through a connection of the worker's own, so
    the stream's read transaction goes on; False when the job is no longer this claim's
    (cancelled, or taken over after a lease ran out)."""
    values["lease_until"] = utcnow() + timedelta(seconds=lease_seconds)
    with writing(), db.engine.begin() as connection:
        done = connection.execute(update(BulkExportJob).where(_held(job)).values(**values))
        return done.rowcount == 1


class _Abandoned(Exception):
    """The job was cancelled or taken over: stop writing, keep nothing."""


class _Stopped(Exception):
    """The worker is stopping: give the job back to be resumed."""


def run_job(
    job: ClaimedJob,
    *,
    stop: threading.Event | None = None,
    lease_seconds: float = LEASE_SECONDS,
) -> str:
    """Write the job's files, type by type, and mark it completed; returns a log line
    (counts and ids only)."""
    make_private_folder(files_root())  # each level made here is 0700
    folder = make_private_folder(job_folder(job.id))
    output = list(job.output)
    finished = {entry["type"] for entry in output}
    total = sum(entry["count"] for entry in output)
    try:
        for resource_type in job.types:
            if resource_type in finished:
                continue
            spec = RESOURCE_TYPES.get(resource_type)
            count = 0
            if spec is not None:
                count = _write_type(job, spec, folder, total, stop, lease_seconds)
            if count:
                output.append(
                    {"type": resource_type, "file": f"{resource_type}.ndjson", "count": count}
                )
            total += count
            if not _heartbeat(
                job,
                lease_seconds,
                output=list(output),
                types_done=job.types.index(resource_type) + 1,
                resources_written=total,
            ):
                raise _Abandoned()
    except _Abandoned:
        _end_read()
        shutil.rmtree(folder, ignore_errors=True)
        return f"export job {job.id}: cancelled or taken over"
    except _Stopped:
        _end_read()
        _give_back(job)
        return f"export job {job.id}: given back (worker stopping)"
    _end_read()
    _finish(job, output, total)
    return f"export job {job.id}: {total} resources in {len(output)} files"


def _write_type(job, spec, folder: Path, before: int, stop, lease_seconds: float) -> int:
    """Stream one type into ``<Type>.ndjson`` (via a ``.part`` file); returns the count."""
    path = folder / f"{spec.type}.ndjson"
    part = folder / f"{spec.type}.ndjson.part"
    part.unlink(missing_ok=True)
    create_private_file(part)
    count = 0
    last_beat = time.monotonic()
    with part.open("wb") as out:
        for resource in spec.stream(job.since, None):
            # Compact UTF-8 JSON, one resource a line (orjson: the line is most of the CPU
            # an export costs besides reading the rows).
            out.write(orjson.dumps(resource, option=orjson.OPT_APPEND_NEWLINE))
            count += 1
            if count % HEARTBEAT_LINES:
                continue
            if stop is not None and stop.is_set():
                raise _Stopped()
            if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                if not _heartbeat(job, lease_seconds, resources_written=before + count):
                    raise _Abandoned()
                last_beat = time.monotonic()
    if count:
        os.replace(part, path)
    else:
        part.unlink(missing_ok=True)  # a type with no resources has no file (Bulk Data)
    return count


def _end_read() -> None:
    # The stream read in the session's transaction; end it before the next use case.
    db.session.rollback()


def _give_back(job: ClaimedJob) -> None:
    with use_case():
        db.session.execute(
            update(BulkExportJob)
            .where(_held(job))
            .values(status="queued", leased_by=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


def _finish(job: ClaimedJob, output: list[dict], total: int) -> None:
    now = utcnow()
    with use_case():
        done = db.session.execute(
            update(BulkExportJob)
            .where(_held(job))
            .values(
                status="completed",
                output=output,
                types_done=len(job.types),
                resources_written=total,
                finished_at=now,
                expires_at=now + KEEP_FILES,
                leased_by=None,
                lease_until=None,
            )
            .execution_options(synchronize_session=False)
        )
        if done.rowcount == 1:
            audit.record(
                client_actor(job.client_name, "worker"),
                "fhir.export_complete",
                object_type=BulkExportJob.__tablename__,
                object_id=job.id,
                category=CATEGORY,
                detail=f"{total} resources in {len(output)} files",
            )


def fail_job(job: ClaimedJob, error: Exception) -> None:
    """Record that a run raised (by the error's type only: its text may hold row values);
    the job is tried again when its lease ends, until it is out of attempts."""
    _end_read()
    with use_case():
        db.session.execute(
            update(BulkExportJob)
            .where(_held(job))
            .values(error=f"The last attempt failed ({type(error).__name__}).")
            .execution_options(synchronize_session=False)
        )


def run_due_exports(
    worker_name: str, *, stop: threading.Event | None = None, lease_seconds: float = LEASE_SECONDS
) -> str | None:
    """The worker's turn: run every job that is due, one after the other."""
    lines = []
    while stop is None or not stop.is_set():
        job = claim_job(worker_name, lease_seconds=lease_seconds)
        if job is None:
            break
        try:
            lines.append(run_job(job, stop=stop, lease_seconds=lease_seconds))
        except Exception as error:
            fail_job(job, error)
            raise
    return "; ".join(lines) or None


def remove_expired_files(now: datetime | None = None) -> int:
    """Delete the folders of jobs past their expiry (or with no job row); returns how many."""
    root = files_root()
    if not root.is_dir():
        return 0
    now = now or utcnow()
    ids = [int(entry.name) for entry in root.iterdir() if entry.is_dir() and entry.name.isdigit()]
    if not ids:
        return 0
    live = set(
        db.session.scalars(
            select(BulkExportJob.id).where(
                BulkExportJob.id.in_(ids),
                or_(BulkExportJob.expires_at.is_(None), BulkExportJob.expires_at > now),
            )
        )
    )
    _end_read()
    removed = 0
    for job_id in ids:
        if job_id not in live:
            shutil.rmtree(root / str(job_id), ignore_errors=True)
            removed += 1
    return removed
