"""The patient page's appointments: the next few and the last few, with "Book" for this
patient (registered with the registry's patient page, which cannot import scheduling).

The front desk answers "when is my next appointment?" and "did I miss one?" from the patient
page, so both lists are there; cancelled and no-show visits are shown among the recent ones
(they are what a caller asks about), never among the upcoming.
"""

from __future__ import annotations

from sqlalchemy import select

from portal.auth.models import User
from portal.clinic.models import Location
from portal.extensions import db
from portal.patients.page_sections import patient_page_section
from portal.scheduling.models import (
    INACTIVE_STATUSES,
    STATUS_LABELS,
    Appointment,
    AppointmentType,
)
from portal.timeutil import utcnow

UPCOMING = 5
RECENT = 5


def _appointment_rows():
    return (
        select(
            Appointment.id,
            Appointment.starts_at,
            Appointment.status,
            AppointmentType.name.label("type_name"),
            User.full_name.label("provider_name"),
            Location.name.label("location_name"),
        )
        .join(AppointmentType, AppointmentType.id == Appointment.appointment_type_id)
        .join(User, User.id == Appointment.provider_id)
        .join(Location, Location.id == Appointment.location_id)
    )


@patient_page_section(
    "scheduling/booking/_patient_appointments.html", permission="schedule.read", position=1
)
def patient_appointments(patient_id: int) -> dict:
    """Two bounded reads on the (patient_id, starts_at) index: the next active appointments
    (soonest first) and the latest past ones (latest first, whatever their status)."""
    now = utcnow()
    upcoming = db.session.execute(
        _appointment_rows()
        .where(
            Appointment.patient_id == patient_id,
            Appointment.starts_at >= now,
            Appointment.status.not_in(INACTIVE_STATUSES),
        )
        .order_by(Appointment.starts_at, Appointment.id)
        .limit(UPCOMING)
    ).all()
    recent = db.session.execute(
        _appointment_rows()
        .where(Appointment.patient_id == patient_id, Appointment.starts_at < now)
        .order_by(Appointment.starts_at.desc(), Appointment.id.desc())
        .limit(RECENT)
    ).all()
    return {
        "patient_id": patient_id,
        "upcoming": upcoming,
        "recent": recent,
        "status_labels": STATUS_LABELS,
    }
