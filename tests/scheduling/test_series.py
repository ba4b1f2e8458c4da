"""Recurring series: same clinic time every N weeks, checked whole, saved whole or not at all."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from sqlalchemy import select

from portal.actors import Actor
from portal.extensions import db
from portal.scheduling.booking import services
from tests.scheduling.booking_helpers import ZONE, appointments

# Fixed dates, with "now" given to the services: the series crosses the spring-forward of
# 14 March 2027 in America/New_York.
NOW = datetime(2027, 2, 1, 12, 0, tzinfo=UTC)
FIRST = datetime.combine(date(2027, 3, 1), time(9, 0), tzinfo=ZONE)


@pytest.fixture
def actor(app, schedule):
    from portal.auth.models import User

    with app.app_context():
        user = db.session.scalars(select(User).filter_by(username="frontdesk")).one()
        yield Actor.for_user(user, "127.0.0.1")


def _saved(app):
    """The rows as saved, read after ending this test's open transaction (SQLite's lock)."""
    db.session.rollback()
    return appointments(app)


def _booking(schedule, starts_at=FIRST, **overrides) -> services.Booking:
    values = dict(
        patient_id=schedule.patients[0],
        provider_id=schedule.drlee,
        location_id=schedule.main_street,
        appointment_type_id=schedule.follow_up,
        starts_at=starts_at.astimezone(UTC),
    )
    values.update(overrides)
    return services.Booking(**values)


def test_a_weekly_series_keeps_the_clinic_time_across_daylight_saving(app, schedule, actor):
    booked = services.book_series(
        actor, _booking(schedule), interval_weeks=1, occurrences=4, now=NOW
    )
    assert [a.starts_at.astimezone(ZONE).time() for a in booked] == [time(9, 0)] * 4
    # 09:00 EST is 14:00 UTC; after the change 09:00 EDT is 13:00 UTC.
    assert [a.starts_at.hour for a in booked] == [14, 14, 13, 13]
    assert len({a.series_id for a in booked}) == 1


def test_until_a_date_is_inclusive_and_every_n_weeks_is_respected(app, schedule, actor):
    booked = services.book_series(
        actor, _booking(schedule), interval_weeks=2, until=date(2027, 4, 12), now=NOW
    )
    assert [a.starts_at.astimezone(ZONE).date() for a in booked] == [
        date(2027, 3, 1),
        date(2027, 3, 15),
        date(2027, 3, 29),
        date(2027, 4, 12),
    ]


def test_conflicts_are_listed_per_date_and_nothing_is_saved(app, schedule, actor):
    third = datetime.combine(date(2027, 3, 15), time(9, 10), tzinfo=ZONE)
    services.book_appointment(
        actor, _booking(schedule, third, patient_id=schedule.patients[1]), now=NOW
    )
    with pytest.raises(services.SeriesConflicts) as refused:
        services.book_series(actor, _booking(schedule), interval_weeks=1, occurrences=4, now=NOW)
    assert refused.value.conflicts == [(date(2027, 3, 15), services.SLOT_TAKEN)]
    assert len(_saved(app)) == 1


def test_a_series_past_two_years_is_refused_for_the_dates_too_far(app, schedule, actor):
    with pytest.raises(services.SeriesConflicts) as refused:
        services.book_series(actor, _booking(schedule), interval_weeks=52, occurrences=4, now=NOW)
    assert [day.year for day, _ in refused.value.conflicts] == [2029, 2030]
    assert _saved(app) == []


def test_cancelling_this_and_the_rest_leaves_the_earlier_visits(app, schedule, actor):
    booked = services.book_series(
        actor, _booking(schedule), interval_weeks=1, occurrences=4, now=NOW
    )
    second = booked[1]
    cancelled = services.cancel_appointment(
        actor,
        second.id,
        version=second.version,
        reason="Course of treatment changed",
        rest_of_series=True,
        now=NOW,
    )
    assert [a.id for a in cancelled] == [a.id for a in booked[1:]]

    assert [a.status for a in _saved(app)] == ["scheduled"] + ["cancelled"] * 3


def test_one_visit_of_a_series_can_be_cancelled_alone(app, schedule, actor):
    booked = services.book_series(
        actor, _booking(schedule), interval_weeks=1, occurrences=3, now=NOW
    )
    services.cancel_appointment(
        actor, booked[1].id, version=booked[1].version, reason="Holiday", now=NOW
    )
    assert [a.status for a in _saved(app)] == ["scheduled", "cancelled", "scheduled"]


def test_the_booking_form_books_a_series_and_shows_conflicts(app, signed_in, schedule):
    from tests.scheduling.booking_helpers import booking_form, future_monday

    desk = signed_in("front_desk")
    day = future_monday()
    blocker = booking_form(schedule, future_monday(4), "09:00", patient_id=schedule.patients[1])
    assert desk.htmx_post("/schedule/appointments", blocker).status_code == 200
    form = booking_form(schedule, day, "09:00", repeat="y", interval_weeks=1, occurrences=4)
    refused = desk.htmx_post("/schedule/appointments", form)
    assert refused.status_code == 409
    html = refused.get_data(as_text=True)
    assert "nothing was saved" in html and "series-conflicts" in html
    assert len(appointments(app)) == 1
    form["start_time"] = "10:00"
    assert desk.htmx_post("/schedule/appointments", form).status_code == 200
    assert len(appointments(app)) == 5
