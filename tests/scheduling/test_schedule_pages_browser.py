"""In Chromium: the scheduling pages as the front desk meets them on a first day: reaching
every page from the schedule, the side panel's room, the day view's check-in, the cards'
lengths on the grid, the booking result on "Find next available". Every test here is also
watched for CSP violations, console errors and failed requests (tests/support/browser.py).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.scheduling.booking_helpers import future_monday
from tests.scheduling.flow_support import make_appointment

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


# Words of the element that a line break cuts in two (each word's text: one box if whole).
BROKEN_WORDS = """
root => {
  const broken = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const match of node.data.matchAll(/\\S+/g)) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      if (range.getClientRects().length > 1) broken.push(match[0]);
    }
  }
  return broken;
}
"""


def test_check_in_from_the_day_views_panel_opens_the_checklist(app, page, sign_in, schedule):
    from tests.scheduling.flow_support import local_today, minutes_from_now

    appointment_id = make_appointment(app, schedule, starts_at=minutes_from_now(30))
    sign_in("frontdesk")
    page.goto(f"/schedule/day?day={local_today().isoformat()}")
    page.locator(f"#appt-{appointment_id}").click()
    panel = page.locator("#side-panel")
    # A failed request (the 422 it used to be) would fail the test through the watch.
    panel.get_by_role("link", name="Mark checked in").click()
    expect(panel.get_by_role("heading", name="Check in · Lovelace, Ada")).to_be_visible()

    for label in panel.locator("dt, h3, label").all():
        assert label.evaluate(BROKEN_WORDS) == [], label.inner_text()
        assert label.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), label.inner_text()

    panel.get_by_label("Demographics (name, date of birth, address, phone) confirmed").check()
    panel.get_by_label("Insurance confirmed").check()
    panel.get_by_role("button", name="Check in", exact=True).click()
    expect(panel.get_by_text("Marked checked in.")).to_be_visible()
    # The grid shows the new status by itself.
    expect(page.locator(f"#appt-{appointment_id}")).to_contain_text("Checked in")
