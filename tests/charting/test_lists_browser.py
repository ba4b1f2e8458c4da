"""In Chromium: add a problem by ICD-10-CM search (words typed, picked with the keyboard), and
record an allergy and see it in the banner. The browser fixtures (tests/support/browser.py, through
tests/charting/conftest.py) fail a test on console errors and CSP violations."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.terminology import icd10
from tests.charting.lists_helpers import make_patient
from tests.support.browser import labelled, typing_answered

pytestmark = pytest.mark.browser


def test_add_a_problem_by_icd10_search_with_the_keyboard(app, page, sign_in):
    # The live server runs in this process: build its ICD-10 index now, as a running portal
    # does at its first request, rather than inside the first search's 5-second wait.
    icd10.search("warm up")
    patient_id = make_patient(app)
    sign_in("drlee")
    page.goto(f"/chart/patients/{patient_id}/problems")
    search = page.get_by_role("combobox", name="Find a diagnosis")
    # The list for all of it: one answered mid-typing is replaced under the arrow keys.
    with typing_answered(page, r"/icd10$", "type 2 diabetes"):
        search.press_sequentially("type 2 diabetes", delay=20)
    options = page.locator("#icd10-results").get_by_role("option")
    expect(options.first).to_be_visible()
    expect(options.filter(has_text="E11.9 ")).to_be_visible()
    labels = [text.strip() for text in options.all_inner_texts()]
    target = next(i for i, text in enumerate(labels) if text.startswith("E11.9 "))
    for _ in range(target + 1):
        search.press("ArrowDown")
    expect(options.nth(target)).to_have_attribute("aria-selected", "true")
    search.press("Enter")
    expect(labelled(page, "ICD-10-CM code")).to_have_value("E11.9")
    expect(options).to_have_count(0)
    labelled(page, "Onset date").fill("2018-04-02")
    with page.expect_navigation():
        page.get_by_role("button", name="Add problem").click()
    table = page.locator("#problem-list")
    expect(table).to_contain_text("Type 2 diabetes mellitus without complications")
    expect(table).to_contain_text("E11.9")


def test_a_non_billable_code_is_refused_beside_the_field(app, page, sign_in, watch):
    patient_id = make_patient(app)
    watch.expect_http_error(422, f"/chart/patients/{patient_id}/problems")
    sign_in("nurse")
    page.goto(f"/chart/patients/{patient_id}/problems")
    labelled(page, "ICD-10-CM code").fill("E11")
    labelled(page, "Comment").fill("typed before the mistake")
    page.get_by_role("button", name="Add problem").click()
    expect(page.locator("#icd10_code-error")).to_contain_text("Not a billable ICD-10-CM code")
    expect(labelled(page, "Comment")).to_have_value("typed before the mistake")


def test_record_an_allergy_and_see_it_in_the_banner(app, page, sign_in):
    patient_id = make_patient(app)
    sign_in("nurse")
    page.goto(f"/chart/patients/{patient_id}/allergies")
    banner = page.locator("#banner-allergies")
    expect(banner).to_contain_text("Allergies: not recorded")
    labelled(page, "Kind of substance").select_option(label="Drug")
    labelled(page, "Substance").fill("penicillin G")
    page.get_by_label("Hives").check()
    page.get_by_label("Anaphylaxis").check()
    labelled(page, "Severity").select_option(label="Severe")
    with page.expect_navigation():
        page.get_by_role("button", name="Record allergy").click()
    expect(banner).to_contain_text("penicillin G")
    expect(banner).to_contain_text("severe")
    expect(page.locator("#allergy-list")).to_contain_text("RxNorm 7980")
    # Every patient page carries it, the demographics page too.
    page.goto(f"/patients/{patient_id}")
    expect(page.locator("#banner-allergies")).to_contain_text("penicillin G")
