"""The results inbox past 50 and an analyte's time window in Chromium, by keyboard: "Show more
results" appends the next rows inside the sign-off form (the normal results already chosen
stay chosen; the first new row takes the focus) and the chosen ones from both pages are
signed off together; the trend's window links move the chart and the rows to their period."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.labs.helpers import add_order, add_patient
from tests.labs.results_helpers import file_a1c, file_glucose

pytestmark = pytest.mark.browser


def test_show_more_keeps_the_chosen_results_and_signs_off_both_pages(
    app, page, sign_in, zone, shot
):
    with app.app_context():
        patient_id, mrn = add_patient()
        add_order(patient_id, "P-1", tests=(("2345-7", "Glucose"),))
        # Glucose 1-70 normal, 71-73 abnormal, 74-75 critical: the first page holds the
        # critical and abnormal ones and the normal ones 1 to 45.
        values = [("90", "N")] * 70 + [("140", "H")] * 3 + [("30", "LL")] * 2
        file_glucose(zone, mrn, "P-1", values, "20240102080000")
    sign_in("drlee")
    page.goto("/labs/inbox")
    table = page.get_by_role("table", name="Waiting for review")
    expect(table.get_by_role("row")).to_have_count(1 + 50 + 1)  # header, a page, "Show more"
    expect(table.get_by_role("row").nth(1)).to_contain_text("Glucose 74")
    page.get_by_label("Choose Glucose 1 of Doe, Jane").check()
    expect(page.get_by_label("Glucose 46")).to_have_count(0)
    more = page.get_by_role("link", name="Show more results")
    more.focus()
    page.keyboard.press("Enter")
    # The next rows in place of the link, the first of them focused: Tab carries on there.
    expect(page.get_by_role("link", name="Glucose 46", exact=True)).to_be_focused()
    expect(table.get_by_role("row")).to_have_count(1 + 75)
    expect(page.get_by_role("link", name="Show more results")).to_have_count(0)
    expect(page.get_by_label("Choose Glucose 1 of Doe, Jane")).to_be_checked()
    page.keyboard.press("Shift+Tab")  # back to its row's checkbox
    expect(page.get_by_label("Choose Glucose 46 of Doe, Jane")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.get_by_label("Choose Glucose 46 of Doe, Jane")).to_be_checked()
    shot("labs-inbox-show-more")
    page.get_by_role("button", name="Sign off chosen normal results").click()
    expect(page.get_by_text("Signed off 2 results.")).to_be_visible()
    expect(page.get_by_text("73 waiting for review")).to_be_visible()


def test_the_trend_window_by_keyboard(app, page, sign_in, zone, shot):
    with app.app_context():
        patient_id, mrn = add_patient()
        file_a1c(zone, mrn, [20, 60, 200, 1000, 3000])
    sign_in("nurse")
    page.goto(f"/labs/patients/{patient_id}/results/analyte?code=4548-4")
    windows = page.get_by_role("navigation", name="Time window")
    expect(windows.get_by_role("link", name="Last 1 year")).to_have_attribute(
        "aria-current", "page"
    )
    results = page.get_by_role("table", name="Results of Hemoglobin A1c")
    expect(results.get_by_role("row")).to_have_count(1 + 3)
    expect(
        page.get_by_role("img", name=re.compile("over the last 1 year: 3 values"))
    ).to_be_visible()
    windows.get_by_role("link", name="Last 1 year").focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(windows.get_by_role("link", name="All")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"window=all"))
    expect(windows.get_by_role("link", name="All")).to_have_attribute("aria-current", "page")
    expect(results.get_by_role("row")).to_have_count(1 + 5)
    chart = page.get_by_role("img", name=re.compile("all results: 5 values"))
    expect(chart).to_be_visible()
    expect(chart).to_have_js_property("complete", True)
    assert chart.evaluate("image => image.naturalWidth") > 0  # the SVG was served and drawn
    shot("labs-trend-window-all")
    windows.get_by_role("link", name="Last 3 months").click()
    expect(results.get_by_role("row")).to_have_count(1 + 2)
    expect(page.get_by_text("3 earlier results before this window.")).to_be_visible()
