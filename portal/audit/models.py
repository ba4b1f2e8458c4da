"""The audit trail: append-only events, each with a keyed MAC, chained by the sealer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.timeutil import UTCDateTime

# A BIGINT primary key on PostgreSQL; SQLite only auto-increments an INTEGER primary key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


# The longest detail an event keeps (ids and codes only; longer is cut when recorded).
DETAIL_MAX_CHARS = 500

_UNSEALED = text("seq IS NULL")


class AuditEvent(db.Model):
    """Who did what to which record, when, from where, and whether it worked.

    An event is written in the transaction of the change it records, with ``event_mac``
    (a MAC of its fields under the audit key, which is kept outside the database) and
    nothing else that needs coordination: no position, no link. The sealer then gives it
    its place in the chain (``seq``, ``previous_hash``, ``entry_hash``; ``seal_problem``
    when its MAC did not verify), and that one UPDATE, of those columns from NULL, is the
    only change the database allows (a trigger refuses any other UPDATE, and DELETE and
    TRUNCATE). See ``portal.audit.integrity`` for the MACs and ``portal.audit.sealing``.

    Events written before the trail was keyed (``scheme`` "sha256") keep their unkeyed
    SHA-256 chain; the first keyed link follows the last of them.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_occurred_at", "occurred_at", "id"),
        Index("ix_audit_events_patient", "patient_id", "occurred_at"),
        Index("ix_audit_events_user", "user_id", "occurred_at"),
        Index("ix_audit_events_action", "action", "occurred_at"),
        # What the sealer reads: the events still waiting for their place in the chain.
        Index("ix_audit_events_unsealed", "id", postgresql_where=_UNSEALED, sqlite_where=_UNSEALED),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    user_id: Mapped[int | None]  # no foreign key: the trail outlives any row it mentions
    username: Mapped[str | None] = mapped_column(String(64))
    user_roles: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[int | None]
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(64))
    # The client's address for a web request, else "cli", "worker" or "webhook".
    source: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(DETAIL_MAX_CHARS))
    # How the event is protected: "hmac" (event_mac, chained by the sealer) or "sha256".
    scheme: Mapped[str] = mapped_column(String(16))
    nonce: Mapped[str | None] = mapped_column(String(32))
    event_mac: Mapped[str | None] = mapped_column(String(64))
    # Set once, by the sealer.
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    previous_hash: Mapped[str | None] = mapped_column(String(64))
    entry_hash: Mapped[str | None] = mapped_column(String(64))
    seal_problem: Mapped[str | None] = mapped_column(String(32))
