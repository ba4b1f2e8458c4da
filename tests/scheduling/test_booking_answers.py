"""What the booking panel answers besides "Booked.": a time outside the provider's working
hours asks for a confirmation first; a time just taken says who holds it (to those who may
see the schedule's names) and offers the provider's next free time."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import delete

from portal.extensions import db
from tests.scheduling.booking_helpers import (
    appointments,
    audit_actions,
    booking_form,
    future_monday,
    local,
)

QUESTION = "is outside Jordan Lee's working hours"


@pytest.fixture
def desk(signed_in, schedule):
    return signed_in("front_desk")


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_booking_outside_working_hours_asks_first(app, desk, schedule):
    day = future_monday()
    # 07:40-08:00 is before Dr Lee's 08:00 start.
    asked = desk.htmx_post("/schedule/appointments", booking_form(schedule, day, "07:40"))
    assert asked.status_code == 200  # a question, not a failure
    text = _text(asked)
    assert f"07:40\u201308:00 on Mon {day.day} {day:%b} {QUESTION}" in text
    assert "08:00\u201312:00, 13:00\u201317:00" in text
    assert 'name="outside_hours"' in text and "Book outside the provider" in text
    assert appointments(app) == []

    # Across the lunch break is outside too; inside is booked without a question.
    lunch = desk.htmx_post("/schedule/appointments", booking_form(schedule, day, "11:50"))
    assert QUESTION in _text(lunch) and appointments(app) == []

    confirmed = desk.htmx_post(
        "/schedule/appointments", booking_form(schedule, day, "07:40", outside_hours="y")
    )
    assert confirmed.status_code == 200 and "Booked." in _text(confirmed)
    (booked,) = appointments(app)
    assert booked.starts_at == local(day, 7, 40)


def test_a_provider_without_working_hours_set_up_is_not_asked_about(app, desk, schedule):
    from portal.scheduling.models import AvailabilityBlock

    with app.app_context():
        db.session.execute(
            delete(AvailabilityBlock).where(AvailabilityBlock.provider_id == schedule.drlee)
        )
        db.session.commit()
    day = future_monday()
    response = desk.htmx_post("/schedule/appointments", booking_form(schedule, day, "07:00"))
    assert "Booked." in _text(response)


def test_a_taken_time_says_who_holds_it_and_offers_the_next_free_time(app, desk, schedule):
    day = future_monday()
    first = desk.htmx_post("/schedule/appointments", booking_form(schedule, day, "09:00"))
    assert first.status_code == 200
    before = len(audit_actions(app))
    taken = desk.htmx_post(
        "/schedule/appointments",
        booking_form(schedule, day, "09:10", patient_id=schedule.patients[1]),
    )
    assert taken.status_code == 409
    text = _text(taken)
    assert "That time was just taken" in text
    assert "Lovelace, Ada has 09:00\u201309:20 with this provider." in text
    assert f"The next free time is Mon {day.day:02d} {day:%b} at 09:20." in text
    assert f'data-use-day="{day.isoformat()}" data-use-time="09:20"' in text
    # Showing whose time it is reads a patient's name: audited like opening the visit.
    assert "patient.view" in audit_actions(app)[before:]
    assert len(appointments(app)) == 1
