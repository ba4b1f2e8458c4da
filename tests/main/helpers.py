"""Appointments for the home page's tests, inserted as booking would leave them."""

from __future__ import annotations

from datetime import time, timedelta

from portal.extensions import db


def add_appointment(
    app, chart, *, at=time(9, 0), days=0, status="scheduled", patient=0, provider="drlee"
):
    """An appointment at ``at`` (clinic time) today, or ``days`` away, for one of the chart's
    patients; returns its id. The clinic's today, not the server's: the day's lists are."""
    from portal.clinic.clock import clinic_today, local_to_utc
    from portal.scheduling.models import Appointment

    with app.app_context():
        starts_at = local_to_utc(clinic_today() + timedelta(days=days), at)
        appointment = Appointment(
            patient_id=chart.patients[patient],
            provider_id=getattr(chart, provider),
            location_id=chart.main_street,
            appointment_type_id=chart.follow_up,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=20),
            status=status,
        )
        db.session.add(appointment)
        db.session.commit()
        return appointment.id
