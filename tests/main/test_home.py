"""The home page's day: the clinic's schedule and the flow board's counts for the front desk
and nurses, a prescriber's own visits for a prescriber; audited as one listing."""

from __future__ import annotations

import re
from datetime import time

from tests.main.helpers import add_appointment
from tests.support.audit import audit_events


def day_rows(html: str) -> list[int]:
    """The appointment ids listed in the day's table, in order."""
    if '<table class="table table-sm small mb-0 align-middle" id="today-appointments">' not in html:
        return []
    table = html.split('id="today-appointments"', 1)[1].split("</table>", 1)[0]
    return [int(n) for n in re.findall(r'href="/schedule/appointments/(\d+)"', table)]


def flow_count(html: str, key: str) -> int:
    match = re.search(rf'id="flow-count-{key}"><span[^>]*>(\d+)</span>', html)
    assert match, f"no count for {key}"
    return int(match.group(1))


def test_front_desk_sees_the_clinics_day_and_the_board_counts(app, chart, signed_in):
    mine = add_appointment(app, chart, status="arrived")
    patels = add_appointment(app, chart, provider="drpatel", patient=1, status="roomed")
    done = add_appointment(app, chart, at=time(8, 0), patient=1, status="completed")
    add_appointment(app, chart, at=time(10, 0), status="cancelled")  # left off
    add_appointment(app, chart, days=2)  # another day
    html = signed_in("front_desk").get("/").get_data(as_text=True)
    assert 'id="today-heading">Today&#39;s schedule' in html
    assert day_rows(html) == [done, patels, mine]  # by time, then provider (Anita, Jordan)
    assert "Anita Patel" in html  # the provider column
    assert [
        flow_count(html, key) for key in ("expected", "arrived", "roomed", "with_provider", "done")
    ] == [0, 1, 1, 0, 1]
    assert f'href="/patients/{chart.patients[1]}"' in html  # the front desk opens demographics
    events = audit_events(app, "appointment.list")
    assert len(events) == 1 and "view=home" in events[0].detail and "count=3" in events[0].detail


def test_a_prescriber_sees_their_own_day(app, chart, signed_in):
    mine = add_appointment(app, chart)
    add_appointment(app, chart, provider="drpatel", patient=1)
    html = signed_in("prescriber").get("/").get_data(as_text=True)
    assert "Your day" in html
    assert day_rows(html) == [mine]
    assert f'href="/chart/patients/{chart.patients[0]}"' in html  # clinicians open the chart
    assert flow_count(html, "expected") == 1


def test_a_nurse_sees_the_clinics_day(app, chart, signed_in):
    add_appointment(app, chart)
    add_appointment(app, chart, provider="drpatel", patient=1)
    assert len(day_rows(signed_in("nurse").get("/").get_data(as_text=True))) == 2


def test_an_empty_day_says_so_and_writes_no_event(app, chart, signed_in):
    add_appointment(app, chart, days=1)
    html = signed_in("front_desk").get("/").get_data(as_text=True)
    assert "No appointments today." in html
    assert flow_count(html, "expected") == 0
    assert audit_events(app, "appointment.list") == []


def test_admin_home_has_no_schedule(app, chart, signed_in):
    add_appointment(app, chart)
    html = signed_in("admin").get("/").get_data(as_text=True)
    assert 'id="today-heading"' not in html
    assert audit_events(app, "appointment.list") == []
