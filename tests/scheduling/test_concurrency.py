"""No double booking under a race: 20 requests at once against a real HTTP server.

Each request is its own connection and thread on the server, so the database (SQLite's write
lock, PostgreSQL's exclusion constraints) is what decides: exactly one booking succeeds, the
others are told the time was just taken, and the day view shows the one that won.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
import requests

from portal.extensions import db
from tests.scheduling.booking_helpers import appointments, booking_form, future_monday
from tests.support.clients import CSRF_META
from tests.support.database import PASSWORD

TAKEN = "That time was just taken — pick another."
RACERS = 20


@pytest.fixture
def racers(app, schedule) -> list[int]:
    """Twenty more patients, so only the provider's time is contested."""
    from portal.patients.identifiers import new_mrn, search_key
    from portal.patients.models import Patient

    with app.app_context():
        patients = []
        for n in range(RACERS):
            family = f"Racer{n:02d}"
            patient = Patient(
                mrn=new_mrn(),
                given_name="Quick",
                family_name=family,
                given_key=search_key("Quick"),
                family_key=search_key(family),
                birth_date=date(1990, 1, 1 + n),
                sex_at_birth="unknown",
            )
            db.session.add(patient)
            patients.append(patient)
        db.session.commit()
        return [patient.id for patient in patients]


def _signed_in_session(base: str) -> tuple[dict, str]:
    """Sign the front desk in over HTTP; the cookies and CSRF token the page would use."""
    browser = requests.Session()
    page = browser.get(f"{base}/auth/sign-in", timeout=30)
    token = CSRF_META.search(page.text).group(1)
    response = browser.post(
        f"{base}/auth/sign-in",
        data={"username": "frontdesk", "password": PASSWORD, "csrf_token": token},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[:500]
    home = browser.get(f"{base}/", timeout=30)
    return browser.cookies.get_dict(), CSRF_META.search(home.text).group(1)


def _race(base: str, forms: list[dict]) -> list[requests.Response]:
    cookies, token = _signed_in_session(base)
    start = threading.Barrier(len(forms))

    def book(form: dict) -> requests.Response:
        with requests.Session() as browser:
            browser.cookies.update(cookies)
            start.wait(timeout=30)
            return browser.post(
                f"{base}/schedule/appointments",
                data=form,
                headers={"HX-Request": "true", "X-CSRFToken": token},
                timeout=120,
            )

    with ThreadPoolExecutor(max_workers=len(forms)) as pool:
        return list(pool.map(book, forms))


def _check_one_winner(app, live_server, responses, racers, day):
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [409] * (RACERS - 1), statuses
    for response in responses:
        if response.status_code == 409:
            assert TAKEN in response.text
    (winner,) = appointments(app)
    cookies, _ = _signed_in_session(live_server)
    day_view = requests.get(
        f"{live_server}/schedule/day?day={day.isoformat()}", cookies=cookies, timeout=30
    ).text
    names = set(re.findall(r"Racer\d\d", day_view))
    assert names == {f"Racer{racers.index(winner.patient_id):02d}"}


def test_twenty_requests_for_the_same_time_book_exactly_one(app, live_server, schedule, racers):
    day = future_monday()
    forms = [booking_form(schedule, day, "09:00", patient_id=patient) for patient in racers]
    responses = _race(live_server, forms)
    _check_one_winner(app, live_server, responses, racers, day)


def test_twenty_requests_for_overlapping_unequal_times_book_exactly_one(
    app, live_server, schedule, racers
):
    day = future_monday()
    # Starts a minute apart, each 20 minutes long: every pair overlaps, no two are equal.
    forms = [
        booking_form(schedule, day, f"09:{n:02d}", patient_id=patient)
        for n, patient in enumerate(racers)
    ]
    responses = _race(live_server, forms)
    _check_one_winner(app, live_server, responses, racers, day)


def test_a_double_submit_racing_itself_books_once(app, live_server, schedule, racers):
    day = future_monday()
    form = booking_form(schedule, day, "10:00", patient_id=racers[0], request_key="k" * 32)
    responses = _race(live_server, [form] * 10)
    assert [response.status_code for response in responses] == [200] * 10
    assert len(appointments(app)) == 1
