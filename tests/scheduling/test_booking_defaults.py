"""The booking panel's defaults: the appointment type is the provider's most used one."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.scheduling.booking_helpers import future_monday, local
from tests.scheduling.flow_support import make_appointment


@pytest.fixture
def desk(signed_in, schedule):
    return signed_in("front_desk")


def _chosen_type(desk, provider_id: int) -> str:
    html = desk.get(
        f"/schedule/appointments/new?provider_id={provider_id}",
        headers={"HX-Request": "true"},
    ).get_data(as_text=True)
    select = re.search(r'<select[^>]*id="appointment_type_id".*?</select>', html, re.S).group(0)
    chosen = re.findall(r'<option value="(\d+)"[^>]*\sselected', select)
    return chosen[0] if chosen else "(none: the browser shows the first)"


def test_the_type_defaults_to_the_providers_most_used_not_the_first_by_name(app, desk, schedule):
    day = future_monday()
    # Dr Lee books mostly new patients; "Follow-up" comes first by name.
    for hour in (9, 10, 11):
        make_appointment(
            app, schedule, starts_at=local(day, hour), minutes=40, type_id=schedule.new_patient
        )
    make_appointment(app, schedule, starts_at=local(day, 14), type_id=schedule.follow_up)
    # A cancelled run of procedures does not count.
    for hour in (8, 13, 15, 16):
        make_appointment(
            app,
            schedule,
            starts_at=local(day + timedelta(days=1), hour),
            minutes=60,
            type_id=schedule.procedure,
            status="cancelled",
        )
    assert _chosen_type(desk, schedule.drlee) == str(schedule.new_patient)


def test_a_provider_with_no_visits_yet_gets_the_first_type_offered(app, desk, schedule):
    day = future_monday()
    make_appointment(app, schedule, starts_at=local(day, 9), type_id=schedule.new_patient)
    # Dr Patel has none: nothing in particular is chosen (the list starts with Follow-up).
    assert _chosen_type(desk, schedule.drpatel) == "(none: the browser shows the first)"
