"""Use cases of scheduling: booking, rescheduling, cancelling, series (being built: issue 3).

Each public function is one transaction with its audit event(s).
"""

from __future__ import annotations

from werkzeug.exceptions import NotFound

from portal.extensions import db
from portal.scheduling.models import Appointment

CATEGORY = "appointments"


class SchedulingError(Exception):
    """A refused scheduling change; ``field`` names the form field to show it beside."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class SlotTaken(SchedulingError):
    """Another active appointment already holds (part of) that time."""

    def __init__(
        self,
        message: str = "That time was just taken — pick another.",
        field: str | None = "starts_at",
    ):
        super().__init__(message, field)


class StaleChange(SchedulingError):
    """The appointment changed since the form was loaded."""

    def __init__(self):
        super().__init__(
            "Someone else changed this appointment since you opened it. Review it and try again."
        )


def get_appointment_for(actor, appointment_id: int) -> Appointment:
    """The appointment ``actor`` may see, or 404 (the one place for object-level checks)."""
    appointment = db.session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound()
    return appointment
