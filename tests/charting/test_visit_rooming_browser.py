"""In Chromium, the visit between rooming and the provider (issue 14, section 4): the nurse
records vitals on the patient's page and opens the visit for her intake note, the card stays
"Roomed"; the prescriber's start moves it to "With provider", and the visit shows the
vitals taken at rooming."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


def _open_visit_from_the_board(page, chart, column: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"/schedule/flow-board?location_id={chart.main_street}")
    card = page.locator(f"#flow-column-{column}").get_by_text("Lovelace, Ada")
    expect(card).to_be_visible()
    card.click()
    with page.expect_navigation():
        page.get_by_role("button", name="Start visit").click()
    expect(page.get_by_role("heading", level=1, name=re.compile("^Office visit"))).to_be_visible()


def test_vitals_taken_at_rooming_show_on_the_visit_and_only_the_provider_moves_the_card(
    app, chart, make_appointment, page, sign_in, watch
):
    from playwright.sync_api import expect

    make_appointment(status="roomed", reason="Headaches")
    sign_in("nurse")
    page.goto(f"/chart/patients/{chart.patients[0]}/vitals")
    page.get_by_label("Systolic", exact=True).fill("131")
    page.get_by_label("Diastolic", exact=True).fill("84")
    page.get_by_label("Heart rate", exact=True).fill("77")
    with page.expect_navigation():
        page.get_by_role("button", name="Record vital signs").click()
    expect(page.get_by_text("Vital signs recorded.")).to_be_visible()

    # The nurse opens the visit for her intake note: the vitals are the visit's.
    _open_visit_from_the_board(page, chart, "roomed")
    taken = page.get_by_role("table", name="Vital signs taken at this visit")
    expect(taken).to_contain_text("131/84 mmHg")
    expect(page.get_by_text("No vital signs recorded at this visit")).to_have_count(0)
    # ... and the board still shows the patient waiting for the provider.
    page.goto(f"/schedule/flow-board?location_id={chart.main_street}")
    expect(page.locator("#flow-column-roomed").get_by_text("Lovelace, Ada")).to_be_visible()
    expect(page.locator("#flow-column-with_provider").get_by_text("Lovelace, Ada")).to_have_count(0)

    sign_in("drlee")
    _open_visit_from_the_board(page, chart, "roomed")
    expect(page.get_by_role("table", name="Vital signs taken at this visit")).to_contain_text(
        "131/84 mmHg"
    )
    page.goto(f"/schedule/flow-board?location_id={chart.main_street}")
    expect(page.locator("#flow-column-with_provider").get_by_text("Lovelace, Ada")).to_be_visible()
    watch.assert_clean(page)
