"""The bulk export jobs: what a client asked for, how far the worker got, what it wrote.

A job is a row the kick-off writes and the worker claims (a lease, like the outbox's: a
worker that dies leaves the job to be claimed again when its lease ends). The files are in
the private instance folder (``export.job_folder``); the row lists them with their counts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.timeutil import UTCDateTime, utcnow

EXPORT_LEVELS = ("system", "patient")
EXPORT_STATUSES = ("queued", "running", "completed", "failed", "cancelled")


class BulkExportJob(db.Model):
    """One ``$export`` request of one API client."""

    __tablename__ = "fhir_bulk_export_jobs"
    __table_args__ = (
        CheckConstraint("level IN ('system', 'patient')", name="level"),
        CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'failed', 'cancelled')", name="status"
        ),
        # The worker's claim reads one index range: waiting jobs and those whose lease ended.
        Index("ix_fhir_bulk_export_jobs_due", "status", "lease_until"),
        Index("ix_fhir_bulk_export_jobs_client", "client_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The API client's id as the token layer gives it (``g.fhir_client.id``): only that
    # client may poll, download or delete the job.
    client_id: Mapped[str] = mapped_column(String(100))
    client_name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(16))
    # FHIR resource type names, in the order they are written.
    types: Mapped[list] = mapped_column(JSON)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The kick-off URL as the client sent it (the manifest's ``request``): the query string
    # of an export holds resource types and a date, never patient data.
    request_url: Mapped[str] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    # Types finished and resources written so far, for ``X-Progress``.
    types_done: Mapped[int] = mapped_column(default=0)
    resources_written: Mapped[int] = mapped_column(default=0)
    # [{"type": "Patient", "file": "Patient.ndjson", "count": 12}, ...] of finished types.
    output: Mapped[list] = mapped_column(JSON, default=list)
    # Why the job failed, in words without patient data (an exception's type, a message).
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    leased_by: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The manifest's transactionTime: resources changed later may be missing from the files.
    transaction_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # After this the files are deleted and the status URL answers 404.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
