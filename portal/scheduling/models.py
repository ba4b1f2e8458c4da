"""Scheduling: rooms, appointment types, providers' availability, appointments, waitlist.

Times are stored in UTC. Weekly templates are in the clinic's wall-clock time (a block
"Mon 08:00-12:00" stays 08:00 local across daylight-saving changes), which is why their
times are ``time`` values and not instants.

No double booking: a provider, a room and a patient never hold two *active* appointments
that overlap (half-open, so back-to-back is fine). PostgreSQL enforces it with exclusion
constraints over ``tstzrange`` (migration 0002); on SQLite the booking service checks inside
its write-locked transaction (every transaction there starts with BEGIN IMMEDIATE).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.timeutil import UTCDateTime, utcnow

# Statuses in the order a visit moves through them; the last two end it without a visit.
STATUS_FLOW = ("scheduled", "confirmed", "arrived", "roomed", "with_provider", "completed")
STATUS_LABELS = {
    "scheduled": "Scheduled",
    "confirmed": "Confirmed",
    "arrived": "Checked in",
    "roomed": "Roomed",
    "with_provider": "With provider",
    "completed": "Completed",
    "cancelled": "Cancelled",
    "no_show": "No-show",
}
# Appointments in these statuses hold their time; the others free it.
INACTIVE_STATUSES = ("cancelled", "no_show")
# No visit lasts longer (booking refuses more): searches for what overlaps a time bound
# ``starts_at`` from below too, so the (provider_id, starts_at) index scans only that much.
LONGEST_APPOINTMENT = timedelta(hours=12)
VISIT_KINDS = {"new": "New patient", "follow_up": "Follow-up"}
MODALITIES = {"in_person": "In person", "telehealth": "Telehealth"}
EXCEPTION_KINDS = {"time_off": "Time off", "extra": "Extra session"}

appointment_type_providers = Table(
    "appointment_type_providers",
    db.metadata,
    Column(
        "appointment_type_id",
        ForeignKey("appointment_types.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("provider_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)

availability_block_types = Table(
    "availability_block_types",
    db.metadata,
    Column("block_id", ForeignKey("availability_blocks.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "appointment_type_id",
        ForeignKey("appointment_types.id", ondelete="CASCADE"),
        primary_key=True,
    ),
)


class Room(db.Model):
    __tablename__ = "rooms"
    __table_args__ = (UniqueConstraint("location_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    is_active: Mapped[bool] = mapped_column(default=True)


class AppointmentType(db.Model):
    __tablename__ = "appointment_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    default_minutes: Mapped[int]
    colour: Mapped[str] = mapped_column(String(7), default="#1f5f8b")  # #rrggbb
    visit_kind: Mapped[str] = mapped_column(String(16), default="follow_up")
    modality: Mapped[str] = mapped_column(String(16), default="in_person")
    is_active: Mapped[bool] = mapped_column(default=True)

    providers = relationship("User", secondary=appointment_type_providers, lazy="selectin")


class AvailabilityBlock(db.Model):
    """One block of a provider's weekly template: a weekday, local times, a location."""

    __tablename__ = "availability_blocks"
    __table_args__ = (Index("ix_availability_blocks_provider", "provider_id", "weekday"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    weekday: Mapped[int]  # 0 = Monday ... 6 = Sunday
    start_time: Mapped[time]  # clinic wall-clock time
    end_time: Mapped[time]
    valid_from: Mapped[date | None]
    valid_until: Mapped[date | None]  # inclusive

    # Empty: every type the provider offers may be booked in this block.
    allowed_types = relationship(
        "AppointmentType", secondary=availability_block_types, lazy="selectin"
    )


class AvailabilityException(db.Model):
    """A dated change to a provider's template: time off, or an extra session."""

    __tablename__ = "availability_exceptions"
    __table_args__ = (Index("ix_availability_exceptions_provider", "provider_id", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # time_off | extra
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))  # for extra
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(200))


class ClinicClosure(db.Model):
    """Whole days the clinic (or one location) is closed: holidays, weather."""

    __tablename__ = "clinic_closures"

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))  # None: all
    first_day: Mapped[date]
    last_day: Mapped[date]
    reason: Mapped[str | None] = mapped_column(String(200))


class RecurringSeries(db.Model):
    __tablename__ = "recurring_series"

    id: Mapped[int] = mapped_column(primary_key=True)
    interval_weeks: Mapped[int]
    occurrences: Mapped[int]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Appointment(db.Model):
    """A booked visit. Never deleted: cancelled or marked no-show instead."""

    __tablename__ = "appointments"
    __table_args__ = (
        Index("ix_appointments_provider_time", "provider_id", "starts_at"),
        Index("ix_appointments_patient_time", "patient_id", "starts_at"),
        Index("ix_appointments_location_time", "location_id", "starts_at"),
        Index("ix_appointments_room_time", "room_id", "starts_at"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint(
            "status IN ('scheduled', 'confirmed', 'arrived', 'roomed', 'with_provider', "
            "'completed', 'cancelled', 'no_show')",
            name="status",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id"))
    appointment_type_id: Mapped[int] = mapped_column(ForeignKey("appointment_types.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Booked on purpose over another appointment (permission schedule.overbook, audited):
    # exempt from the provider's no-overlap rule, never from the room's or the patient's.
    overbooked: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str | None] = mapped_column(String(500))
    notes: Mapped[str | None] = mapped_column(Text)
    series_id: Mapped[int | None] = mapped_column(ForeignKey("recurring_series.id"), index=True)
    # A key the booking form carries, so submitting it twice books once.
    request_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    late_cancel: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int] = mapped_column(default=1)  # refuses a stale form's change
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __mapper_args__ = {"version_id_col": version}

    patient = relationship("Patient", lazy="joined")
    appointment_type = relationship("AppointmentType", lazy="joined")
    room = relationship("Room")
    history: Mapped[list[AppointmentStatusChange]] = relationship(
        back_populates="appointment", order_by="AppointmentStatusChange.id"
    )

    @property
    def is_active(self) -> bool:
        return self.status not in INACTIVE_STATUSES


class AppointmentStatusChange(db.Model):
    """When each status was reached, and by whom (the flow board's and the audit's source)."""

    __tablename__ = "appointment_status_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(
        ForeignKey("appointments.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    appointment: Mapped[Appointment] = relationship(back_populates="history")


class WaitlistEntry(db.Model):
    """A patient who wants an earlier slot of a type, with some providers, within dates."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (Index("ix_waitlist_entries_open", "status", "appointment_type_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    appointment_type_id: Mapped[int] = mapped_column(ForeignKey("appointment_types.id"))
    # Comma-separated provider ids; empty means any provider who offers the type.
    provider_ids: Mapped[str] = mapped_column(String(500), default="")
    earliest_day: Mapped[date]
    latest_day: Mapped[date]
    notes: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="waiting")  # waiting|booked|removed
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CalendarFeed(db.Model):
    """A provider's iCalendar feed at an unguessable URL; only the token's hash is kept."""

    __tablename__ = "calendar_feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The provider's own choice when creating it (and only while the clinic allows names).
    shows_names: Mapped[bool] = mapped_column(default=False, server_default=false())


class CalendarPreference(db.Model):
    """Which providers' columns a user shows in the day view, remembered between visits."""

    __tablename__ = "calendar_preferences"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    provider_ids: Mapped[str] = mapped_column(String(1000), default="")
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
