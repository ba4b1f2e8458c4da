"""Concurrent status changes over real HTTP: one room, many overlapping patients -> exactly
one is roomed there (the others get a clear message); one appointment, many clicks of the
same button -> one change. On PostgreSQL the exclusion constraint and the version column
decide; on SQLite the write-locked transaction does."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import requests
from sqlalchemy import func, select

from portal.extensions import db
from tests.scheduling.flow_support import make_appointment, minutes_from_now
from tests.support.database import PASSWORD

WORKERS = 8


def _signed_in_cookies(base: str) -> tuple[dict, str]:
    session = requests.Session()
    page = session.get(f"{base}/auth/sign-in", timeout=30)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)
    session.post(
        f"{base}/auth/sign-in",
        data={"username": "frontdesk", "password": PASSWORD, "csrf_token": token},
        timeout=30,
    )
    home = session.get(f"{base}/", timeout=30)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', home.text).group(1)
    return session.cookies.get_dict(), token


def _fire(base: str, posts: list[tuple[str, dict]]) -> list[requests.Response]:
    cookies, token = _signed_in_cookies(base)
    barrier = threading.Barrier(len(posts))
    answers: list = [None] * len(posts)

    def post(index: int, path: str, data: dict) -> None:
        with requests.Session() as session:
            session.cookies.update(cookies)
            barrier.wait()
            answers[index] = session.post(
                base + path,
                data=data,
                headers={"HX-Request": "true", "X-CSRFToken": token},
                timeout=30,
            )

    threads = [
        threading.Thread(target=post, args=(i, path, data)) for i, (path, data) in enumerate(posts)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_one_room_many_overlapping_patients_only_one_gets_it(app, schedule, live_server):
    from portal.patients.identifiers import new_mrn, search_key
    from portal.patients.models import Patient
    from portal.scheduling.models import Appointment

    start = minutes_from_now(-5)
    with app.app_context():
        patient_ids = []
        for n in range(WORKERS):
            patient = Patient(
                mrn=new_mrn(),
                given_name=f"Pat{n}",
                family_name="Crowd",
                given_key=search_key(f"Pat{n}"),
                family_key="crowd",
                birth_date=start.date() - timedelta(days=9000 + n),
                sex_at_birth="unknown",
            )
            db.session.add(patient)
            db.session.flush()
            patient_ids.append(patient.id)
        appointments = []
        for n, patient_id in enumerate(patient_ids):
            # Overbooked on purpose: the provider may hold them all, a room may not.
            appointment = Appointment(
                patient_id=patient_id,
                provider_id=schedule.drlee,
                location_id=schedule.main_street,
                appointment_type_id=schedule.follow_up,
                starts_at=start + timedelta(minutes=n),
                ends_at=start + timedelta(minutes=20 + n),
                status="arrived",
                overbooked=True,
            )
            db.session.add(appointment)
            appointments.append(appointment)
        db.session.commit()
        ids = [(a.id, a.version) for a in appointments]

    answers = _fire(
        live_server,
        [
            (
                f"/schedule/appointments/{aid}/status",
                {"status": "roomed", "version": version, "room_id": schedule.exam_room_1},
            )
            for aid, version in ids
        ],
    )
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200] + [422] * (WORKERS - 1), codes
    for answer in answers:
        if answer.status_code == 422:
            assert "Exam 1 is held by another appointment" in answer.text or (
                "That room was just taken" in answer.text
            )
    with app.app_context():
        roomed = db.session.scalar(
            select(func.count())
            .select_from(Appointment)
            .where(Appointment.room_id == schedule.exam_room_1, Appointment.status == "roomed")
        )
        assert roomed == 1


def test_many_clicks_of_one_button_change_the_appointment_once(app, schedule, live_server):
    from portal.scheduling.models import Appointment, AppointmentStatusChange

    appointment_id = make_appointment(app, schedule, starts_at=minutes_from_now(15))
    with app.app_context():
        version = db.session.get(Appointment, appointment_id).version
    answers = _fire(
        live_server,
        [
            (
                f"/schedule/appointments/{appointment_id}/status",
                {"status": "confirmed", "version": version},
            )
        ]
        * WORKERS,
    )
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200] + [409] * (WORKERS - 1), codes
    with app.app_context():
        changes = db.session.scalar(
            select(func.count())
            .select_from(AppointmentStatusChange)
            .where(AppointmentStatusChange.appointment_id == appointment_id)
        )
        assert changes == 1
