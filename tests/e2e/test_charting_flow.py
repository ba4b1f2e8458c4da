"""A visit charted from start to finish in Chromium, the way a prescriber does it in clinic.

From the day's schedule to a signed note with an addendum, over real HTTP to the live server,
finding everything by its label or role: start the checked-in visit, write the note with a
snippet (autosaved), record vital signs in °F and lb and see them charted, add a problem by
ICD-10-CM words with the keyboard, record an allergy and see it in the banner, sign the note,
fail to change it, add an addendum. Each step has its own detailed test in tests/charting;
this one checks that they fit together, one page leading to the next.
"""

from __future__ import annotations

import html
import re
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.charting.vitals_helpers import set_units
from tests.support.browser import labelled, post_from_page, typing_answered
from tests.support.chart import add_snippet, provider_note

pytestmark = pytest.mark.browser

ROS = "ROS: no fever, no chest pain, no shortness of breath."
NOTE = f"S: cough for two weeks, worse at night. {ROS}\nP: fluids, review in a week."
CLINIC_ZONE = ZoneInfo("America/New_York")  # the baseline clinic's (tests/conftest.py)


def wait_until(condition, timeout: float = 30.0):
    """Poll ``condition`` until it is truthy (what the server holds catching up with the page).

    The deadline is generous for a loaded CI machine; the poll ends as soon as it holds.
    """
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"still not true after {timeout} s: {condition.__doc__ or condition}")
        time.sleep(0.1)
    return result


def assert_shown_now(text: str) -> None:
    """``text`` holds a clinic-time "YYYY-MM-DD HH:MM" within the last two minutes."""
    shown = re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", text)
    assert shown, f"no date and time in {text!r}"
    at = datetime.strptime(shown.group(), "%Y-%m-%d %H:%M").replace(tzinfo=CLINIC_ZONE)
    assert timedelta(0) <= datetime.now(CLINIC_ZONE) - at < timedelta(minutes=2), text


def assert_in_view_below_the_banner(page, locator) -> None:
    """``locator`` is in the window and not hidden under the sticky patient banner."""
    expect(locator).to_be_in_viewport()
    banner = page.get_by_role("region", name="Patient").bounding_box()
    box = locator.bounding_box()
    assert box["y"] >= banner["y"] + banner["height"], "hidden under the patient banner"


def test_a_prescriber_charts_a_checked_in_visit_from_the_schedule_to_an_addendum(
    app, chart, make_appointment, page, sign_in, shot, watch
):
    make_appointment(status="arrived", reason="Cough for two weeks")  # checked in just now
    add_snippet(app, chart.drlee, ".ros", ROS)
    set_units(app, "[degF]", "[lb_av]", "[in_i]")  # the clinic works in °F, lb and inches

    # --- The day's schedule: the checked-in visit is in view, its panel starts the visit.
    sign_in("drlee")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Schedule").click()
    expect(page.get_by_role("heading", level=1, name=re.compile(r"Today$"))).to_be_visible()
    grid = page.get_by_role("table", name=re.compile("^Appointments on"))
    visit = grid.get_by_role("button", name=re.compile("Lovelace, Ada"))
    expect(visit).to_contain_text("Checked in")
    # Whatever the hour, today's grid opens at the current time: the visit needs no scrolling,
    # and the grid's headers stay above it.
    expect(visit).to_be_in_viewport()
    for header in ("Time", "Jordan Lee"):
        expect(grid.get_by_role("columnheader", name=header)).to_be_in_viewport()
    shot("schedule")
    visit.click()
    panel = page.get_by_role("complementary", name="Booking and appointment details")
    expect(panel.get_by_role("heading", name=re.compile("Lovelace, Ada"))).to_contain_text(
        "Checked in"
    )
    expect(panel).to_contain_text("Cough for two weeks")
    shot("appointment-panel")
    with page.expect_navigation():
        panel.get_by_role("button", name="Start visit").click()

    # --- The encounter page, for this patient and this visit.
    expect(page.get_by_role("heading", level=1, name=re.compile(r"^Office visit"))).to_be_visible()
    banner = page.get_by_role("region", name="Patient")
    expect(banner).to_contain_text("Lovelace, Ada")
    expect(banner).to_contain_text("Allergies: not recorded")
    expect(page.get_by_text("Cough for two weeks")).to_be_visible()
    shot("encounter")

    # --- The note: a snippet expands as it is typed; the draft saves itself.
    with page.expect_navigation():
        page.get_by_role("button", name="Start provider note").click()
    editor = page.get_by_label("Provider note text")
    editor.click()
    editor.press_sequentially("S: cough for two weeks, worse at night. .ros ")
    expect(editor).to_have_value(f"S: cough for two weeks, worse at night. {ROS} ")
    editor.press("Backspace")  # the space that ended the trigger
    editor.press("Enter")
    editor.press_sequentially("P: fluids, review in a week.")
    expect(editor).to_have_value(NOTE)
    expect(
        page.get_by_role("status").filter(has_text=re.compile(r"Saved at \d\d:\d\d"))
    ).to_be_visible()
    wait_until(lambda: provider_note(app).text == NOTE)
    shot("note-saved")

    # --- Vital signs, typed in the clinic's units, listed for this visit.
    vitals = page.get_by_role("region", name="Vital signs")
    expect(vitals.get_by_text("°F", exact=True)).to_be_visible()
    expect(vitals.get_by_text("lb", exact=True)).to_be_visible()
    vitals.get_by_label("Temperature", exact=True).fill("100.4")
    vitals.get_by_label("Weight", exact=True).fill("154")
    vitals.get_by_role("button", name="Record vital signs").click()
    taken = page.get_by_role("table", name="Vital signs taken at this visit")
    expect(taken).to_contain_text("100.4 °F")
    expect(taken).to_contain_text("Fever")
    expect(taken).to_contain_text("154.0 lb")
    shot("vitals")

    # --- A problem found by words, picked with the keyboard, addressed at this visit.
    problems = page.get_by_role("region", name="Diagnoses addressed")
    problems.get_by_text("Add a new problem", exact=True).click()
    search = problems.get_by_role("combobox", name="Find a diagnosis")
    # The list for all of it: one answered mid-typing is replaced under the arrow keys.
    with typing_answered(page, r"/icd10$", "type 2 diabetes"):
        search.press_sequentially("type 2 diabetes", delay=20)
    options = problems.get_by_role("listbox", name="Matching diagnoses").get_by_role("option")
    expect(options.filter(has_text="E11.9 ")).to_be_visible()
    texts = [text.strip() for text in options.all_inner_texts()]
    target = next(i for i, text in enumerate(texts) if text.startswith("E11.9 "))
    for _ in range(target + 1):
        search.press("ArrowDown")
    expect(options.nth(target)).to_have_attribute("aria-selected", "true")
    search.press("Enter")
    expect(labelled(problems, "ICD-10-CM code")).to_have_value("E11.9")
    shot("problem-picked")
    problems.get_by_role("button", name="Add problem").click()
    expect(problems.get_by_role("status")).to_have_text("Problem added and marked addressed.")
    expect(
        problems.get_by_label(re.compile("^Type 2 diabetes mellitus without complications"))
    ).to_be_checked()
    shot("problem-added")

    # --- The trends: each vital's chart holds the value just recorded, in °F and lb.
    page.get_by_role("link", name="All vital signs and trends").click()
    expect(page.get_by_role("heading", level=1, name="Vital signs")).to_be_visible()
    for name, title, value in (
        ("Temperature", "Temperature (°F)", "100.4"),
        ("Weight", "Weight (lb)", "154.0"),
    ):
        image = page.get_by_role("img", name=re.compile(f"^{name} over time"))
        expect(image).to_be_visible()
        wait_until(lambda image=image: image.evaluate("i => i.complete && i.naturalWidth > 0"))
        svg = html.unescape(page.request.get(image.get_attribute("src")).text())
        assert title in svg
        assert re.search(rf"<desc class=\"value\">[^<]*: {re.escape(value)}</desc>", svg), (
            f"no point {value} on the {name} chart"
        )
    shot("trends")

    # --- An allergy, recorded from the chart summary, shows in the banner at once.
    with page.expect_navigation():
        banner.get_by_role("link", name="Lovelace, Ada").click()
    page.get_by_role("link", name="Chart", exact=True).click()
    expect(page.get_by_role("heading", level=1, name="Chart summary")).to_be_visible()
    expect(page.get_by_role("region", name=re.compile("^Active problems"))).to_contain_text(
        "Type 2 diabetes mellitus without complications"
    )
    page.get_by_role("link", name="Allergies and intolerances").click()
    labelled(page, "Kind of substance").select_option(label="Drug")
    labelled(page, "Substance").fill("penicillin G")
    page.get_by_label("Hives").check()
    labelled(page, "Severity").select_option(label="Severe")
    with page.expect_navigation():
        page.get_by_role("button", name="Record allergy").click()
    expect(banner).to_contain_text("penicillin G")
    expect(banner).to_contain_text("severe")
    shot("allergy")

    # --- Back to the visit (the chart's recent encounters): sign the note.
    with page.expect_navigation():
        banner.get_by_role("link", name="Lovelace, Ada").click()
    page.get_by_role("link", name="Chart", exact=True).click()
    page.get_by_role("region", name=re.compile("^Recent encounters")).get_by_role("link").click()
    expect(page.get_by_role("heading", level=1, name=re.compile(r"^Office visit"))).to_be_visible()
    expect(banner).to_contain_text("penicillin G")
    expect(page.get_by_label("Provider note text")).to_have_value(NOTE)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign note").click()
    note = page.get_by_role("article", name=re.compile("^Provider note"))
    expect(note.get_by_text("Signed", exact=True)).to_be_visible()
    signed = note.get_by_text(re.compile("^Signed by Jordan Lee at"))
    assert_shown_now(signed.inner_text())
    expect(note).to_contain_text(ROS)
    shot("signed")

    # --- A signed note cannot change: no editor, and the server refuses a save anyway.
    expect(page.get_by_label("Provider note text")).to_have_count(0)
    expect(page.get_by_role("button", name="Save draft")).to_have_count(0)
    expect(page.get_by_role("button", name="Sign note")).to_have_count(0)
    draft = f"/chart/notes/{provider_note(app).id}/draft"
    watch.expect_http_error(409, draft)
    assert post_from_page(page, draft, {"text": "Rewritten after signing.", "version": "2"}) == 409
    assert provider_note(app).text == NOTE

    # --- The correction goes in an addendum, shown under the note with author and time.
    note.get_by_label("Addendum").fill("Chest X-ray ordered after review: no consolidation.")
    with page.expect_navigation():
        note.get_by_role("button", name="Sign and add addendum").click()
    note = page.get_by_role("article", name=re.compile("^Provider note"))
    # The page opens at the note (#note-N), its heading below the banner, not under it.
    assert_in_view_below_the_banner(page, note.get_by_role("heading", name=re.compile("^Provider")))
    addenda = note.get_by_role("list").filter(has_text="Chest X-ray ordered")
    expect(note.get_by_role("heading", name="Addenda")).to_be_visible()
    expect(addenda).to_contain_text("Chest X-ray ordered after review: no consolidation.")
    byline = addenda.get_by_text(re.compile("^Addendum signed by Jordan Lee at"))
    assert_shown_now(byline.inner_text())
    expect(note).to_contain_text(NOTE.splitlines()[0])  # the signed text itself is unchanged
    shot("addendum")
    watch.assert_clean(page)
