"""The day of a visit: status changes and check-in, the flow board, the waitlist, calendar feeds.

Each public function that changes something is one transaction with its audit event(s)
(category "appointments"); readers that show patient names record that they did.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import NotFound

from portal.actors import integration
from portal.audit import services as audit
from portal.clinic.services import clinic_time_zone, current_clinic
from portal.extensions import db
from portal.scheduling.models import (
    INACTIVE_STATUSES,
    STATUS_LABELS,
    Appointment,
    AppointmentStatusChange,
    AppointmentType,
    CalendarFeed,
    Room,
    WaitlistEntry,
)
from portal.scheduling.services import (
    CATEGORY,
    SchedulingError,
    StaleChange,
    get_appointment_for,
)
from portal.timeutil import utcnow

# Where a visit may go next from each status. Cancelling belongs to the booking use cases
# (it needs who and why); completed, cancelled and no-show end the visit.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "scheduled": ("confirmed", "arrived", "no_show"),
    "confirmed": ("arrived", "no_show"),
    "arrived": ("roomed", "with_provider"),
    "roomed": ("with_provider",),
    "with_provider": ("completed",),
    "completed": (),
    "cancelled": (),
    "no_show": (),
}
# What the button for each target status says.
ACTION_LABELS = {
    "confirmed": "Confirm",
    "arrived": "Check in",
    "roomed": "Room patient",
    "with_provider": "Provider in",
    "completed": "Complete visit",
    "no_show": "Mark no-show",
}
# The flow board's columns, in the order a visit moves through them.
BOARD_COLUMNS = (
    ("expected", "Expected", ("scheduled", "confirmed")),
    ("arrived", "Checked in", ("arrived",)),
    ("roomed", "Roomed", ("roomed",)),
    ("with_provider", "With provider", ("with_provider",)),
    ("done", "Done", ("completed", "no_show")),
)
WAITLIST_MAX_DAYS = 366


def _zone() -> ZoneInfo:
    return ZoneInfo(clinic_time_zone())


def clinic_today(now: datetime | None = None) -> date:
    """Today's date where the clinic is."""
    return (now or utcnow()).astimezone(_zone()).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants at which a clinic-local day starts and the next one starts."""
    zone = _zone()
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def allowed_next(appointment: Appointment) -> tuple[str, ...]:
    """The statuses the appointment may move to now."""
    return TRANSITIONS.get(appointment.status, ())


# --- status changes and check-in -------------------------------------------------------------


def _room_taken(appointment: Appointment, room_id: int) -> bool:
    """Another active appointment holds the room for part of this one's time."""
    clash = db.session.scalar(
        select(Appointment.id)
        .where(
            Appointment.room_id == room_id,
            Appointment.id != appointment.id,
            Appointment.status.not_in(INACTIVE_STATUSES),
            Appointment.starts_at < appointment.ends_at,
            Appointment.ends_at > appointment.starts_at,
        )
        .limit(1)
    )
    return clash is not None


def _check_transition(
    appointment: Appointment,
    status: str,
    now: datetime,
    room_id: int | None,
    demographics_confirmed: bool,
    insurance_confirmed: bool,
) -> Room | None:
    if status not in STATUS_LABELS:
        raise SchedulingError("Choose a status from the list.", field="status")
    if status not in allowed_next(appointment):
        raise SchedulingError(
            f"An appointment that is {STATUS_LABELS[appointment.status].lower()} "
            f"cannot be marked {STATUS_LABELS[status].lower()}.",
            field="status",
        )
    if status == "no_show" and now < appointment.starts_at:
        raise SchedulingError(
            "A no-show can be recorded only once the appointment's start time has passed.",
            field="status",
        )
    if status == "arrived":
        if clinic_today(now) != appointment.starts_at.astimezone(_zone()).date():
            raise SchedulingError(
                "Patients can be checked in only on the day of their appointment.",
                field="status",
            )
        if not demographics_confirmed:
            raise SchedulingError(
                "Confirm the patient's demographics with them first.",
                field="demographics_confirmed",
            )
        if not insurance_confirmed:
            raise SchedulingError(
                "Confirm the patient's insurance with them first.", field="insurance_confirmed"
            )
    room = None
    if status == "roomed":
        if room_id is None:
            raise SchedulingError("Choose the room.", field="room_id")
        room = db.session.get(Room, room_id)
        if room is None or not room.is_active or room.location_id != appointment.location_id:
            raise SchedulingError("Choose one of this location's rooms.", field="room_id")
        if _room_taken(appointment, room.id):
            raise SchedulingError(
                f"{room.name} is held by another appointment at this time.", field="room_id"
            )
    return room


def change_status(
    actor,
    appointment_id: int,
    status: str,
    version: int | None,
    *,
    room_id: int | None = None,
    demographics_confirmed: bool = False,
    insurance_confirmed: bool = False,
    now: datetime | None = None,
) -> Appointment:
    """Move an appointment to its next status, with its timestamp, history row and audit.

    Refuses (SchedulingError, naming the field) a transition the flow does not allow, a
    no-show before the start time, a check-in on another day or without the patient's
    demographics and insurance confirmed, and rooming into a room that is taken or
    elsewhere. A form older than the appointment's current version raises StaleChange.
    """
    now = now or utcnow()
    appointment = get_appointment_for(actor, appointment_id)
    try:
        if version is None or int(version) != appointment.version:
            raise StaleChange()
        room = _check_transition(
            appointment, status, now, room_id, demographics_confirmed, insurance_confirmed
        )
    except SchedulingError:
        db.session.rollback()  # end the read (SQLite holds its write lock until then)
        raise
    previous = appointment.status
    detail = f"{previous} -> {status}"
    if status == "arrived":
        detail += "; demographics and insurance confirmed"
    if room is not None:
        detail += f"; room {room.id}"
    try:
        appointment.status = status
        appointment.status_changed_at = now
        if room is not None:
            appointment.room_id = room.id
        db.session.add(
            AppointmentStatusChange(
                appointment_id=appointment.id,
                status=status,
                changed_at=now,
                changed_by_id=actor.id,
            )
        )
        # The UPDATE runs here: a concurrent change (version) or a room taken meanwhile
        # (PostgreSQL's exclusion constraint) is refused before anything else is written.
        db.session.flush()
        audit.record(
            actor,
            "appointment.status",
            patient_id=appointment.patient_id,
            obj=appointment,
            category=CATEGORY,
            detail=detail,
        )
        db.session.commit()
    except StaleDataError as error:
        db.session.rollback()
        raise StaleChange() from error
    except IntegrityError as error:
        db.session.rollback()
        if getattr(error.orig, "sqlstate", None) != "23P01":  # not the room's exclusion
            raise
        raise SchedulingError(
            "That room was just taken by another appointment — choose another.",
            field="room_id",
        ) from error
    return appointment


# Steps that can be taken back (a click on the wrong card): not cancel or no-show, which free
# the time and may have let someone else book it; those are re-booked instead.
UNDOABLE_STATUSES = ("confirmed", "arrived", "roomed", "with_provider", "completed")


def status_before(appointment: Appointment) -> str | None:
    """The status an undo would return to, or None when the last step can't be undone.

    Replays the history as a stack: a change back to the status below the top is an earlier
    undo (the flow itself only moves forward), so undoing twice steps back twice.
    """
    if appointment.status not in UNDOABLE_STATUSES:
        return None
    stack = ["scheduled"]
    for change in appointment.history:
        if len(stack) > 1 and change.status == stack[-2]:
            stack.pop()
        else:
            stack.append(change.status)
    if len(stack) < 2 or stack[-1] != appointment.status:
        return None
    return stack[-2]


def undo_status(
    actor, appointment_id: int, version: int | None, *, now: datetime | None = None
) -> Appointment:
    """Take the appointment's last status step back, the same clinic day; audited.

    The undo is itself a history row (who and when), so the step and its undo both stay
    on record.
    """
    now = now or utcnow()
    appointment = get_appointment_for(actor, appointment_id)
    previous = status_before(appointment)
    last_change = appointment.history[-1].changed_at if appointment.history else None
    try:
        if version is None or int(version) != appointment.version:
            raise StaleChange()
        if previous is None or last_change is None:
            raise SchedulingError("This appointment's last step cannot be undone.", field="status")
        if clinic_today(last_change) != clinic_today(now):
            raise SchedulingError(
                "Only a step taken today can be undone; change the status instead.",
                field="status",
            )
    except SchedulingError:
        db.session.rollback()
        raise
    detail = f"undo: {appointment.status} -> {previous}"
    try:
        appointment.status = previous
        appointment.status_changed_at = now
        db.session.add(
            AppointmentStatusChange(
                appointment_id=appointment.id,
                status=previous,
                changed_at=now,
                changed_by_id=actor.id,
            )
        )
        db.session.flush()
        audit.record(
            actor,
            "appointment.status",
            patient_id=appointment.patient_id,
            obj=appointment,
            category=CATEGORY,
            detail=detail,
        )
        db.session.commit()
    except StaleDataError as error:
        db.session.rollback()
        raise StaleChange() from error
    return appointment


def view_appointment_flow(actor, appointment_id: int, *, purpose: str = "status") -> Appointment:
    """Load an appointment (with its history) to show its status panel; audited."""
    appointment = get_appointment_for(actor, appointment_id)
    _ = appointment.history, appointment.room  # loaded inside this transaction
    audit.record(
        actor,
        "appointment.view",
        patient_id=appointment.patient_id,
        obj=appointment,
        category=CATEGORY,
        detail=purpose,
    )
    db.session.commit()
    return appointment


def view_for_check_in(actor, appointment_id: int) -> Appointment:
    """Load an appointment and its patient's demographics and insurance for check-in."""
    appointment = get_appointment_for(actor, appointment_id)
    audit.record(
        actor,
        "patient.view",
        patient_id=appointment.patient_id,
        obj=appointment.patient,
        category="demographics",
        detail="check-in",
    )
    db.session.commit()
    return appointment


def rooms_for(appointment: Appointment) -> list[Room]:
    """The active rooms of the appointment's location, by name."""
    return list(
        db.session.scalars(
            select(Room)
            .where(Room.location_id == appointment.location_id, Room.is_active.is_(True))
            .order_by(Room.name)
        )
    )


def status_reached_at(appointment: Appointment, status: str) -> datetime | None:
    """When the appointment last reached ``status`` (from its history)."""
    times = [change.changed_at for change in appointment.history if change.status == status]
    return times[-1] if times else None


# --- the flow board --------------------------------------------------------------------------


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
    from portal.auth.models import User
    from portal.patients.models import Patient

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
    (``board_rows``), not whole appointments with their patients, types and histories.
    """
    from portal.patients.models import format_display_name

    now = now or utcnow()
    day = clinic_today(now)
    rows, reached = board_rows(location_id, day)
    zone = _zone()
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
        audit.record(actor, "flow_board.view", category=CATEGORY, detail=detail)
    db.session.commit()
    return board


def _board_view_detail(location_id: int, appointment_ids: list[int]) -> str:
    """Ids and counts only: the digest names the set of appointments shown."""
    ids = ",".join(str(appointment_id) for appointment_id in sorted(appointment_ids))
    digest = hashlib.sha256(ids.encode()).hexdigest()[:16]
    return f"location={location_id} appointments={len(appointment_ids)} shown={digest}"


# --- the waitlist ----------------------------------------------------------------------------


def parse_provider_ids(text: str | None) -> list[int]:
    """The provider ids a waitlist entry stores as "3,5" (empty: any provider)."""
    return [int(part) for part in (text or "").split(",") if part.strip().isdigit()]


def patient_or_none(patient_id: int):
    """The patient with that id, or None (a form's choice that no longer exists)."""
    from portal.patients.models import Patient

    return db.session.get(Patient, patient_id)


def add_waitlist_entry(
    actor,
    *,
    patient_id: int,
    appointment_type_id: int,
    provider_ids: list[int],
    earliest_day: date,
    latest_day: date,
    notes: str | None = None,
    today: date | None = None,
) -> WaitlistEntry:
    """Put a patient on the waitlist for an earlier slot of a type, with some providers."""
    from portal.patients.services import get_patient_for

    today = today or clinic_today()
    try:
        patient = get_patient_for(actor, patient_id)
    except NotFound as error:
        raise SchedulingError("Find and choose the patient.", field="patient_id") from error
    appointment_type = db.session.get(AppointmentType, appointment_type_id)
    if appointment_type is None or not appointment_type.is_active:
        raise SchedulingError("Choose an appointment type.", field="appointment_type_id")
    offering = {provider.id for provider in appointment_type.providers}
    not_offering = [pid for pid in provider_ids if pid not in offering]
    if not_offering:
        raise SchedulingError(
            f"Not every chosen provider offers {appointment_type.name}.", field="provider_ids"
        )
    if earliest_day < today:
        raise SchedulingError("The earliest day cannot be in the past.", field="earliest_day")
    if latest_day < earliest_day:
        raise SchedulingError(
            "The latest day must be on or after the earliest day.", field="latest_day"
        )
    if (latest_day - today).days > WAITLIST_MAX_DAYS:
        raise SchedulingError("Choose a latest day within a year.", field="latest_day")
    entry = WaitlistEntry(
        patient_id=patient.id,
        appointment_type_id=appointment_type.id,
        provider_ids=",".join(str(pid) for pid in sorted(set(provider_ids))),
        earliest_day=earliest_day,
        latest_day=latest_day,
        notes=(notes or "").strip() or None,
        status="waiting",
        created_by_id=actor.id,
    )
    db.session.add(entry)
    audit.record(actor, "waitlist.add", patient=patient, obj=entry, category=CATEGORY)
    db.session.commit()
    return entry


@dataclass
class WaitlistRow:
    """A waitlist entry with what the lists show about it."""

    entry: WaitlistEntry
    patient: object
    type_name: str
    provider_names: list[str]


def _waitlist_rows(entries: list[WaitlistEntry]) -> list[WaitlistRow]:
    from portal.auth.models import User
    from portal.patients.models import Patient

    if not entries:
        return []
    patients = {
        p.id: p
        for p in db.session.scalars(
            select(Patient).where(Patient.id.in_({e.patient_id for e in entries}))
        )
    }
    types = dict(db.session.execute(select(AppointmentType.id, AppointmentType.name)).all())
    wanted = {pid for e in entries for pid in parse_provider_ids(e.provider_ids)}
    names = (
        dict(db.session.execute(select(User.id, User.full_name).where(User.id.in_(wanted))).all())
        if wanted
        else {}
    )
    return [
        WaitlistRow(
            entry=e,
            patient=patients[e.patient_id],
            type_name=types.get(e.appointment_type_id, ""),
            provider_names=[names.get(pid, "") for pid in parse_provider_ids(e.provider_ids)],
        )
        for e in entries
    ]


def list_waitlist(actor) -> list[WaitlistRow]:
    """Everyone waiting, first come first; audited when it names anyone."""
    entries = list(
        db.session.scalars(
            select(WaitlistEntry)
            .where(WaitlistEntry.status == "waiting")
            .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
        )
    )
    rows = _waitlist_rows(entries)
    if rows:
        audit.record(actor, "waitlist.view", category=CATEGORY, detail=f"entries={len(rows)}")
    db.session.commit()
    return rows


def remove_waitlist_entry(actor, entry_id: int) -> None:
    """Take a patient off the waitlist (kept, marked removed)."""
    entry = db.session.get(WaitlistEntry, entry_id)
    if entry is None:
        raise NotFound()
    if entry.status != "waiting":
        db.session.rollback()
        return
    entry.status = "removed"
    audit.record(
        actor, "waitlist.remove", patient_id=entry.patient_id, obj=entry, category=CATEGORY
    )
    db.session.commit()


def matching_waitlist_entries(appointment: Appointment) -> list[WaitlistEntry]:
    """Waiting entries that could take the time ``appointment`` held, best first.

    An entry matches when the freed provider offers its type, the type fits in the freed
    time, the provider is one the patient accepts (or they accept any), and the day is
    within the entry's range. Entries for the same type come first, then the oldest. The
    appointment's own patient is left out. Reads only: the caller audits what it shows.
    """
    from portal.auth.models import User

    day = appointment.starts_at.astimezone(_zone()).date()
    minutes = _minutes(appointment.ends_at - appointment.starts_at)
    offered = select(AppointmentType.id).where(
        AppointmentType.is_active.is_(True),
        AppointmentType.default_minutes <= minutes,
        AppointmentType.providers.any(User.id == appointment.provider_id),
    )
    candidates = db.session.scalars(
        select(WaitlistEntry)
        .where(
            WaitlistEntry.status == "waiting",
            WaitlistEntry.appointment_type_id.in_(offered),
            WaitlistEntry.earliest_day <= day,
            WaitlistEntry.latest_day >= day,
            WaitlistEntry.patient_id != appointment.patient_id,
        )
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
    )
    matches = [
        entry
        for entry in candidates
        if not entry.provider_ids
        or appointment.provider_id in parse_provider_ids(entry.provider_ids)
    ]
    matches.sort(key=lambda e: e.appointment_type_id != appointment.appointment_type_id)
    return matches


def show_waitlist_matches(actor, appointment_id: int) -> tuple[Appointment, list[WaitlistRow]]:
    """The freed appointment and the waitlist entries that could take its time; audited."""
    appointment = get_appointment_for(actor, appointment_id)
    rows = _waitlist_rows(matching_waitlist_entries(appointment))
    if rows:
        audit.record(
            actor,
            "waitlist.matches",
            obj=appointment,
            category=CATEGORY,
            detail=f"entries={len(rows)}",
        )
    db.session.commit()
    return appointment, rows


def close_waitlist_entry(actor, entry_id: int, appointment: Appointment) -> None:
    """Mark a waitlist entry booked, in the CALLER's transaction (the booking commits it).

    For the booking use case: when a "Book this slot" button carried ``waitlist_entry_id``,
    the new appointment and the entry's change land together.
    """
    entry = db.session.get(WaitlistEntry, entry_id)
    if entry is None or entry.status != "waiting" or entry.patient_id != appointment.patient_id:
        return
    entry.status = "booked"
    audit.record(
        actor,
        "waitlist.booked",
        patient_id=entry.patient_id,
        obj=entry,
        category=CATEGORY,
        detail=f"appointment={appointment.id}",
    )


# --- calendar feeds --------------------------------------------------------------------------

FEED_DAYS_BACK = 30
FEED_DAYS_AHEAD = 180


def hash_feed_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_calendar_feed(actor, provider_id: int) -> tuple[CalendarFeed, str]:
    """A new feed for a provider; returns it with its token (shown once, only hashed here)."""
    from portal.auth.models import User

    provider = db.session.get(User, provider_id)
    if provider is None or "prescriber" not in provider.roles:
        raise SchedulingError("Choose a provider.", field="provider_id")
    token = secrets.token_urlsafe(32)
    feed = CalendarFeed(provider_id=provider.id, token_hash=hash_feed_token(token))
    db.session.add(feed)
    audit.record(
        actor, "calendar_feed.create", obj=feed, category=CATEGORY, detail=f"provider={provider.id}"
    )
    db.session.commit()
    return feed, token


def revoke_calendar_feed(actor, feed_id: int, *, own_only: bool = False) -> None:
    """Revoke a feed: its URL answers 404 from now on.

    ``own_only``: the actor may revoke only their own feed (a provider's self-service);
    anyone else's is answered as unknown (404).
    """
    feed = db.session.get(CalendarFeed, feed_id)
    if feed is None or (own_only and feed.provider_id != actor.id):
        raise NotFound()
    if feed.revoked_at is not None:
        db.session.rollback()
        return
    feed.revoked_at = utcnow()
    audit.record(
        actor,
        "calendar_feed.revoke",
        obj=feed,
        category=CATEGORY,
        detail=f"provider={feed.provider_id}",
    )
    db.session.commit()


def list_calendar_feeds(provider_id: int | None = None) -> list[CalendarFeed]:
    """Every feed (or one provider's), newest first (revoked ones too, for the record)."""
    query = select(CalendarFeed).order_by(CalendarFeed.created_at.desc(), CalendarFeed.id.desc())
    if provider_id is not None:
        query = query.where(CalendarFeed.provider_id == provider_id)
    feeds = list(db.session.scalars(query))
    db.session.rollback()
    return feeds


def calendar_feed_ics(token: str, source: str | None, *, now: datetime | None = None) -> bytes:
    """The iCalendar text of the feed the token opens; NotFound for unknown or revoked tokens.

    Shows times, type, location (and room) and status; patient names only when the clinic
    turned ``calendar_feed_shows_names`` on, and then the feed's reading is audited.
    """
    from icalendar import Calendar, Event

    from portal.auth.models import User
    from portal.clinic.models import Location

    now = now or utcnow()
    feed = db.session.scalar(
        select(CalendarFeed).where(CalendarFeed.token_hash == hash_feed_token(token or ""))
    )
    if feed is None or feed.revoked_at is not None:
        db.session.rollback()
        raise NotFound()
    provider = db.session.get(User, feed.provider_id)
    clinic = current_clinic()
    show_names = bool(clinic and clinic.calendar_feed_shows_names)
    appointments = list(
        db.session.scalars(
            select(Appointment)
            .where(
                Appointment.provider_id == feed.provider_id,
                Appointment.status.not_in(INACTIVE_STATUSES),
                Appointment.starts_at >= now - timedelta(days=FEED_DAYS_BACK),
                Appointment.starts_at < now + timedelta(days=FEED_DAYS_AHEAD),
            )
            .options(selectinload(Appointment.room))
            .order_by(Appointment.starts_at)
        )
    )
    locations = dict(db.session.execute(select(Location.id, Location.name)).all())
    calendar = Calendar()
    calendar.add("prodid", "-//Practice Portal//Provider schedule//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"{provider.full_name if provider else 'Provider'} — schedule")
    calendar.add("x-wr-timezone", clinic_time_zone())
    # Ask calendar apps to fetch again often: the front desk changes the day as it goes.
    calendar.add("refresh-interval", timedelta(minutes=15), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT15M")
    for appointment in appointments:
        event = Event()
        event.add("uid", f"appointment-{appointment.id}@practice-portal")
        event.add("dtstamp", now)
        event.add("dtstart", appointment.starts_at)
        event.add("dtend", appointment.ends_at)
        summary = appointment.appointment_type.name
        if show_names:
            summary = f"{summary}: {appointment.patient.display_name}"
        event.add("summary", summary)
        where = locations.get(appointment.location_id, "")
        if appointment.room is not None:
            where = f"{where}, {appointment.room.name}"
        event.add("location", where)
        event.add("description", f"Status: {STATUS_LABELS[appointment.status]}")
        event.add("sequence", appointment.version)
        calendar.add_component(event)
    if show_names and appointments:
        audit.record(
            integration(f"calendar-feed-{feed.id}", source),
            "calendar_feed.read",
            category=CATEGORY,
            detail=f"feed={feed.id} provider={feed.provider_id} appointments={len(appointments)}",
        )
        db.session.commit()
    else:
        db.session.rollback()
    return calendar.to_ical()


def feeds_show_names() -> bool:
    """Whether the clinic lets calendar feeds name patients."""
    clinic = current_clinic()
    return bool(clinic and clinic.calendar_feed_shows_names)


def active_feed_counts() -> dict[int, int]:
    """Provider id -> number of active (not revoked) feeds."""
    rows = db.session.execute(
        select(CalendarFeed.provider_id, func.count())
        .where(CalendarFeed.revoked_at.is_(None))
        .group_by(CalendarFeed.provider_id)
    )
    return dict(rows.all())


def providers() -> list:
    """Enabled users with the prescriber role, by name."""
    from portal.auth.models import User, UserRole

    rows = list(
        db.session.scalars(
            select(User)
            .where(
                User.is_enabled.is_(True),
                User.role_rows.any(UserRole.role == "prescriber"),
            )
            .order_by(User.full_name)
        )
    )
    return rows
