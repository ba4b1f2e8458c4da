"""The closed loop of a critical result in Chromium: the prescriber opens the inbox from the
top bar's count, finds the critical result first, opens it (previous values shown), signs it
off with a comment, and the patient's chart no longer carries the critical flag."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.labs.helpers import add_order, add_patient
from tests.labs.results_helpers import file_oru, obx

pytestmark = pytest.mark.browser


def test_a_prescriber_reviews_a_critical_result_from_the_top_bar(app, page, sign_in, zone, shot):
    with app.app_context():
        patient_id, mrn = add_patient("Rosa", "Quintero")
        add_order(patient_id, "P-OLD", tests=(("2823-3", "Potassium"),))
        add_order(patient_id, "P-NEW", tests=(("2823-3", "Potassium"), ("2951-2", "Sodium")))
        file_oru(
            zone,
            mrn=mrn,
            family="Quintero",
            given="Rosa",
            placer="P-OLD",
            filler="F-OLD",
            obr_code="2823-3^Potassium^LN",
            observations=[
                obx(1, "2823-3", "Potassium", "4.4", "mmol/L", "3.5-5.1", "N", when="20240110")
            ],
        )
        file_oru(
            zone,
            mrn=mrn,
            family="Quintero",
            given="Rosa",
            placer="P-NEW",
            filler="F-NEW",
            obr_code="2951-2^Sodium^LN",
            observations=[
                obx(1, "2951-2", "Sodium", "139", "mmol/L", "135-145", "N", when="20240601"),
                obx(2, "2823-3", "Potassium", "6.9", "mmol/L", "3.5-5.1", "HH", when="20240601"),
            ],
        )
    sign_in("drlee")
    count = page.get_by_role("link", name=re.compile(r"^Results"))
    expect(count).to_contain_text("3")
    count.click()
    expect(page.get_by_role("heading", name="Results inbox")).to_be_visible()
    rows = page.get_by_role("table").first.get_by_role("row")
    first = rows.nth(1)  # after the header
    expect(first).to_contain_text("Potassium")
    expect(first).to_contain_text("critical high")
    shot("labs-inbox")
    first.get_by_role("link", name="Potassium").click()
    expect(page.get_by_role("heading", name="Potassium")).to_be_visible()
    banner = page.get_by_role("region", name="Patient")
    expect(banner).to_contain_text("Critical results unreviewed: 1")
    previous = page.get_by_role("region", name="Previous values")
    expect(previous).to_contain_text("4.4 mmol/L")
    page.get_by_label("Comment (optional)").fill("Called the patient; repeat today.")
    page.get_by_role("button", name="Sign off result").click()
    expect(page.get_by_text("Result signed off.")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile(r"^Results"))).to_contain_text("2")
    page.goto(f"/chart/patients/{patient_id}")
    expect(page.get_by_role("heading", name="Chart summary")).to_be_visible()
    expect(page.get_by_role("region", name="Patient")).not_to_contain_text("Critical results")
    expect(page.get_by_role("region", name="Recent results")).to_contain_text("6.9 mmol/L")
    shot("labs-chart-after-sign-off")
