"""In Chromium (issue 14): with the kind "Drug class" the substance field suggests drug
classes, not drugs; a class is recorded with its code; a drug typed as a class is refused
beside the field with what was typed kept."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.charting.lists_helpers import make_patient
from tests.support.browser import labelled

pytestmark = pytest.mark.browser

SUGGESTIONS = "el => el.list ? Array.from(el.list.options).map(o => o.value) : []"


def test_drug_class_suggests_classes_and_records_the_class(app, page, sign_in, watch):
    patient_id = make_patient(app)
    sign_in("nurse")
    page.goto(f"/chart/patients/{patient_id}/allergies")
    kind, substance = labelled(page, "Kind of substance"), labelled(page, "Substance")
    kind.select_option(label="Drug class")
    offered = substance.evaluate(SUGGESTIONS)
    assert {"Penicillins", "Sulfonamide antibiotics", "NSAIDs", "Opioids"} <= set(offered)
    assert "amoxicillin" not in offered
    kind.select_option(label="Drug")
    assert "amoxicillin" in substance.evaluate(SUGGESTIONS)
    kind.select_option(label="Food")
    assert substance.evaluate(SUGGESTIONS) == []

    kind.select_option(label="Drug class")
    substance.fill("amoxicillin")
    labelled(page, "Comment").fill("rash as a child")
    watch.expect_http_error(422, f"/chart/patients/{patient_id}/allergies")
    with page.expect_navigation():
        page.get_by_role("button", name="Record allergy").click()
    expect(page.locator("#substance-error")).to_contain_text("Choose a drug class from the list")
    expect(labelled(page, "Substance")).to_have_value("amoxicillin")
    expect(labelled(page, "Comment")).to_have_value("rash as a child")
    # The page came back with "Drug class" chosen: the suggestions are still the classes.
    assert "Penicillins" in labelled(page, "Substance").evaluate(SUGGESTIONS)

    labelled(page, "Substance").fill("Penicillins")
    with page.expect_navigation():
        page.get_by_role("button", name="Record allergy").click()
    table = page.locator("#allergy-list")
    expect(table).to_contain_text("Penicillins")
    expect(table).to_contain_text("class ATC:J01C")
    expect(table).to_contain_text("Drug class")
