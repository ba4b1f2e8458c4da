"""In Chromium: record vitals in °F and lb, see them listed and charted; confirm an unusual
value; mark a set entered in error from the keyboard. The page fails on any console error or
CSP violation (fixtures: tests/support/browser.py)."""

from __future__ import annotations

from datetime import date

import pytest
from playwright.sync_api import expect

from tests.charting.entered_in_error_checks import mark_entered_in_error_from_the_keyboard
from tests.charting.vitals_helpers import make_patient

pytestmark = pytest.mark.browser


def test_record_vitals_in_fahrenheit_and_pounds_and_see_them_charted(app, page, sign_in):
    patient_id = make_patient(app, date(1975, 8, 9), given="Chartie")
    sign_in("nurse")
    page.goto(f"/chart/patients/{patient_id}/vitals")
    expect(page.get_by_text("No vital signs recorded yet.")).to_be_visible()
    page.get_by_label("Systolic", exact=True).fill("132")
    page.get_by_label("Diastolic", exact=True).fill("84")
    page.get_by_label("Position").select_option("Sitting")
    page.get_by_label("Temperature", exact=True).fill("98.6")
    page.get_by_label("Weight", exact=True).fill("180")
    page.get_by_label("Height", exact=True).fill("70")
    with page.expect_navigation():
        page.get_by_role("button", name="Record vital signs").click()
    expect(page.get_by_text("Vital signs recorded.")).to_be_visible()
    table = page.get_by_role("table", name="Recorded vital signs, newest first")
    expect(table).to_contain_text("132/84 mmHg")
    expect(table).to_contain_text("Systolic high")
    expect(table).to_contain_text("98.6 °F")
    expect(table).to_contain_text("180.0 lb")
    expect(table).to_contain_text("25.8 kg/m²")

    chart = page.get_by_role("img", name="Weight over time")
    expect(chart).to_be_visible()
    assert chart.evaluate("img => img.complete && img.naturalWidth > 0")
    svg = page.request.get(chart.get_attribute("src")).text()
    assert "180.0" in svg and "Weight (lb)" in svg
    bp_chart = page.get_by_role("img", name="Blood pressure over time")
    assert bp_chart.evaluate("img => img.complete && img.naturalWidth > 0")


def test_an_unusual_value_is_saved_after_confirming_it(app, page, sign_in, watch):
    patient_id = make_patient(app, date(1975, 8, 9), given="Quick")
    watch.expect_http_error(422, f"/chart/patients/{patient_id}/vitals")
    sign_in("nurse")
    page.goto(f"/chart/patients/{patient_id}/vitals")
    page.get_by_label("Heart rate", exact=True).fill("230")
    with page.expect_navigation():
        page.get_by_role("button", name="Record vital signs").click()
    expect(page.get_by_text("Heart rate is unusual")).to_be_visible()
    expect(page.get_by_label("Heart rate", exact=True)).to_have_value("230")
    page.get_by_label("These values are correct").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Record vital signs").click()
    expect(page.get_by_role("table", name="Recorded vital signs, newest first")).to_contain_text(
        "230 /min"
    )


def test_marking_a_set_entered_in_error_asks_first_and_works_from_the_keyboard(
    app, page, sign_in, watch
):
    patient_id = make_patient(app, date(1975, 8, 9), given="Keys")
    sign_in("nurse")
    page.goto(f"/chart/patients/{patient_id}/vitals")
    page.get_by_label("Heart rate", exact=True).fill("64")
    with page.expect_navigation():
        page.get_by_role("button", name="Record vital signs").click()
    table = page.get_by_role("table", name="Recorded vital signs, newest first")

    mark_entered_in_error_from_the_keyboard(
        page,
        watch,
        heading="Mark a set of vital signs entered in error",
        thing="set",
        reason="Taken on the wrong patient",
    )
    expect(table).to_contain_text("Entered in error")
    expect(table).to_contain_text("Taken on the wrong patient")
    expect(page.get_by_role("link", name="Entered in error…")).to_have_count(0)
