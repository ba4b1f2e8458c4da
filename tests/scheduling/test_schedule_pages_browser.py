"""In Chromium: the scheduling pages as the front desk meets them on a first day: reaching
every page from the schedule, the side panel's room, the day view's check-in, the cards'
lengths on the grid, the booking result on "Find next available". Every test here is also
watched for CSP violations, console errors and failed requests (tests/support/browser.py).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.scheduling.booking_helpers import future_monday

pytestmark = pytest.mark.browser


def test_the_schedule_reaches_week_view_find_and_waitlist(page, sign_in, schedule):
    day = future_monday()
    sign_in("frontdesk")
    page.goto(f"/schedule/day?day={day.isoformat()}")
    pages = page.get_by_role("navigation", name="Schedule pages")
    expect(pages.get_by_role("link", name="Day view")).to_have_attribute("aria-current", "page")

    pages.get_by_role("link", name="Week view").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Week of")
    assert f"day={day.isoformat()}" in page.url  # the week of the day being looked at

    page.get_by_role("navigation", name="Schedule pages").get_by_role(
        "link", name="Find next available"
    ).click()
    expect(page.get_by_role("heading", name="Find next available")).to_be_visible()

    page.get_by_role("navigation", name="Schedule pages").get_by_role(
        "link", name="Waitlist"
    ).click()
    expect(page.get_by_role("heading", name="Waitlist", exact=True)).to_be_visible()

    page.get_by_role("navigation", name="Schedule pages").get_by_role(
        "link", name="Day view"
    ).click()
    expect(page.locator("#calendar-title")).to_be_visible()


def _width(page, selector: str) -> float:
    return page.evaluate(
        "s => { const e = document.querySelector(s);"
        " return e ? e.getBoundingClientRect().width : 0; }",
        selector,
    )


def test_an_empty_side_panel_gives_the_week_grid_the_width(page, sign_in, schedule):
    page.set_viewport_size({"width": 1024, "height": 768})
    day = future_monday()
    sign_in("frontdesk")
    page.goto(f"/schedule/week?day={day.isoformat()}&provider_id={schedule.drlee}")
    layout = _width(page, ".calendar-layout")
    expect(page.locator("#side-panel")).to_be_hidden()
    assert _width(page, ".calendar-main") >= 0.95 * layout

    # Opening a slot brings the panel back beside the grid.
    slot = f"Book 09:00 on {day:%a} {day.day} {day:%b} with Jordan Lee"
    page.get_by_role("button", name=slot).click()
    expect(page.get_by_role("heading", name="Book an appointment")).to_be_visible()
    assert _width(page, "#side-panel") > 0.25 * layout
