"""The audit trail: append-only, each event chained to the one before by a SHA-256 hash."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.timeutil import UTCDateTime

# A BIGINT primary key on PostgreSQL; SQLite only auto-increments an INTEGER primary key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


# The longest detail an event keeps (ids and codes only; longer is cut when recorded).
DETAIL_MAX_CHARS = 500


class AuditEvent(db.Model):
    """Who did what to which record, when, from where, and whether it worked.

    Rows are never updated or deleted (a PostgreSQL trigger refuses it). ``seq`` is the
    position in the chain: a gap means an event was removed. ``entry_hash`` covers every
    other field and ``previous_hash``, so an altered or inserted event breaks the chain.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_occurred_at", "occurred_at", "id"),
        Index("ix_audit_events_patient", "patient_id", "occurred_at"),
        Index("ix_audit_events_user", "user_id", "occurred_at"),
        Index("ix_audit_events_action", "action", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    user_id: Mapped[int | None]  # no foreign key: the trail outlives any row it mentions
    username: Mapped[str | None] = mapped_column(String(64))
    user_roles: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[int | None]
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(64))
    source_address: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(DETAIL_MAX_CHARS))
    previous_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))
