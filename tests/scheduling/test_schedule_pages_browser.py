"""In Chromium: the scheduling pages as the front desk meets them on a first day: reaching
every page from the schedule, the side panel's room, the day view's check-in, the cards'
lengths on the grid, the booking result on "Find next available". Every test here is also
watched for CSP violations, console errors and failed requests (tests/support/browser.py).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.scheduling.booking_helpers import future_monday, local
from tests.scheduling.flow_support import make_appointment
from tests.support.browser import labelled, typing_answered

PATIENT_SEARCH = r"/appointments/patients$"

pytestmark = pytest.mark.browser


def test_the_schedule_reaches_week_view_find_and_waitlist(page, sign_in, schedule):
    day = future_monday()
    sign_in("frontdesk")
    page.goto(f"/schedule/day?day={day.isoformat()}")
    pages = page.get_by_role("navigation", name="Schedule pages")
    expect(pages.get_by_role("link", name="Day view")).to_have_attribute("aria-current", "page")

    pages.get_by_role("link", name="Week view").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Week of")
    # The week of the day being looked at.
    expect(page).to_have_url(re.compile(rf"/schedule/week\?(.*&)?day={day.isoformat()}"))

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


def _checked_label(page) -> str:
    return page.evaluate(
        "() => { const c = document.querySelector('#patient-options input:checked');"
        " return c ? c.labels[0].innerText : ''; }"
    )


def _highlighted_label(page) -> str:
    return page.locator("#patient-options .is-highlighted label").inner_text()


def test_the_patient_picker_by_keyboard_and_a_refused_form_keeps_the_search(
    app, page, sign_in, watch, schedule
):
    from datetime import date

    from portal.extensions import db
    from tests.support.factories import patient_row

    with app.app_context():
        db.session.add(patient_row("Ann", "Lovell", date(1990, 4, 2), sex_at_birth="female"))
        db.session.commit()
    day = future_monday()
    sign_in("frontdesk")
    page.goto(f"/schedule/day?day={day.isoformat()}")
    page.get_by_role("button", name="Book 09:00 with Jordan Lee").click()
    query = labelled(page.locator("#side-panel"), "Patient")
    expect(query).to_be_focused()
    with typing_answered(page, PATIENT_SEARCH, "Lovel"):
        page.keyboard.type("Lovel")
    expect(page.locator("#patient-options input[type=radio]")).to_have_count(2)
    # Two matches: nothing highlighted, nothing chosen, until the arrow keys say so.
    expect(page.locator("#patient-options .is-highlighted")).to_have_count(0)
    page.keyboard.press("ArrowDown")
    first = _highlighted_label(page)
    page.keyboard.press("ArrowDown")
    second = _highlighted_label(page)
    assert first != second
    page.keyboard.press("ArrowUp")
    assert _highlighted_label(page) == first
    assert _checked_label(page) == ""
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")  # takes the highlighted one
    assert _checked_label(page) == second
    expect(query).to_be_focused()

    # A refused form (a length no visit has) keeps the search, the choice and the rest.
    page.get_by_label("Reason for visit").fill("Knee pain")
    page.get_by_label("Minutes").fill("1")
    watch.expect_http_error(422, "/schedule/appointments")
    page.get_by_role("button", name="Book", exact=True).click()
    expect(page.get_by_text("Between 5 minutes and 12 hours.")).to_be_visible()
    expect(query).to_have_value("Lovel")
    assert _checked_label(page) == second
    expect(page.get_by_label("Reason for visit")).to_have_value("Knee pain")


def test_a_refused_form_without_a_patient_lists_the_typed_search_again(
    app, page, sign_in, watch, schedule
):
    day = future_monday()
    sign_in("frontdesk")
    page.goto(f"/schedule/day?day={day.isoformat()}")
    page.get_by_role("button", name="Book 09:00 with Jordan Lee").click()
    expect(labelled(page.locator("#side-panel"), "Patient")).to_be_focused()
    with typing_answered(page, PATIENT_SEARCH, "Turi"):
        page.keyboard.type("Turi")
    expect(page.locator("#patient-options .is-highlighted")).to_have_count(1)
    watch.expect_http_error(422, "/schedule/appointments")
    page.get_by_role("button", name="Book", exact=True).click()  # nobody chosen yet
    expect(page.get_by_text("Choose a patient.")).to_be_visible()
    expect(labelled(page.locator("#side-panel"), "Patient")).to_have_value("Turi")
    expect(page.get_by_label(re.compile("Turing, Alan"))).not_to_be_checked()


# The contrast ratio (WCAG) of an element's text against the first opaque background behind it.
CONTRAST = """
element => {
  const rgb = text => text.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const channel = v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  let back = null;
  for (let e = element; e && !back; e = e.parentElement) {
    const colour = rgb(getComputedStyle(e).backgroundColor);
    if (colour.length < 4 || colour[3] > 0) back = colour;
  }
  const a = luminance(rgb(getComputedStyle(element).color));
  const b = luminance(back || [255, 255, 255]);
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}
"""


def test_find_next_available_shows_the_booking_where_the_eye_is(app, page, sign_in, schedule):
    from tests.scheduling.future_dates import a_winter_monday

    monday = a_winter_monday().isoformat()
    sign_in("frontdesk")
    page.goto(
        f"/schedule/find?appointment_type_id={schedule.follow_up}&provider_ids={schedule.drlee}"
        f"&first_day={monday}&last_day={monday}&time_of_day=any"
    )
    page.get_by_label(re.compile("Find the patient")).fill("Turing")
    page.get_by_label(re.compile("Turing, Alan")).check()
    # The last of twenty slots: far down the page.
    book = page.locator("#find-results").get_by_role("button", name=re.compile("^Book")).last
    book.click()
    title = page.locator("#find-booking-result #appointment-title")
    expect(title).to_be_focused()
    expect(title).to_be_in_viewport()
    expect(page.locator("#find-booking-result").get_by_text("Booked.")).to_be_in_viewport()
    badge = page.locator("#find-booking-result .appt-badge")
    expect(badge).to_have_text("Scheduled")
    assert badge.evaluate(CONTRAST) >= 4.5


def _box(locator) -> dict:
    box = locator.bounding_box()
    assert box is not None
    return box


def _overbooked(app, schedule, starts_at, *, minutes: int, patient: int) -> int:
    """A visit booked on purpose over another (the databases refuse any other overlap)."""
    from datetime import timedelta

    from portal.extensions import db
    from portal.scheduling.models import Appointment

    with app.app_context():
        appointment = Appointment(
            patient_id=schedule.patients[patient],
            provider_id=schedule.drlee,
            location_id=schedule.main_street,
            appointment_type_id=schedule.follow_up,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=minutes),
            overbooked=True,
        )
        db.session.add(appointment)
        db.session.commit()
        return appointment.id


def test_a_visits_card_spans_its_length_and_lines_up_with_the_times(
    app, page, sign_in, shot, schedule
):
    day = future_monday()
    long_visit = make_appointment(
        app, schedule, starts_at=local(day, 9, 5), minutes=40, type_id=schedule.new_patient
    )
    # Two visits that overlap (one overbooked on purpose) and a short one after them.
    first = make_appointment(app, schedule, starts_at=local(day, 10, 0), minutes=30, patient=1)
    second = _overbooked(app, schedule, local(day, 10, 10), minutes=20, patient=2)
    short = make_appointment(app, schedule, starts_at=local(day, 11, 0), minutes=5, patient=3)
    sign_in("frontdesk")
    page.goto(f"/schedule/day?day={day.isoformat()}")
    rows = page.locator(".calendar-grid tbody tr")

    def row_top(hour: int, minute: int) -> float:
        # The grid starts at 07:00, a row each 10 minutes.
        return _box(rows.nth((hour * 60 + minute - 7 * 60) // 10))["y"]

    heights = rows.evaluate_all("rows => rows.map(row => row.getBoundingClientRect().height)")
    step = heights[0]
    assert all(abs(height - step) < 0.5 for height in heights), set(heights)
    half = step / 2  # five minutes

    def spans(appointment_id: int, start: tuple[int, int], end: tuple[int, int]) -> dict:
        box = _box(page.locator(f"#appt-{appointment_id}"))
        top = row_top(start[0], start[1] // 10 * 10) + (start[1] % 10) / 5 * half
        bottom = row_top(end[0], end[1] // 10 * 10) + (end[1] % 10) / 5 * half
        assert abs(box["y"] - top) <= 1.5, (appointment_id, box, top)
        assert abs(box["y"] + box["height"] - bottom) <= 2, (appointment_id, box, bottom)
        return box

    spans(long_visit, (9, 5), (9, 45))
    one = spans(first, (10, 0), (10, 30))
    two = spans(second, (10, 10), (10, 30))
    assert one["x"] + one["width"] <= two["x"] + 1 or two["x"] + two["width"] <= one["x"] + 1
    spans(short, (11, 0), (11, 5))
    # The time labels sit on their rows.
    label = page.locator(".calendar-grid tbody th", has_text="09:00")
    assert abs(_box(label)["y"] - row_top(9, 0)) <= 1
    shot("day-grid")


def _choose_patient(page, typed: str) -> None:
    query = labelled(page.locator("#side-panel"), "Patient")
    expect(query).to_be_focused()
    with typing_answered(page, PATIENT_SEARCH, typed):
        page.keyboard.type(typed)
    expect(page.locator("#patient-options .is-highlighted")).to_have_count(1)
    page.keyboard.press("Enter")


def test_booking_outside_hours_asks_and_a_taken_time_offers_the_next(
    app, page, sign_in, watch, schedule
):
    from tests.scheduling.booking_helpers import appointments

    day = future_monday()
    make_appointment(app, schedule, starts_at=local(day, 9, 0), patient=1)  # Turing 09:00
    sign_in("frontdesk")
    page.goto(f"/schedule/day?day={day.isoformat()}")
    panel = page.locator("#side-panel")

    # Before hours: the panel asks; ticking the box books it.
    page.get_by_role("button", name="Book 07:30 with Jordan Lee (outside working hours)").click()
    _choose_patient(page, "Lovel")
    panel.get_by_role("button", name="Book", exact=True).click()
    expect(panel.get_by_text("is outside Jordan Lee's working hours")).to_be_visible()
    assert len(appointments(app)) == 1
    panel.get_by_label("Book outside the provider's working hours").check()
    panel.get_by_role("button", name="Book", exact=True).click()
    expect(panel.get_by_text("Booked.")).to_be_visible()
    assert len(appointments(app)) == 2

    # A time someone holds (the grid was stale): who has it, and the next free time.
    page.goto(f"/schedule/day?day={day.isoformat()}")
    page.get_by_role("button", name="Book 09:20 with Jordan Lee").click()
    _choose_patient(page, "Hopp")
    panel.get_by_label("Start").fill("09:10")
    watch.expect_http_error(409, "/schedule/appointments")
    panel.get_by_role("button", name="Book", exact=True).click()
    expect(panel.get_by_text("That time was just taken")).to_be_visible()
    expect(
        panel.get_by_text("Turing, Alan has 09:00\u201309:20 with this provider.")
    ).to_be_visible()
    panel.get_by_role("button", name=re.compile("^Book at 09:20 on")).click()
    expect(panel.get_by_text("Booked.")).to_be_visible()
    booked = [a for a in appointments(app) if a.patient_id == schedule.patients[2]]
    assert [a.starts_at for a in booked] == [local(day, 9, 20)]


def test_every_panel_of_the_day_view_opens_without_a_csp_violation(
    app, page, sign_in, watch, schedule
):
    """Visit, reschedule, cancel and the waitlist's matches (booking and check-in: above),
    each watched for CSP violations as it opens."""
    day = future_monday()
    visit = make_appointment(app, schedule, starts_at=local(day, 10, 0), patient=2)
    sign_in("frontdesk")
    page.goto(f"/schedule/day?day={day.isoformat()}")
    panel = page.locator("#side-panel")

    def clean() -> None:
        watch.assert_clean(page)

    page.locator(f"#appt-{visit}").click()
    expect(panel.locator("#appointment-panel")).to_be_visible()
    clean()
    panel.get_by_role("link", name="Reschedule").click()
    expect(panel.get_by_role("button", name="Move appointment")).to_be_visible()
    clean()
    page.locator(f"#appt-{visit}").click()
    panel.get_by_text("Cancel this appointment").click()
    panel.get_by_label("Reason for cancelling").fill("Feeling better")
    panel.get_by_role("button", name="Cancel appointment").click()
    expect(panel.get_by_text("Cancelled 1 visit.")).to_be_visible()
    expect(
        panel.get_by_role("heading", name=re.compile("^Waitlist for the freed time"))
    ).to_be_visible()
    clean()
    # And the week view's panel.
    page.goto(f"/schedule/week?day={day.isoformat()}&provider_id={schedule.drlee}")
    page.get_by_role("button", name=re.compile("^Book 11:00 on")).first.click()
    expect(panel.get_by_role("heading", name="Book an appointment")).to_be_visible()
    # The panel's search takes the focus once htmx has settled (a moment after the swap).
    expect(labelled(panel, "Patient")).to_be_focused()
    with typing_answered(page, PATIENT_SEARCH, "Lovel"):
        page.keyboard.type("Lovel")
    expect(page.locator("#patient-options .is-highlighted")).to_have_count(1)
    clean()
