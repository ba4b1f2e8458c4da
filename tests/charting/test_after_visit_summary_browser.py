"""In Chromium: the after-visit summary printed from the encounter page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.charting.after_visit_helpers import make_visit, pdf_pages

pytestmark = pytest.mark.browser


def test_printed_from_the_encounter_page(page, sign_in, watch, app):
    visit = make_visit(app)
    sign_in("nurse")
    page.goto(f"/chart/encounters/{visit.encounter_id}")
    page.get_by_role("link", name="After-visit summary for the patient").click()
    page.wait_for_url(re.compile(r".*/after-visit-summary$"))
    summary = page.get_by_role("article", name="After-visit summary for Ada Lovelace")
    diagnoses = summary.get_by_role("region", name="Your diagnoses").inner_text()
    assert "High blood pressure" in diagnoses
    medications = summary.get_by_role("region", name="Your medications").inner_text()
    assert "Changed: Lisinopril" in medications and "Stop taking:" in medications
    assert "parking" not in summary.inner_text()
    expect(page.get_by_role("button", name="Print")).to_be_visible()
    href = page.get_by_role("link", name="Download PDF").get_attribute("href")
    response = page.request.get(href)
    assert response.ok and response.headers["content-type"] == "application/pdf"
    assert len(pdf_pages(response.body())) == 1
    watch.assert_clean(page)
