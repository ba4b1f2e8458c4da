"""In Chromium: book from the day view with the keyboard only; the grid shows the visit."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.scheduling.booking_helpers import appointments, future_monday, local
from tests.support.browser import typing_answered

pytestmark = pytest.mark.browser


def _focused(page) -> str:
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return (e.getAttribute('aria-label') || e.id || e.textContent || '').trim(); }"
    )


def _tab_until(page, predicate_js: str, limit: int = 80) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(predicate_js):
            return
    raise AssertionError(f"Tab never reached {predicate_js}: at {_focused(page)!r}")


def test_booking_from_the_day_view_with_the_keyboard_only(app, page, sign_in, shot, schedule):
    day = future_monday()
    sign_in("frontdesk")

    page.goto(f"/schedule/day?day={day.isoformat()}")
    # One tab stop into the grid; then arrows: right to Jordan Lee, down to 09:00.
    _tab_until(page, "() => !!document.activeElement.closest('.calendar-grid')")
    assert _focused(page).startswith("Book 07:00 with Anita Patel")  # + "(outside hours)"
    page.keyboard.press("ArrowRight")
    for _ in range(12):
        page.keyboard.press("ArrowDown")
    assert _focused(page) == "Book 09:00 with Jordan Lee"
    page.keyboard.press("Enter")

    # The booking panel opens beside the grid with the patient search focused.
    page.wait_for_selector("#patient-query:focus")
    with typing_answered(page, r"/appointments/patients$", "Lovel"):
        page.keyboard.type("Lovel")
    # The lone match is highlighted for Enter, but nobody is chosen by themselves.
    expect(page.locator("#patient-options .is-highlighted")).to_have_count(1)
    expect(page.locator("#patient-options input:checked")).to_have_count(0)
    page.keyboard.press("Enter")  # takes the highlighted match, does not submit the form
    expect(page.locator("#patient-options input:checked")).to_have_count(1)
    assert appointments(app) == []
    _tab_until(page, "() => document.activeElement.name === 'reason'")
    page.keyboard.press("Control+A")
    page.keyboard.type("Knee pain")
    _tab_until(page, "() => document.activeElement.type === 'submit'")
    page.keyboard.press("Enter")

    expect(page.locator("#side-panel #appointment-panel")).to_contain_text("Booked.")
    shot("booked")
    # The answer takes the focus.
    page.wait_for_function("() => document.activeElement.id === 'appointment-title'")
    # The grid refreshed itself (no page load) and shows the visit at 09:00.
    page.wait_for_selector(".calendar-grid .appt")
    # Once the grid has refreshed, Escape in the panel goes back to the grid.
    page.focus("#appointment-title")
    page.keyboard.press("Escape")
    assert page.evaluate("() => !!document.activeElement.closest('.calendar-grid')")
    assert "09:00\u201309:20" in page.inner_text(".calendar-grid")
    assert "Lovelace" in page.inner_text(".calendar-grid")
    (booked,) = appointments(app)
    assert booked.starts_at == local(day, 9, 0) and booked.reason == "Knee pain"
    assert booked.provider_id == schedule.drlee

    # "n" moves to the next day without reloading the page; "p" comes back.
    page.locator("body").focus()
    page.evaluate("() => document.activeElement.blur()")
    following = day + timedelta(days=1)
    page.keyboard.press("n")
    page.wait_for_function(
        "text => document.getElementById('calendar-title').innerText.includes(text)",
        arg=f"{following.day} {following:%b %Y}",
    )
    # htmx pushes the address once the swap has settled, a moment after the title changed.
    expect(page).to_have_url(re.compile(rf"day={following.isoformat()}"))
    expect(page.locator(".calendar-grid .appt")).to_have_count(0)
    page.keyboard.press("p")
    page.wait_for_function(
        "text => document.getElementById('calendar-title').innerText.includes(text)",
        arg=f"{day.day} {day:%b %Y}",
    )
    page.wait_for_selector(".calendar-grid .appt")


def test_rescheduling_from_the_appointment_panel(app, page, sign_in, watch, schedule):
    from tests.scheduling.booking_helpers import booking_form

    day = future_monday()
    sign_in("frontdesk")
    # Two visits: the 09:00 one is moved, first onto the 10:00 one (refused), then to 11:00.
    for at, patient in (("09:00", schedule.patients[0]), ("10:00", schedule.patients[1])):
        response = page.request.post(
            "/schedule/appointments",
            form=booking_form(schedule, day, at, patient_id=patient),
            headers={
                "HX-Request": "true",
                "X-CSRFToken": page.evaluate(
                    "() => document.querySelector('meta[name=csrf-token]').content"
                ),
            },
        )
        assert response.status == 200
    moving = appointments(app)[0]
    page.goto(f"/schedule/day?day={day.isoformat()}")
    page.click(f"#appt-{moving.id}")
    page.get_by_role("link", name="Reschedule").click()
    page.get_by_label("New start").fill("10:10")
    # The refused move answers 409, which Chromium logs; that one is expected.
    watch.expect_http_error(409, f"/schedule/appointments/{moving.id}/reschedule")
    page.get_by_role("button", name="Move appointment").click()
    page.wait_for_selector("#reschedule-panel .invalid-feedback")
    assert "That time was just taken" in page.inner_text("#side-panel")
    # Whose time it is, and the next free one (10:20, after Turing's visit) to move to.
    assert "Turing, Alan has 10:00\u201310:20 with this provider." in page.inner_text("#side-panel")
    expect(page.get_by_role("button", name=re.compile("^Move at 10:20 on"))).to_be_visible()
    assert appointments(app, id=moving.id)[0].starts_at == local(day, 9, 0)

    page.get_by_label("New start").fill("11:00")
    page.get_by_role("button", name="Move appointment").click()
    # The reschedule panel gives way to the appointment's (which was open before it).
    expect(page.locator("#side-panel #appointment-panel")).to_contain_text("11:00\u201311:20")
    page.wait_for_function(
        "() => document.querySelector('.calendar-grid').innerText.includes('11:00\u201311:20')"
    )
    assert "09:00\u201309:20" not in page.inner_text(".calendar-grid")
    assert appointments(app, id=moving.id)[0].starts_at == local(day, 11, 0)


def test_arrow_keys_step_through_visits_that_share_a_cell(app, page, sign_in, schedule):
    from portal.extensions import db
    from portal.scheduling.models import Appointment

    day = future_monday()
    nine = local(day, 9)
    with app.app_context():
        pair = [
            Appointment(
                patient_id=schedule.patients[number],
                provider_id=schedule.drlee,
                location_id=schedule.main_street,
                appointment_type_id=schedule.follow_up,
                starts_at=nine + timedelta(minutes=10 * number),
                ends_at=nine + timedelta(minutes=10 * number + 20),
                overbooked=number == 1,  # booked on purpose over the first
            )
            for number in (0, 1)
        ]
        db.session.add_all(pair)
        db.session.commit()
        first, second = (appointment.id for appointment in pair)
    sign_in("frontdesk")
    page.goto(f"/schedule/day?day={day.isoformat()}")
    page.focus(f"#appt-{first}")
    page.keyboard.press("ArrowDown")  # the overlapping visit, in the same cell
    assert _focused(page) == f"appt-{second}"
    page.keyboard.press("ArrowDown")  # then on below the pair: the 09:30 slot
    assert _focused(page) == "Book 09:30 with Jordan Lee"
    page.keyboard.press("ArrowUp")  # back up: the last visit of the cell above
    assert _focused(page) == f"appt-{second}"
    page.keyboard.press("ArrowUp")
    assert _focused(page) == f"appt-{first}"
