"""In Chromium, from the keyboard alone: mark an immunization entered in error. The question
comes back when the box is not ticked; once it is, the record stays listed, struck out with
its reason. The page fails on any console error or CSP violation (tests/browser.py)."""

from __future__ import annotations

from datetime import date

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal.extensions import db
from tests.charting.vitals_helpers import make_patient

pytestmark = pytest.mark.browser


def _given_flu_shot(app, patient_id: int) -> None:
    from portal.auth.models import User
    from portal.charting.immunizations import record_immunization

    with app.test_request_context():
        nurse = db.session.scalars(select(User).filter_by(username="nurse")).one()
        record_immunization(
            nurse,
            patient_id,
            cvx_code="141",
            occurred_on=date(2025, 10, 1),
            lot_number="FLU-321",
            site="Left deltoid",
            route="IM",
        )


def test_marking_an_immunization_entered_in_error_from_the_keyboard(app, page, sign_in, watch):
    patient_id = make_patient(app, date(1975, 8, 9), given="Keys")
    _given_flu_shot(app, patient_id)
    sign_in("nurse")
    page.goto(f"/chart/patients/{patient_id}/immunizations")
    table = page.get_by_role("table", name="Immunizations and refusals, newest first")
    expect(table).to_contain_text("FLU-321")

    page.get_by_role("link", name="Entered in error…").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    heading = page.get_by_role("heading", name="Mark an immunization entered in error")
    expect(heading).to_be_visible()
    watch.expect_http_error(422, page.url.replace(page.url.split("/chart/")[0], ""))
    reason = page.get_by_label("Why was this immunization entered in error?")
    reason.focus()
    page.keyboard.type("Charted on the wrong patient")
    with page.expect_navigation():
        page.keyboard.press("Enter")  # submits without the box ticked
    expect(page.get_by_text("Nothing was changed")).to_be_visible()
    expect(page.get_by_text("Tick the box to confirm.", exact=True)).to_be_visible()
    expect(reason).to_have_value("Charted on the wrong patient")

    reason.focus()
    page.keyboard.press("Tab")
    expect(page.get_by_label("I confirm this immunization was entered in error")).to_be_focused()
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Mark as entered in error")).to_be_focused()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_text("Marked as entered in error.")).to_be_visible()
    row = table.get_by_role("row").filter(has_text="FLU-321")
    expect(row).to_contain_text("Entered in error")
    expect(row).to_contain_text("Charted on the wrong patient")
    expect(row).to_have_class("text-body-secondary text-decoration-line-through")
    expect(page.get_by_role("link", name="Entered in error…")).to_have_count(0)
