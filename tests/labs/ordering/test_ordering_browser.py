"""In Chromium, by keyboard alone: a prescriber opens a visit, orders labs, finds the CMP and
the lipid panel as they type (Tab to the result, Enter adds it), and signs the order; the
visit lists it with its state, and the lab acknowledges it once the worker sends it. Tab
and the arrow keys both reach the results."""

from __future__ import annotations

import re

import pytest

from tests.labs.keyboard import add_by_keyboard, tab_to
from tests.labs.ordering.helpers import deliver


@pytest.mark.browser
def test_order_a_cmp_and_a_lipid_panel_by_keyboard_from_a_visit(
    app, chart, make_encounter, lab, page, sign_in, watch, shot
):
    from playwright.sync_api import expect

    encounter_id = make_encounter()
    sign_in("drlee")
    page.goto(f"/chart/encounters/{encounter_id}")
    tab_to(page, "Order labs", limit=200)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile(r"^Order labs"))).to_be_visible()

    add_by_keyboard(page, "metabolic", "Comprehensive metabolic panel (CMP)")
    add_by_keyboard(page, "lipid", "Lipid panel", arrows=True)
    shot("draft")

    expect(page.get_by_label("Performing lab")).to_have_value("testlab")
    tab_to(page, "Sign order")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_test_id("order-state")).to_contain_text("Signed")
    expect(page.get_by_text("Order signed.")).to_be_visible()
    shot("signed")

    deliver(app)
    page.goto(f"/chart/encounters/{encounter_id}")
    row = page.get_by_role("region", name="Lab orders of this visit").get_by_role("row").nth(1)
    expect(row).to_contain_text("Comprehensive metabolic panel (CMP), Lipid panel")
    expect(row).to_contain_text("Acknowledged by the lab")
    assert len(lab.received) == 1
    watch.assert_clean(page)


@pytest.mark.browser
def test_the_order_page_follows_its_badge_without_a_reload(
    app, chart, signed_in, page, sign_in, watch
):
    """Left open on a signed order, the page's badge flips to Resulted at its next poll and
    the details follow it (See the results appears, Cancel order goes) without a reload;
    the focus stays on the requisition link, which is still there."""
    from playwright.sync_api import expect

    from tests.labs.ordering.helpers import add, set_status, sign, start

    doctor = signed_in("drlee")
    order_id = start(doctor, chart.patients[0])
    add(doctor, order_id, "4548-4")
    assert sign(doctor, order_id).status_code == 303
    sign_in("drlee")
    page.goto(f"/labs/orders/{order_id}")
    expect(page.get_by_test_id("order-state")).to_contain_text("Signed")
    cancel = page.get_by_role("button", name="Cancel order")
    expect(cancel).to_be_visible()
    expect(page.get_by_role("link", name="See the results")).to_have_count(0)
    page.get_by_role("link", name="Requisition (PDF)").focus()
    page.evaluate("window.portalPageKept = true")  # gone if the page were reloaded
    set_status(app, order_id, "resulted")
    # The badge asks every 12 s: its next answer flips it, and the details follow.
    expect(page.get_by_test_id("order-state")).to_contain_text("Resulted", timeout=30_000)
    expect(page.get_by_role("link", name="See the results")).to_be_visible()
    expect(cancel).to_have_count(0)
    expect(page.get_by_role("link", name="Requisition (PDF)")).to_be_focused()
    assert page.evaluate("window.portalPageKept") is True
    watch.assert_clean(page)
