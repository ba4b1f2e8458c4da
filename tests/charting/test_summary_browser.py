"""The chart summary and the visit summary's print view in Chromium: landmarks, headings,
links reachable with the keyboard, and a print layout without the navigation."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.charting.models import Note
from portal.extensions import db
from tests.charting.summary_helpers import add_addendum, make_chart

pytestmark = pytest.mark.browser


def test_chart_summary_landmarks_headings_and_keyboard_links(page, app, sign_in):
    ids = make_chart(app, allergy=True)
    sign_in("nurse")
    page.goto(f"/patients/{ids['patient']}")
    page.get_by_role("link", name="Chart", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/chart/patients/{ids['patient']}$"))
    expect(page.get_by_role("heading", level=1, name="Chart summary")).to_be_visible()
    for name in (
        "Active problems",
        "Allergies and intolerances",
        "Active medications",
        "Latest vital signs",
        "Recent encounters",
        "Upcoming appointments",
        "Immunizations",
    ):
        heading = page.get_by_role("heading", level=2, name=re.compile(f"^{name}"))
        expect(heading).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_role("main")).to_be_visible()
    expect(page.get_by_role("region", name="Patient")).to_contain_text("Ångström, Zoë")
    expect(page.get_by_role("region", name="Recent encounters")).to_contain_text("Unsigned")
    # The encounter links are reached with Tab alone.
    target = f"/chart/encounters/{ids['signed']}"
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.getAttribute('href')") == target:
            break
    else:
        pytest.fail("the encounter link was never reached with the Tab key")


def test_print_view_hides_navigation_and_prints_from_a_button(page, app, sign_in):
    ids = make_chart(app)
    with app.app_context():
        note = db.session.scalars(db.select(Note).filter_by(encounter_id=ids["signed"])).one()
        add_addendum(note, "Throat culture negative.")
        db.session.commit()
    sign_in("nurse")
    page.goto(f"/chart/encounters/{ids['signed']}/summary")
    expect(page.get_by_role("heading", level=1, name="Visit summary")).to_be_visible()
    expect(page.get_by_text("Throat culture negative.")).to_be_visible()
    # "Print" is wired by the static script (no inline handler): stand in for the dialog.
    page.evaluate("() => { window.print = () => { window.__printed = true; }; }")
    page.get_by_role("button", name="Print").click()
    assert page.evaluate("() => window.__printed === true")
    page.emulate_media(media="print")
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    expect(page.get_by_role("button", name="Print")).to_be_hidden()
    expect(page.get_by_role("region", name="Patient")).to_be_visible()
    expect(page.get_by_text("Signed text")).to_be_visible()


def test_unsigned_visit_summary_says_so_without_a_print_button(page, app, sign_in):
    ids = make_chart(app)
    sign_in("nurse")
    page.goto(f"/chart/encounters/{ids['draft']}/summary")
    expect(page.get_by_role("status").filter(has_text="isn't signed yet")).to_be_visible()
    expect(page.get_by_role("button", name="Print")).to_have_count(0)
