"""The audit report in Chromium: a patient chosen by name, one event per report view, no
htmx errors on "Apply filters", select boxes wide enough for their options."""

from __future__ import annotations

import re

import pytest

from tests.admin.audit_report_helpers import two_patients_opened
from tests.support.audit import audit_events

pytestmark = pytest.mark.browser

# For each select of the filters: the widest option's text and the room the box gives it.
MEASURE_SELECTS = """
() => Array.from(document.querySelectorAll('#audit-filters select')).map((select) => {
  const style = getComputedStyle(select);
  const context = document.createElement('canvas').getContext('2d');
  context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
  const texts = Array.from(select.options).map((option) => option.text);
  const widest = Math.max(...texts.map((text) => context.measureText(text).width));
  const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return {name: select.name, widest, room};
})
"""


def report_views(app) -> int:
    return len(audit_events(app, "audit.report_view"))


def test_choose_a_patient_by_name_then_apply_filters_once(page, sign_in, watch, app, signed_in):
    opened = two_patients_opened(app, signed_in)
    sign_in("admin")
    page.goto("/admin/audit/")
    for select in page.evaluate(MEASURE_SELECTS):
        assert select["widest"] <= select["room"] + 0.5, f"{select['name']} cuts its labels"
    views = report_views(app)
    page.get_by_label("Patient (name or MRN)").fill("Lovelace")
    page.get_by_role("link", name=re.compile(rf"^Lovelace, Ada · MRN {opened.ada_mrn}")).click()
    page.wait_for_url(f"**patient={opened.ada}**")
    assert "Lovelace" not in page.url and opened.ada_mrn not in page.url
    chosen = page.locator("#audit-patient-chosen")
    assert "Lovelace, Ada" in chosen.inner_text() and opened.ada_mrn in chosen.inner_text()
    assert page.locator("#audit-patient-options").inner_text() == ""
    patients = page.locator("table.audit-table tbody tr td:nth-child(4)").all_inner_texts()
    assert patients and all(text.startswith("Lovelace, Ada") for text in patients)
    assert report_views(app) == views + 1
    # Type a user, then click "Apply filters": one request, one event, no aborted request.
    page.get_by_label("User (username)").fill("nurse")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**user=nurse**")
    assert f"patient={opened.ada}" in page.url  # the chosen patient is kept
    page.wait_for_load_state("networkidle")
    assert report_views(app) == views + 2
    rows = page.locator("table.audit-table tbody tr")
    assert rows.count() == 1 and "patient.view" in rows.first.inner_text()
    watch.assert_clean(page)
