"""The schedule fixture loads, and the database itself refuses overlapping bookings."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.scheduling.models import Appointment


def _appointment(schedule, start, minutes=20, **overrides):
    values = dict(
        patient_id=schedule.patients[0],
        provider_id=schedule.drlee,
        location_id=schedule.main_street,
        appointment_type_id=schedule.follow_up,
        starts_at=start,
        ends_at=start + timedelta(minutes=minutes),
    )
    values.update(overrides)
    return Appointment(**values)


def test_back_to_back_is_fine_and_an_end_before_the_start_is_refused(app, schedule):
    start = datetime(2030, 3, 4, 14, 0, tzinfo=UTC)
    with app.app_context():
        db.session.add(_appointment(schedule, start))
        db.session.add(
            _appointment(schedule, start + timedelta(minutes=20), patient_id=schedule.patients[1])
        )
        db.session.commit()
        db.session.add(_appointment(schedule, start, minutes=-10, patient_id=schedule.patients[2]))
        with pytest.raises(IntegrityError):
            db.session.commit()


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    "overrides",
    [
        {"patient_id": 2},  # same provider, another patient
        {"provider_id": "drpatel"},  # same patient, another provider
    ],
)
def test_postgresql_refuses_overlapping_active_appointments(app, schedule, overrides):
    start = datetime(2030, 3, 4, 14, 0, tzinfo=UTC)
    overrides = dict(overrides)
    if overrides.get("provider_id") == "drpatel":
        overrides["provider_id"] = schedule.drpatel
    if "patient_id" in overrides:
        overrides["patient_id"] = schedule.patients[1]
    with app.app_context():
        db.session.add(_appointment(schedule, start))
        db.session.commit()
        db.session.add(_appointment(schedule, start + timedelta(minutes=10), **overrides))
        with pytest.raises(IntegrityError, match="overlap"):
            db.session.commit()
        db.session.rollback()
        # A cancelled appointment frees its time.
        db.session.add(
            _appointment(schedule, start + timedelta(minutes=10), status="cancelled", **overrides)
        )
        db.session.commit()
