"""In Chromium (issue 14): the diagnosis picker finds "HTN", and a prescriber's starred
diagnosis comes first in the picker, marked, and is picked with Enter. The browser fixtures
fail the test on console errors and CSP violations."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.terminology import icd10
from tests.charting.lists_helpers import make_patient
from tests.support.browser import labelled, typing_answered

pytestmark = pytest.mark.browser


def test_a_starred_diagnosis_comes_first_in_the_picker(app, page, sign_in):
    # The live server runs in this process: build its index now, as a running portal does
    # at its first request, rather than inside the first search's wait.
    icd10.search("warm up")
    patient_id = make_patient(app)
    sign_in("drlee")
    page.goto(f"/chart/patients/{patient_id}/problems")
    search = page.get_by_role("combobox", name="Find a diagnosis")
    options = page.locator("#icd10-results").get_by_role("option")
    with typing_answered(page, r"/icd10$", "HTN"):
        search.press_sequentially("HTN", delay=20)
    expect(options.first).to_contain_text("I10 Essential (primary) hypertension")

    with page.expect_navigation():
        page.get_by_role("link", name="Your favourite diagnoses").click()
    labelled(page, "Words or code").fill("hypertension")
    with page.expect_navigation():
        page.get_by_role("button", name="Search").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Add I15.0 to favourites").click()
    expect(page.get_by_role("alert").or_(page.locator(".alert")).first).to_contain_text(
        "Added to your favourites: I15.0"
    )
    favourites = page.get_by_role("region", name="Your favourite diagnoses")
    expect(favourites).to_contain_text("I15.0 Renovascular hypertension")

    page.goto(f"/chart/patients/{patient_id}/problems")
    # The favourites wait beside the search: one click picks one.
    favourites = page.get_by_role("group", name="Your favourites:")
    favourites.get_by_role("button", name="I15.0 Renovascular hypertension").click()
    expect(labelled(page, "ICD-10-CM code")).to_have_value("I15.0")
    labelled(page, "ICD-10-CM code").fill("")
    search = page.get_by_role("combobox", name="Find a diagnosis")
    search.fill("")
    # The list for all of it: one answered mid-typing is replaced under the Enter key.
    with typing_answered(page, r"/icd10$", "hypertension"):
        search.press_sequentially("hypertension", delay=20)
    expect(options.first).to_contain_text("I15.0")
    expect(options.first).to_contain_text("favourite")
    expect(options.nth(1)).to_contain_text("I10")
    search.press("Enter")
    expect(labelled(page, "ICD-10-CM code")).to_have_value("I15.0")
