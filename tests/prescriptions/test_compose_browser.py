"""In Chromium: a prescriber opens a checked-in patient's visit, clicks "Prescribe", finds
lisinopril with the keyboard alone, builds the directions with the SIG builder, and sees the
interaction with the patient's spironolactone in the safety panel, with its source."""

from __future__ import annotations

import re

import pytest

from portal.charting.models import Encounter
from portal.extensions import db
from tests.prescriptions.compose_helpers import no_known_allergies, on_spironolactone


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
    with page.expect_response(re.compile(r"/prescriptions/\d+/drugs$")):
        page.keyboard.type("lisinopril 10")
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
