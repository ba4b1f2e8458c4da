"""Connector settings per clinic, and the outbox of messages waiting to leave the building."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.audit.models import BigId
from portal.extensions import db
from portal.timeutil import UTCDateTime


class ConnectorSetting(db.Model):
    """One clinic's configuration of one connector.

    ``values`` holds the plain settings; ``secrets`` the secret ones, each encrypted with the
    instance's data key (``portal.crypto``), so a database dump alone reveals no credential.
    A secret is never shown back: the console says only whether it is set.
    """

    __tablename__ = "connector_settings"
    __table_args__ = (UniqueConstraint("clinic_id", "connector", name="uq_connector_settings"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    connector: Mapped[str] = mapped_column(String(64))
    values: Mapped[dict] = mapped_column(JSON, default=dict)
    secrets: Mapped[dict] = mapped_column(JSON, default=dict)  # name -> encrypted token
    enabled: Mapped[bool] = mapped_column(default=False)
    # Paused: messages still queue, the worker holds them until delivery resumes.
    paused: Mapped[bool] = mapped_column(default=False)
    enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}


# Statuses of an outbox message. A transient failure (vendor down, slow, 429) puts it back to
# "pending" with a later ``next_attempt_at``; a permanent one (the vendor refused it as it
# is) makes it "failed"; running out of attempts makes it "dead". Failed and dead messages
# wait for a person (the console's replay).
OUTBOX_STATUSES = ("pending", "in_flight", "delivered", "failed", "dead")

_WAITING = text("status IN ('pending', 'in_flight')")


class OutboxMessage(db.Model):
    """One operation for a connector, written in the transaction of the change it carries
    out, delivered afterwards by the worker (at least once; ``idempotency_key`` is stable so
    the receiving side can tell a repeat)."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        # What the worker claims: waiting messages, soonest first (a partial index stays
        # small however many delivered messages the table keeps).
        Index(
            "ix_outbox_due",
            "next_attempt_at",
            "id",
            postgresql_where=_WAITING,
            sqlite_where=_WAITING,
        ),
        Index("ix_outbox_connector_status", "connector", "status", "created_at"),
        Index("ix_outbox_patient", "patient_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    connector: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSON)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    # When the worker may take it: for a pending message, its next try; for one in flight,
    # the end of the lease of the worker that holds it (a worker that died lets it go then).
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Who holds it: the worker's name and the claim, so a worker whose lease ran out (and the
    # message went to another) cannot record an outcome over the other's.
    leased_by: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict | None] = mapped_column(JSON)
    # Correlation ids: what the message is about (no foreign keys: the log outlives rows).
    patient_id: Mapped[int | None]
    prescription_id: Mapped[int | None]
    order_id: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# Statuses of an inbound message: stored and acknowledged ("received"), handled
# ("processed"), refused as malformed ("rejected", with the reason; never processed), or
# failing in its handler ("failed", retried by the worker like an outbox message).
INBOX_STATUSES = ("received", "processed", "rejected", "failed")

_UNPROCESSED = text("status IN ('received', 'failed')")


class InboxMessage(db.Model):
    """A webhook (or any message a vendor pushed), stored as it arrived before it was
    acknowledged, then processed by the worker from this copy. ``event_id`` is unique per
    connector: a resent event is acknowledged and not processed again."""

    __tablename__ = "inbox_messages"
    __table_args__ = (
        UniqueConstraint("connector", "event_id", name="uq_inbox_messages_event"),
        Index(
            "ix_inbox_due",
            "next_attempt_at",
            "id",
            postgresql_where=_UNPROCESSED,
            sqlite_where=_UNPROCESSED,
        ),
        Index("ix_inbox_connector_received", "connector", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    connector: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="received")
    reason: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(default=0)
    # As in the outbox: when it may be processed (or its worker's lease ends), and who holds it.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    leased_by: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    patient_id: Mapped[int | None]


class WebhookRefusal(db.Model):
    """A webhook refused before it was stored (forged, stale, wrongly signed): when and why,
    nothing of what was sent. The console counts them."""

    __tablename__ = "webhook_refusals"
    __table_args__ = (Index("ix_webhook_refusals_connector", "connector", "refused_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    connector: Mapped[str] = mapped_column(String(64))
    refused_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(64))


class ExternalId(db.Model):
    """Which of a vendor's ids is which of ours: a clinician (a user), a patient, a
    prescription. One vendor id per local row and kind, and the reverse."""

    __tablename__ = "external_ids"
    __table_args__ = (
        UniqueConstraint("connector", "kind", "local_id", name="uq_external_ids_local"),
        UniqueConstraint("connector", "kind", "external_id", name="uq_external_ids_external"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connector: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # "clinician", "patient", "prescription"
    local_id: Mapped[int]
    external_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EpcsVendorCredential(db.Model):
    """A prescriber's credential for sending controlled-substance prescriptions at a vendor
    (DoseSpot's ``sendEpcs`` asks for a PIN and a one-time password): the PIN and the seed of
    the one-time-password token registered with the vendor for this portal, both encrypted
    with the instance's data key (``portal.crypto``). The worker derives the one-time
    password when it sends, after the portal itself checked the prescriber's two factors at
    signing; nothing typed at signing is kept. Set by the prescriber only."""

    __tablename__ = "epcs_vendor_credentials"
    __table_args__ = (
        UniqueConstraint("connector", "user_id", name="uq_epcs_vendor_credentials_user"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connector: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    pin_encrypted: Mapped[str] = mapped_column(Text)
    otp_secret_encrypted: Mapped[str] = mapped_column(Text)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)
