"""In Chromium: a prescriber opens a checked-in patient's visit, clicks "Prescribe", finds
lisinopril with the keyboard alone, builds the directions with the SIG builder, and sees the
interaction with the patient's spironolactone in the safety panel, with its source."""

from __future__ import annotations

import re

import pytest

from portal.charting.models import Encounter
from portal.extensions import db
from tests.prescriptions.compose_helpers import allergic_to, no_known_allergies, on_spironolactone
from tests.support.browser import typing_answered


@pytest.mark.browser
def test_prescribe_lisinopril_by_keyboard_and_see_the_interaction(
    app, chart, make_appointment, make_encounter, page, sign_in, watch, shot
):
    from playwright.sync_api import expect

    appointment_id = make_appointment(status="arrived")  # checked in
    encounter_id = make_encounter()
    with app.app_context():
        db.session.get(Encounter, encounter_id).appointment_id = appointment_id
        db.session.commit()
    patient_id = chart.patients[0]
    no_known_allergies(app, patient_id)
    on_spironolactone(app, patient_id)

    sign_in("drlee")
    page.goto(f"/chart/encounters/{encounter_id}")
    shot("visit")
    with page.expect_navigation():
        page.get_by_role("button", name="Prescribe", exact=True).click()
    expect(page.get_by_role("heading", name="New prescription")).to_be_visible()

    # The keyboard alone: the search box has the focus; type, ↓ into the results, Enter picks.
    search = page.get_by_label("Find a drug")
    expect(search).to_be_focused()
    # The search for all of it: an earlier one's list, answered mid-typing, would be replaced
    # under the arrow keys.
    with typing_answered(page, r"/prescriptions/\d+/drugs$", "lisinopril 10"):
        page.keyboard.type("lisinopril 10")
    expect(page.get_by_role("list", name="Drugs found")).to_be_visible()
    # Escape closes the list and gives the search box the focus back; typing finds again.
    page.keyboard.press("ArrowDown")
    expect(search).not_to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("list", name="Drugs found")).to_have_count(0)
    expect(search).to_be_focused()
    with page.expect_response(re.compile(r"/prescriptions/\d+/drugs$")):
        page.keyboard.press("Backspace")
        page.keyboard.type("0")
    expect(page.get_by_role("list", name="Drugs found")).to_be_visible()
    page.keyboard.press("ArrowDown")
    for _ in range(6):
        focused = page.evaluate("document.activeElement.textContent.trim()")
        if focused.startswith("lisinopril 10 MG Oral Tablet"):
            break
        page.keyboard.press("ArrowDown")
    else:
        pytest.fail("lisinopril 10 MG Oral Tablet was not reached with the arrow keys")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_test_id("chosen-drug")).to_contain_text("lisinopril 10 MG Oral Tablet")

    # The SIG builder: the directions are written as the fields are chosen.
    page.get_by_label("Dose", exact=True).fill("1")
    page.get_by_label("Unit", exact=True).select_option(label="tablets")
    page.get_by_label("Route", exact=True).select_option(label="By mouth")
    page.get_by_label("How often").select_option(label="once daily")
    with page.expect_response(re.compile(r"/prescriptions/\d+/draft$")) as saved:
        page.get_by_label("For how long").fill("30")
    assert saved.value.status == 200
    expect(page.get_by_test_id("directions-preview")).to_have_text(
        "Take 1 tablet by mouth once daily for 30 days"
    )

    panel = page.locator("#safety-panel")
    alert = panel.get_by_role("article").filter(has_text=re.compile("spironolactone", re.I))
    expect(alert).to_be_visible()
    expect(alert).to_contain_text(re.compile("lisinopril", re.I))
    expect(alert).to_contain_text("Source:")
    expect(alert).to_contain_text("What to do:")
    shot("interaction")
    watch.assert_clean(page)


LONG_ALLERGY_LIST = (
    ("penicillin G", "7980"),
    ("trimethoprim-sulfamethoxazole", "10831"),
    ("erythromycin ethylsuccinate", "4053"),
    ("hydroxychloroquine", "5521"),
    ("metoclopramide", "6915"),
    ("carbamazepine", "2002"),
    ("ciprofloxacin", "2551"),
    ("lamotrigine", "28439"),
    ("chlorhexidine gluconate", "2358"),
    ("vancomycin", "11124"),
    ("morphine", "7052"),
    ("codeine", "2670"),
)


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 1024])
def test_the_sticky_banner_never_covers_the_part_of_the_page_moved_to(
    app, chart, page, sign_in, watch, shot, width
):
    """A long allergy list wraps the sticky banner onto several lines: a part of the compose
    page reached by a link or by the focus stops just below the banner, neither under it nor
    below a blank band."""
    from playwright.sync_api import expect

    patient_id = chart.patients[0]
    for substance, rxcui in LONG_ALLERGY_LIST:
        allergic_to(app, patient_id, substance, rxcui)
    page.set_viewport_size({"width": width, "height": 700})
    page.emulate_media(reduced_motion="reduce")  # no smooth scrolling: measure where it stops
    sign_in("drlee")
    page.goto(f"/patients/{patient_id}/prescriptions")
    with page.expect_navigation():
        page.get_by_role("button", name="Prescribe", exact=True).click()
    expect(page.get_by_role("heading", name="New prescription")).to_be_visible()
    draft_url = page.url.split("#")[0]

    for part, heading in (("drug", "Drug"), ("directions", "Directions")):
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.goto(f"{draft_url}#{part}")
        banner = page.get_by_role("region", name="Patient").bounding_box()
        top = page.get_by_role("heading", name=heading, exact=True).bounding_box()
        assert banner["height"] > 112, "the allergy list should wrap the banner"
        gap = top["y"] - (banner["y"] + banner["height"])
        assert 0 <= gap <= 24, f"{heading}: {gap:.0f} px below the banner"
    shot(f"directions-below-banner-{width}")

    # The keyboard: back up from the bottom of the page to the drug search.
    page.get_by_role("button", name="Discard draft").focus()
    search = page.get_by_label("Find a drug")
    for _ in range(80):
        page.keyboard.press("Shift+Tab")
        if page.evaluate("document.activeElement.id") == "drug_query":
            break
    expect(search).to_be_focused()
    banner = page.get_by_role("region", name="Patient").bounding_box()
    label = page.locator("label[for=drug_query]").bounding_box()
    assert label["y"] >= banner["y"] + banner["height"], "the banner covers the drug search"
    watch.assert_clean(page)
