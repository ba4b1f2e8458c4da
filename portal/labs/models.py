"""The labs' tables: raw HL7 messages, orders and their tests, results, and the queue of
results that could not be attached to a patient safely.

Why each exists:

- ``lab_messages``: every HL7 message in or out, kept raw. An inbound message is written and
  committed *before* the lab gets its ACK, so nothing acknowledged is ever lost; parsing and
  matching run from the stored copy and can be run again. Accepted messages are unique by
  (direction, sending facility, control id): a lab that resends one (it missed our ACK)
  finds it stored and gets the same answer, and its results are filed once. Refused ones
  are kept too, each time they come.
- ``lab_orders`` / ``lab_order_tests``: what a prescriber ordered, under a placer order number
  that travels in the HL7 order and comes back in the results (how a result finds its order).
- ``lab_results``: one observation (an OBX), with its LOINC code, value, UCUM unit, range,
  flag and status. A corrected or final result that replaces an earlier one points at it
  (``supersedes_id``) and the earlier row gets ``superseded_at``: history is kept, and the
  current value is the row with ``superseded_at`` empty.
- ``unmatched_results``: a message's results that could not be attached safely (unknown MRN,
  birth date differs, two candidates, the name differs, the order's patient differs). Its
  results wait here with no patient until someone attaches them (audited); a mismatch is
  never attached automatically.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.timeutil import UTCDateTime, utcnow

# lab_messages.state
RECEIVED = "received"  # stored (and acknowledged): waiting to be parsed and matched
PROCESSED = "processed"  # its results are filed (to a patient, or to the unmatched queue)
REJECTED = "rejected"  # answered AE/AR: kept for the record, nothing to file
FAILED = "failed"  # processing raised: kept, retried by ``process_pending``
SENT = "sent"  # outbound, handed to the lab
MESSAGE_STATES = (RECEIVED, PROCESSED, REJECTED, FAILED, SENT)

# An order's states and their meaning: portal/labs/states.py (the one state machine).
ORDER_STATUSES = (
    "draft",
    "signed",
    "sent",
    "acknowledged",
    "partially_resulted",
    "resulted",
    "reviewed",
    "cancelled",
    "error",
)
PRIORITIES = ("routine", "stat")
RESULT_STATUSES = ("P", "F", "C", "X")  # preliminary, final, corrected, cancelled
VALUE_TYPES = ("NM", "SN", "ST", "TX", "FT", "CE", "CWE")
CRITICAL_FLAGS = ("HH", "LL", "AA")
# A current result of a patient nobody has signed off yet (the inbox, the chart's flag).
WAITING_FOR_REVIEW = "reviewed_at IS NULL AND superseded_at IS NULL AND patient_id IS NOT NULL"
# Severity: 2 critical, 1 abnormal, 0 normal; lab_results.review_rank is 2 - severity (the
# inbox reads critical first, in index order).
CRITICAL, ABNORMAL, NORMAL = 2, 1, 0


def severity_of(flag: str | None) -> int:
    """2 critical (HH, LL, AA), 0 normal (no flag, or N), 1 abnormal (any other flag)."""
    if flag in CRITICAL_FLAGS:
        return CRITICAL
    return NORMAL if flag in (None, "", "N") else ABNORMAL


def review_rank_of(flag: str | None) -> int:
    return CRITICAL - severity_of(flag)


CRITICAL_WAITING = WAITING_FOR_REVIEW + " AND abnormal_flag IN ('HH', 'LL', 'AA')"


class LabMessage(db.Model):
    """One HL7 v2 message, inbound or outbound, exactly as it travelled (``raw``: bytes,
    since a message may not decode), with what we answered and what became of it."""

    __tablename__ = "lab_messages"
    __table_args__ = (
        # Unique among accepted messages only: a message we refused (AE/AR) may come again,
        # corrected, under the same control id, and must be read again, not answered from
        # the refused copy.
        Index(
            "uq_lab_messages_accepted",
            "direction",
            "sending_facility",
            "control_id",
            unique=True,
            postgresql_where=text("ack_code = 'AA'"),
            sqlite_where=text("ack_code = 'AA'"),
        ),
        # Processing picks up what is waiting or failed, oldest first.
        Index("ix_lab_messages_state", "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    direction: Mapped[str] = mapped_column(String(3))  # "in" / "out"
    connector: Mapped[str] = mapped_column(String(64))
    # Both empty when the message could not be read that far (garbage, no MSH): such a
    # message is never a duplicate of another (NULLs are distinct in the unique index).
    sending_facility: Mapped[str | None] = mapped_column(String(227))
    control_id: Mapped[str | None] = mapped_column(String(199))
    message_type: Mapped[str | None] = mapped_column(String(32))
    version: Mapped[str | None] = mapped_column(String(16))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state: Mapped[str] = mapped_column(String(16))
    ack_code: Mapped[str | None] = mapped_column(String(2))
    error: Mapped[str | None] = mapped_column(String(500))
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)


class LabOrder(db.Model):
    """A prescriber's order of one or more tests for one patient, sent to one lab."""

    __tablename__ = "lab_orders"
    __table_args__ = (
        Index("ix_lab_orders_patient", "patient_id", "created_at"),
        Index("ix_lab_orders_provider_status", "ordering_provider_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    placer_order_number: Mapped[str] = mapped_column(String(22), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    ordering_provider_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("encounters.id"))
    connector: Mapped[str | None] = mapped_column(String(64))  # the performing lab
    priority: Mapped[str] = mapped_column(String(8), default="routine")
    fasting: Mapped[bool] = mapped_column(Boolean, default=False)
    collection_date: Mapped[date | None]
    note: Mapped[str | None] = mapped_column(String(500))
    # ICD-10-CM codes, space-separated (from the problem list).
    diagnoses: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(24), default="draft")
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The order's way out (migration 0026): handed to the lab, its ACK, a cancel.
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    tests: Mapped[list[LabOrderTest]] = relationship(
        back_populates="order", order_by="LabOrderTest.id"
    )


class LabOrderTest(db.Model):
    """One catalog test (or panel) on an order."""

    __tablename__ = "lab_order_tests"
    __table_args__ = (UniqueConstraint("order_id", "loinc", name="uq_lab_order_tests_loinc"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("lab_orders.id"))
    loinc: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(200))
    # The clinic's lab's own code for it, when the lab uses one.
    lab_code: Mapped[str | None] = mapped_column(String(50))

    order: Mapped[LabOrder] = relationship(back_populates="tests")


class UnmatchedResult(db.Model):
    """A received message's results that wait for a person to attach them to a patient."""

    __tablename__ = "unmatched_results"
    __table_args__ = (Index("ix_unmatched_results_open", "resolved_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("lab_messages.id"))
    # A code (``unknown_mrn``, ``birth_date_differs``, ``two_candidates``,
    # ``name_differs``, ``order_patient_differs``, ``no_identifier``) and its words.
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(300))
    # Patients the message could mean (ids, space-separated), for the side-by-side view.
    candidate_patient_ids: Mapped[str | None] = mapped_column(String(200))
    placer_order_number: Mapped[str | None] = mapped_column(String(22))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))


class LabResult(db.Model):
    """One observation (an OBX) of a received message."""

    __tablename__ = "lab_results"
    __table_args__ = (
        # A patient's results by analyte and time (the chart, the trend).
        Index("ix_lab_results_patient", "patient_id", "loinc", "observed_at"),
        Index("ix_lab_results_order_test", "order_test_id"),
        Index("ix_lab_results_unmatched", "unmatched_id"),
        # The review inbox: current, unreviewed results.
        Index("ix_lab_results_unreviewed", "reviewed_at", "superseded_at"),
        # What a new result supersedes: the same patient's results of a filler order number.
        Index("ix_lab_results_patient_filler", "patient_id", "filler_order_number"),
        # The results inbox (0027): a reviewer's results waiting for review in the inbox's
        # order (critical, abnormal, normal; oldest first), so a page reads its hundred rows
        # from the index and the counts from the index alone. NULL reviewer: the pool's.
        Index(
            "ix_lab_results_inbox",
            "reviewer_id",
            "review_rank",
            "received_at",
            "id",
            postgresql_where=text(WAITING_FOR_REVIEW),
            sqlite_where=text(WAITING_FOR_REVIEW),
        ),
        # The chart's flag (0027): a patient's critical results nobody has reviewed.
        Index(
            "ix_lab_results_patient_critical",
            "patient_id",
            postgresql_where=text(CRITICAL_WAITING),
            sqlite_where=text(CRITICAL_WAITING),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("lab_messages.id"))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("lab_orders.id"))
    order_test_id: Mapped[int | None] = mapped_column(ForeignKey("lab_order_tests.id"))
    unmatched_id: Mapped[int | None] = mapped_column(ForeignKey("unmatched_results.id"))
    # The filler's identity of the observation: (filler order number, OBX-3 code, OBX-4
    # sub-id) says which earlier row a correction replaces.
    filler_order_number: Mapped[str | None] = mapped_column(String(50))
    loinc: Mapped[str | None] = mapped_column(String(10))  # when OBX-3 is coded in LN
    code: Mapped[str] = mapped_column(String(50))  # OBX-3 as sent
    code_system: Mapped[str | None] = mapped_column(String(20))
    sub_id: Mapped[str | None] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    value_type: Mapped[str] = mapped_column(String(3))
    value_text: Mapped[str | None] = mapped_column(Text)
    value_numeric: Mapped[float | None] = mapped_column(Numeric(18, 6, asdecimal=False))
    units: Mapped[str | None] = mapped_column(String(60))  # UCUM where known
    reference_range: Mapped[str | None] = mapped_column(String(60))
    abnormal_flag: Mapped[str | None] = mapped_column(String(5))
    status: Mapped[str] = mapped_column(String(1))
    observed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    performing_lab: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("lab_results.id"))
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    review_comment: Mapped[str | None] = mapped_column(String(1000))
    # Whose inbox it is in (0027): the order's orderer, copied when filed or attached (None:
    # no order, the shared pool's); and its place there (``review_rank_of`` its flag: 0
    # critical, 1 abnormal, 2 normal), so the inbox is one index range in its own order.
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    review_rank: Mapped[int] = mapped_column(SmallInteger, default=2, server_default="2")

    @property
    def is_abnormal(self) -> bool:
        return bool(self.abnormal_flag) and self.abnormal_flag != "N"

    @property
    def is_critical(self) -> bool:
        return self.abnormal_flag in CRITICAL_FLAGS
