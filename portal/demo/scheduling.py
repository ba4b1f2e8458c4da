"""The demo schedule: appointment types, rooms, Dr. Lee's weekly hours and a few days of
visits."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from portal.auth.models import User
from portal.clinic.models import Clinic, Location
from portal.extensions import db
from portal.patients.models import Patient
from portal.scheduling.models import Appointment, AppointmentType, AvailabilityBlock, Room
from portal.timeutil import utcnow
from portal.transaction import use_case

DEMO_TYPES = (
    # name, minutes, colour, visit kind, modality
    ("Follow-up", 20, "#2a7ab0", "follow_up", "in_person"),
    ("New patient", 40, "#3c8d5a", "new", "in_person"),
    ("Annual physical", 40, "#7a4fa0", "follow_up", "in_person"),
    ("Telehealth follow-up", 20, "#b06a2a", "follow_up", "telehealth"),
)


def seed_schedule(*, seed: int = 1, days: int = 5) -> int:
    """Appointment types, rooms, Dr. Lee's hours and a few days of visits.

    Visits start today (clinic time) and are laid end to end with gaps, so they never
    overlap; returns how many were booked. Does nothing when types already exist. The demo
    clinic keeps hours every day of the week: a demo started on a Saturday or a Sunday still
    has today's visits to check in, chart, prescribe and order labs from.
    """
    with use_case():
        if db.session.scalar(select(func.count()).select_from(AppointmentType)):
            return 0
        rng = random.Random(seed)
        doctor = db.session.scalars(select(User).where(User.username == "drlee")).first()
        frontdesk = db.session.scalars(select(User).where(User.username == "frontdesk")).first()
        clinic = db.session.scalars(select(Clinic)).first()
        locations = db.session.scalars(select(Location).order_by(Location.id)).all()
        if doctor is None or clinic is None or not locations:
            return 0
        types = [
            AppointmentType(
                name=name,
                default_minutes=minutes,
                colour=colour,
                visit_kind=kind,
                modality=modality,
                providers=[doctor],
            )
            for name, minutes, colour, kind, modality in DEMO_TYPES
        ]
        db.session.add_all(types)
        for location in locations:
            db.session.add_all(Room(location_id=location.id, name=f"Exam {n}") for n in (1, 2, 3))
        main_street = locations[0]
        for weekday in range(7):
            for start, end in ((time(8), time(12)), (time(13), time(17))):
                db.session.add(
                    AvailabilityBlock(
                        provider_id=doctor.id,
                        location_id=main_street.id,
                        weekday=weekday,
                        start_time=start,
                        end_time=end,
                    )
                )
        db.session.flush()
        patient_ids = db.session.scalars(select(Patient.id).order_by(Patient.id).limit(500)).all()
        if not patient_ids:
            return 0
        zone = ZoneInfo(clinic.time_zone)
        today = utcnow().astimezone(zone).date()
        booked = 0
        for offset in range(days):
            day = today + timedelta(days=offset)
            for session_start, session_end in ((time(8), time(12)), (time(13), time(17))):
                cursor = datetime.combine(day, session_start, tzinfo=zone)
                end_of_session = datetime.combine(day, session_end, tzinfo=zone)
                while True:
                    kind = rng.choice(types)
                    ends = cursor + timedelta(minutes=kind.default_minutes)
                    if ends > end_of_session:
                        break
                    if rng.random() < 0.7:  # some slots stay free
                        db.session.add(
                            Appointment(
                                patient_id=rng.choice(patient_ids),
                                provider_id=doctor.id,
                                location_id=main_street.id,
                                appointment_type_id=kind.id,
                                starts_at=cursor.astimezone(UTC),
                                ends_at=ends.astimezone(UTC),
                                reason=rng.choice(
                                    (
                                        "Follow-up",
                                        "Check-up",
                                        "Cough",
                                        "Back pain",
                                        "Medication review",
                                        "Blood pressure",
                                    )
                                ),
                                created_by_id=frontdesk.id if frontdesk else None,
                            )
                        )
                        booked += 1
                    cursor = ends
        return booked
