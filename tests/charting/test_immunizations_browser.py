"""In Chromium, from the keyboard alone: mark an immunization entered in error. The question
comes back when the box is not ticked; once it is, the record stays listed, struck out with
its reason. The page fails on any console error or CSP violation (tests/support/browser.py)."""

from __future__ import annotations

from datetime import date

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal.extensions import db
from tests.charting.entered_in_error_checks import mark_entered_in_error_from_the_keyboard
from tests.charting.vitals_helpers import make_patient

pytestmark = pytest.mark.browser


def _given_flu_shot(app, patient_id: int) -> None:
    from portal.actors import Actor
    from portal.auth.models import User
    from portal.charting.immunizations.services import record_immunization

    with app.test_request_context():
        nurse = Actor.for_user(
            db.session.scalars(select(User).filter_by(username="nurse")).one(), "127.0.0.1"
        )
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

    mark_entered_in_error_from_the_keyboard(
        page,
        watch,
        heading="Mark an immunization entered in error",
        thing="immunization",
        reason="Charted on the wrong patient",
    )
    row = table.get_by_role("row").filter(has_text="FLU-321")
    expect(row).to_contain_text("Entered in error")
    expect(row).to_contain_text("Charted on the wrong patient")
    expect(row).to_have_class("text-body-secondary text-decoration-line-through")
    expect(page.get_by_role("link", name="Entered in error…")).to_have_count(0)
