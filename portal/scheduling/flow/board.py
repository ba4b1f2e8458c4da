"""The flow board: today's appointments at a location, in columns by where each visit is,
with how long each has been there and how long the patient has waited for the provider."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select

from portal.audit import services as audit
from portal.auth.models import User
from portal.clinic.clock import clinic_today, clinic_zone, day_bounds
from portal.extensions import db
from portal.patients.models import Patient, format_display_name
from portal.scheduling.models import (
    Appointment,
    AppointmentStatusChange,
    AppointmentType,
    Room,
)
from portal.scheduling.services import CATEGORY
from portal.timeutil import utcnow
from portal.transaction import use_case

# The flow board's columns, in the order a visit moves through them.
BOARD_COLUMNS = (
    ("expected", "Expected", ("scheduled", "confirmed")),
    ("arrived", "Checked in", ("arrived",)),
    ("roomed", "Roomed", ("roomed",)),
    ("with_provider", "With provider", ("with_provider",)),
    ("done", "Done", ("completed", "no_show")),
)


@dataclass
class BoardCard:
    """What one card shows: plain values, not the appointment's row and its relations."""

    appointment_id: int
    starts_at: datetime
    time_label: str  # the start, HH:MM in the clinic's zone
    status: str
    patient_name: str
    type_name: str
    provider_name: str
    room_name: str | None
    in_status_minutes: int
    waiting_minutes: int | None  # from check-in until the provider came in (or until now)


@dataclass
class FlowBoard:
    """One location's board for one clinic day: its columns, each a (key, label, cards)."""

    location_id: int
    day: date
    generated_at: datetime
    columns: list[tuple[str, str, list[BoardCard]]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(cards) for _, _, cards in self.columns)


def _minutes(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds() // 60))


def board_rows(location_id: int, day: date) -> tuple[list, dict[tuple[int, str], datetime]]:
    """The flow board's reads: the day's cards as plain rows (one joined query, only the
    columns a card shows), and when each appointment last reached check-in and the provider
    (one query; later history rows win)."""
    start, end = day_bounds(day)
    todays = (
        Appointment.location_id == location_id,
        Appointment.starts_at >= start,
        Appointment.starts_at < end,
        Appointment.status != "cancelled",
    )
    rows = db.session.execute(
        select(
            Appointment.id,
            Appointment.starts_at,
            Appointment.status,
            Appointment.status_changed_at,
            Patient.family_name,
            Patient.given_name,
            Patient.preferred_name,
            AppointmentType.name,
            User.full_name,
            Room.name,
        )
        .join(Patient, Patient.id == Appointment.patient_id)
        .join(AppointmentType, AppointmentType.id == Appointment.appointment_type_id)
        .join(User, User.id == Appointment.provider_id)
        .outerjoin(Room, Room.id == Appointment.room_id)
        .where(*todays)
        .order_by(Appointment.starts_at, Appointment.id)
    ).all()
    reached: dict[tuple[int, str], datetime] = {}
    for appointment_id, status, changed_at in db.session.execute(
        select(
            AppointmentStatusChange.appointment_id,
            AppointmentStatusChange.status,
            AppointmentStatusChange.changed_at,
        )
        .join(Appointment, Appointment.id == AppointmentStatusChange.appointment_id)
        .where(*todays, AppointmentStatusChange.status.in_(("arrived", "with_provider")))
        .order_by(AppointmentStatusChange.id)
    ):
        reached[(appointment_id, status)] = changed_at
    return rows, reached


def flow_board(
    actor, location_id: int, *, now: datetime | None = None, background: bool = False
) -> FlowBoard:
    """Today's appointments at a location, grouped by status, with times in status and waiting.

    Cancelled appointments are left off. The view is audited (it lists patients) with the
    location, the number of appointments shown and a digest of their ids, never the names.
    A ``background`` refresh (the board polling itself) is audited only when it shows a
    different set of appointments than this user's last view of the board today: the trail
    still says who saw which appointments, without an event every 15 seconds per screen.

    The board polls every few seconds from every front-desk screen, so it reads plain rows
    (``board_rows``), not whole appointments with their patients, types and histories, and
    reads them first, as a plain read: the use case only records the view, so the read
    never holds SQLite's write lock.
    """
    now = now or utcnow()
    day = clinic_today(now)
    rows, reached = board_rows(location_id, day)
    zone = clinic_zone()
    column_of = {status: key for key, _, statuses in BOARD_COLUMNS for status in statuses}
    cards: dict[str, list[BoardCard]] = {key: [] for key, _, _ in BOARD_COLUMNS}
    for (
        appointment_id,
        starts_at,
        status,
        status_changed_at,
        family_name,
        given_name,
        preferred_name,
        type_name,
        provider_name,
        room_name,
    ) in rows:
        key = column_of.get(status)
        if key is None:
            continue
        arrived_at = reached.get((appointment_id, "arrived"))
        waiting = None
        if arrived_at is not None:
            seen_at = reached.get((appointment_id, "with_provider"))
            waiting = _minutes((seen_at or now) - arrived_at)
        cards[key].append(
            BoardCard(
                appointment_id=appointment_id,
                starts_at=starts_at,
                time_label=starts_at.astimezone(zone).strftime("%H:%M"),
                status=status,
                patient_name=format_display_name(family_name, given_name, preferred_name),
                type_name=type_name,
                provider_name=provider_name,
                room_name=room_name,
                in_status_minutes=_minutes(now - status_changed_at),
                waiting_minutes=waiting,
            )
        )
    board = FlowBoard(location_id=location_id, day=day, generated_at=now)
    board.columns = [(key, label, cards[key]) for key, label, _ in BOARD_COLUMNS]
    shown_ids = [card.appointment_id for _, _, column in board.columns for card in column]
    detail = _board_view_detail(location_id, shown_ids)
    if shown_ids and not (
        background
        and audit.latest_detail(actor.id, "flow_board.view", day_bounds(day)[0]) == detail
    ):
        with use_case():
            audit.record(actor, "flow_board.view", category=CATEGORY, detail=detail)
    return board


def _board_view_detail(location_id: int, appointment_ids: list[int]) -> str:
    """Ids and counts only: the digest names the set of appointments shown."""
    ids = ",".join(str(appointment_id) for appointment_id in sorted(appointment_ids))
    digest = hashlib.sha256(ids.encode()).hexdigest()[:16]
    return f"location={location_id} appointments={len(appointment_ids)} shown={digest}"
