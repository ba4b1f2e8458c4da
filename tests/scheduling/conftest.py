"""A small clinic schedule shared by the scheduling tests.

Two prescribers (drlee from the baseline, drpatel added here), three appointment types,
rooms at Main Street, and a weekly template Mon-Fri 08:00-12:00 and 13:00-17:00 at Main
Street for both providers (clinic time, America/New_York), plus a few patients.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time

import pytest
from sqlalchemy import select

from portal.extensions import db

# The browser fixtures (Chromium watched for console errors and CSP violations), for the
# scheduling browser tests.
from tests.support.browser import (  # noqa: F401
    browser,
    new_page,
    page,
    pytest_runtest_makereport,
    shot,
    sign_in,
    watch,
)
from tests.support.factories import patient_row


@dataclass
class Schedule:
    drlee: int
    drpatel: int
    main_street: int
    westside: int
    follow_up: int  # 20 minutes, both providers
    new_patient: int  # 40 minutes, both providers
    procedure: int  # 60 minutes, drlee only
    exam_room_1: int
    exam_room_2: int
    patients: list[int]
    zone: str = "America/New_York"


@pytest.fixture
def schedule(app, password_hash) -> Schedule:
    from portal.auth.models import User
    from portal.clinic.models import Location
    from portal.scheduling.models import AppointmentType, AvailabilityBlock, Room

    with app.app_context():
        drlee = db.session.scalars(select(User).filter_by(username="drlee")).one()
        drpatel = User(username="drpatel", full_name="Anita Patel", password_hash=password_hash)
        drpatel.set_roles(["prescriber"])
        db.session.add(drpatel)
        main_street = db.session.scalars(select(Location).filter_by(name="Main Street")).one()
        westside = db.session.scalars(select(Location).filter_by(name="Westside")).one()
        follow_up = AppointmentType(
            name="Follow-up",
            default_minutes=20,
            colour="#2a7ab0",
            visit_kind="follow_up",
            providers=[drlee, drpatel],
        )
        new_patient = AppointmentType(
            name="New patient",
            default_minutes=40,
            colour="#3c8d5a",
            visit_kind="new",
            providers=[drlee, drpatel],
        )
        procedure = AppointmentType(
            name="Procedure", default_minutes=60, colour="#a05a2c", providers=[drlee]
        )
        rooms = [Room(location_id=main_street.id, name=f"Exam {n}") for n in (1, 2)]
        db.session.add_all([follow_up, new_patient, procedure, *rooms])
        db.session.flush()
        for provider in (drlee, drpatel):
            for weekday in range(5):
                for start, end in ((time(8), time(12)), (time(13), time(17))):
                    db.session.add(
                        AvailabilityBlock(
                            provider_id=provider.id,
                            location_id=main_street.id,
                            weekday=weekday,
                            start_time=start,
                            end_time=end,
                        )
                    )
        patients = []
        for given, family, born in (
            ("Ada", "Lovelace", date(1985, 12, 10)),
            ("Alan", "Turing", date(1972, 6, 23)),
            ("Grace", "Hopper", date(1956, 12, 9)),
            ("José", "Muñoz", date(2015, 3, 1)),
        ):
            patient = patient_row(given, family, born, sex_at_birth="unknown", phone_mobile=None)
            db.session.add(patient)
            patients.append(patient)
        db.session.commit()
        return Schedule(
            drlee=drlee.id,
            drpatel=drpatel.id,
            main_street=main_street.id,
            westside=westside.id,
            follow_up=follow_up.id,
            new_patient=new_patient.id,
            procedure=procedure.id,
            exam_room_1=rooms[0].id,
            exam_room_2=rooms[1].id,
            patients=[p.id for p in patients],
        )
