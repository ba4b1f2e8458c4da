"""In Chromium: the home page's day for the front desk and for a prescriber."""

from __future__ import annotations

import re

import pytest

from tests.main.helpers import add_appointment

pytestmark = pytest.mark.browser


def test_front_desk_home_shows_the_day_and_opens_demographics(page, sign_in, watch, app, chart):
    add_appointment(app, chart, status="arrived")
    add_appointment(app, chart, provider="drpatel", patient=1)
    sign_in("frontdesk")
    day = page.get_by_role("region", name=re.compile(r"^Today's schedule"))
    table = day.get_by_role("table", name=re.compile("Today's schedule: 2 appointments"))
    assert table.get_by_role("row").count() == 3  # the header and two visits
    assert "1 Checked in" in day.locator("#flow-count-arrived").inner_text()
    assert "1 Expected" in day.locator("#flow-count-expected").inner_text()
    day.get_by_role("link", name="Turing, Alan").click()
    page.wait_for_url(re.compile(rf".*/patients/{chart.patients[1]}$"))
    watch.assert_clean(page)


def test_prescriber_home_shows_their_day(page, sign_in, watch, app, chart):
    add_appointment(app, chart)
    add_appointment(app, chart, provider="drpatel", patient=1)
    sign_in("drlee")
    day = page.get_by_role("region", name=re.compile(r"^Your day"))
    assert "Lovelace, Ada" in day.inner_text() and "Turing" not in day.inner_text()
    day.get_by_role("link", name="Lovelace, Ada").click()
    page.wait_for_url(re.compile(rf".*/chart/patients/{chart.patients[0]}$"))
    watch.assert_clean(page)
