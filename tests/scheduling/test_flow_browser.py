"""In Chromium: a check-in at the front desk shows on another screen's flow board by itself,
without taking the focus or a half-typed value from that screen; rooming from the board's
side panel moves the card at once."""

from __future__ import annotations

import pytest

from tests.scheduling.flow_support import make_appointment, minutes_from_now
from tests.support.browser import sign_in_by_cookie, typing_answered


@pytest.mark.browser
def test_check_in_updates_the_flow_board(app, schedule, page, new_page, sign_in, shot):
    from playwright.sync_api import expect

    app.config["FLOW_BOARD_POLL_SECONDS"] = 1  # the product polls every 15 s
    appointment_id = make_appointment(app, schedule, starts_at=minutes_from_now(10))

    board = page  # the nurse's screen
    sign_in("nurse")
    board.goto(f"/schedule/flow-board?location_id={schedule.main_street}")
    expected = board.locator("#flow-column-expected")
    arrived = board.locator("#flow-column-arrived")
    expect(expected.get_by_text("Lovelace, Ada")).to_be_visible()
    # Someone at the board screen is half-way through typing a search.
    search = board.get_by_label("Find a patient")
    search.click()
    search.press_sequentially("Tur")

    desk = new_page()  # the front desk's screen: another person, signed in at the same time
    sign_in_by_cookie(desk, app, "frontdesk")
    desk.goto(f"/schedule/appointments/{appointment_id}/check-in")
    desk.get_by_label("Demographics (name, date of birth, address, phone) confirmed").check()
    desk.get_by_label("Insurance confirmed").check()
    desk.get_by_role("button", name="Check in", exact=True).click()
    expect(desk.get_by_text("Marked checked in.")).to_be_visible()

    # The board picks it up by polling alone.
    expect(arrived.get_by_text("Lovelace, Ada")).to_be_visible(timeout=10_000)
    expect(expected.get_by_text("Lovelace, Ada")).to_have_count(0)
    # A couple more polls, each swapped in and settled, leave the search as it was.
    board.evaluate(
        "() => { window.__polls = 0; document.getElementById('flow-board')"
        ".addEventListener('htmx:afterSettle', () => { window.__polls += 1; }); }"
    )
    board.wait_for_function("() => window.__polls >= 2", timeout=20_000)
    expect(search).to_be_focused()
    expect(search).to_have_value("Tur")
    shot("board-after-check-in")

    # From the board: open the card, room the patient; the card moves without waiting.
    app.config["FLOW_BOARD_POLL_SECONDS"] = 600
    board.reload()
    board.locator(f"#flow-card-{appointment_id}").click()
    panel = board.locator("#flow-panel")
    panel.get_by_label("Room").select_option(label="Exam 2")
    panel.get_by_role("button", name="Room patient").click()
    expect(panel.get_by_text("Marked roomed.")).to_be_visible()
    expect(board.locator("#flow-column-roomed").get_by_text("Lovelace, Ada")).to_be_visible()


@pytest.mark.browser
def test_add_to_the_waitlist_finding_the_patient_by_name(app, schedule, page, sign_in):
    from datetime import timedelta

    from playwright.sync_api import expect

    from tests.scheduling.flow_support import local_today

    today = local_today()
    sign_in("frontdesk")
    page.goto("/schedule/waitlist")
    with typing_answered(page, r"/waitlist/patients$", "hopp"):
        page.get_by_label("Find the patient").press_sequentially("hopp")
    page.get_by_label("Hopper, Grace", exact=False).check()
    page.get_by_label("Appointment type").select_option(label="Follow-up")
    page.get_by_label("Earliest day").fill(today.isoformat())
    page.get_by_label("Latest day").fill((today + timedelta(days=3)).isoformat())
    page.get_by_label("Notes").fill("Can come at short notice")
    page.get_by_role("button", name="Add to waitlist").click()
    row = page.get_by_role("row", name="Hopper, Grace")
    expect(row).to_contain_text("Can come at short notice")
    expect(row).to_contain_text("Any")
