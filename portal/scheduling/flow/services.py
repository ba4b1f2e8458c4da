"""The day of a visit: status changes (confirm, check in, room, provider in, complete,
no-show), undoing a mistaken step, and the appointment's status and check-in panels.

Each public function that changes something is one use case with its audit event(s)
(category "appointments"); readers that show a patient record that they did.
``apply_status_change`` is the work of a status change without its transaction, for other
domains' use cases (charting's "Start visit").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from portal.audit import services as audit
from portal.clinic.clock import clinic_today, clinic_zone
from portal.extensions import db
from portal.scheduling.models import (
    INACTIVE_STATUSES,
    STATUS_LABELS,
    Appointment,
    AppointmentStatusChange,
    Room,
)
from portal.scheduling.services import (
    CATEGORY,
    check_version,
    get_appointment_for,
    stale_change,
)
from portal.timeutil import utcnow
from portal.transaction import Refused, use_case

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
# Steps that can be taken back (a click on the wrong card): not cancel or no-show, which free
# the time and may have let someone else book it; those are re-booked instead.
UNDOABLE_STATUSES = ("confirmed", "arrived", "roomed", "with_provider", "completed")
# PostgreSQL's SQLSTATE for an exclusion violation: the room's no-overlap constraint.
EXCLUSION_VIOLATION = "23P01"


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
        raise Refused("Choose a status from the list.", field="status")
    if status not in allowed_next(appointment):
        raise Refused(
            f"An appointment that is {STATUS_LABELS[appointment.status].lower()} "
            f"cannot be marked {STATUS_LABELS[status].lower()}.",
            field="status",
        )
    if status == "no_show" and now < appointment.starts_at:
        raise Refused(
            "A no-show can be recorded only once the appointment's start time has passed.",
            field="status",
        )
    if status == "arrived":
        if clinic_today(now) != appointment.starts_at.astimezone(clinic_zone()).date():
            raise Refused(
                "Patients can be checked in only on the day of their appointment.",
                field="status",
            )
        if not demographics_confirmed:
            raise Refused(
                "Confirm the patient's demographics with them first.",
                field="demographics_confirmed",
            )
        if not insurance_confirmed:
            raise Refused(
                "Confirm the patient's insurance with them first.", field="insurance_confirmed"
            )
    room = None
    if status == "roomed":
        if room_id is None:
            raise Refused("Choose the room.", field="room_id")
        room = db.session.get(Room, room_id)
        if room is None or not room.is_active or room.location_id != appointment.location_id:
            raise Refused("Choose one of this location's rooms.", field="room_id")
        if _room_taken(appointment, room.id):
            raise Refused(
                f"{room.name} is held by another appointment at this time.", field="room_id"
            )
    return room


def _status_race(error: Exception) -> Refused:
    """What a status change that lost a race at the database is told: the version column
    refused the UPDATE (someone else changed the appointment: 409), or PostgreSQL's room
    exclusion constraint refused the room (taken meanwhile: beside the room, 422). Any
    other database error is no race and is raised as it is."""
    if isinstance(error, StaleDataError):
        return stale_change()
    if getattr(getattr(error, "orig", None), "sqlstate", None) == EXCLUSION_VIOLATION:
        return Refused(
            "That room was just taken by another appointment — choose another.",
            field="room_id",
        )
    raise error


def apply_status_change(
    actor,
    appointment: Appointment,
    status: str,
    *,
    version: int | None = None,
    now: datetime | None = None,
    room_id: int | None = None,
    demographics_confirmed: bool = False,
    insurance_confirmed: bool = False,
) -> Appointment:
    """Move ``appointment`` to ``status`` inside the caller's use case (flushes only): the
    flow's rules, its timestamp, a history row and the audit event.

    For ``change_status`` and for other domains' use cases that move a visit on as part of
    their own work (charting's "Start visit"). ``version``: the version the caller's form
    showed (None: the caller loaded the appointment in this transaction). Refuses (Refused,
    naming the field) a transition the flow does not allow, a no-show before the start
    time, a check-in on another day or without the patient's demographics and insurance
    confirmed, and rooming into a room that is taken or elsewhere; a form or row older than
    the appointment's current version is a Conflict.
    """
    now = now or utcnow()
    if version is not None:
        check_version(appointment, version)
    room = _check_transition(
        appointment, status, now, room_id, demographics_confirmed, insurance_confirmed
    )
    detail = f"{appointment.status} -> {status}"
    if status == "arrived":
        detail += "; demographics and insurance confirmed"
    if room is not None:
        detail += f"; room {room.id}"
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
    try:
        db.session.flush()
    except (IntegrityError, StaleDataError) as error:
        raise _status_race(error) from error
    audit.record(
        actor,
        "appointment.status",
        patient_id=appointment.patient_id,
        obj=appointment,
        category=CATEGORY,
        detail=detail,
    )
    return appointment


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
    """Move an appointment to its next status, with its timestamp, history row and audit
    (``apply_status_change`` in a use case of its own).

    The form's ``version`` must be the appointment's (a missing one is stale too).
    """
    with use_case(conflict=_status_race):
        appointment = get_appointment_for(actor, appointment_id)
        check_version(appointment, version)
        apply_status_change(
            actor,
            appointment,
            status,
            now=now,
            room_id=room_id,
            demographics_confirmed=demographics_confirmed,
            insurance_confirmed=insurance_confirmed,
        )
    return appointment


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
    with use_case(conflict=_status_race):
        appointment = get_appointment_for(actor, appointment_id)
        check_version(appointment, version)
        previous = status_before(appointment)
        last_change = appointment.history[-1].changed_at if appointment.history else None
        if previous is None or last_change is None:
            raise Refused("This appointment's last step cannot be undone.", field="status")
        if clinic_today(last_change) != clinic_today(now):
            raise Refused(
                "Only a step taken today can be undone; change the status instead.",
                field="status",
            )
        detail = f"undo: {appointment.status} -> {previous}"
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
    return appointment


def view_appointment_flow(actor, appointment_id: int, *, purpose: str = "status") -> Appointment:
    """Load an appointment (with its history) to show its status panel; audited."""
    with use_case():
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
    return appointment


def view_for_check_in(actor, appointment_id: int) -> Appointment:
    """Load an appointment and its patient's demographics and insurance for check-in."""
    with use_case():
        appointment = get_appointment_for(actor, appointment_id)
        audit.record(
            actor,
            "patient.view",
            patient_id=appointment.patient_id,
            obj=appointment.patient,
            category="demographics",
            detail="check-in",
        )
    return appointment


def status_reached_at(appointment: Appointment, status: str) -> datetime | None:
    """When the appointment last reached ``status`` (from its history)."""
    times = [change.changed_at for change in appointment.history if change.status == status]
    return times[-1] if times else None
