"""Appointments for the patient page's tests, inserted as booking would leave them."""

from __future__ import annotations

from datetime import timedelta

from portal.extensions import db
from portal.timeutil import utcnow


def add_appointment(app, chart, *, days: float, status: str = "scheduled", patient: int = 0):
    """An appointment ``days`` from now (negative: in the past) with drlee; returns its id."""
    from portal.scheduling.models import Appointment

    starts_at = (utcnow() + timedelta(days=days)).replace(second=0, microsecond=0)
    with app.app_context():
        appointment = Appointment(
            patient_id=chart.patients[patient],
            provider_id=chart.drlee,
            location_id=chart.main_street,
            appointment_type_id=chart.follow_up,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=20),
            status=status,
        )
        db.session.add(appointment)
        db.session.commit()
        return appointment.id
