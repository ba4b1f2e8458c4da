"""The audit report in Chromium: htmx filters and sorting work under the CSP."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.dates import TOO_LATE_MESSAGE


@pytest.mark.browser
def test_filters_and_sorting_update_the_table_without_a_reload(page, sign_in, watch):
    sign_in("admin", through_the_form=True)  # its sign-in event is filtered below
    page.goto("/admin/audit/")
    marker = page.evaluate("() => (window.fullLoadMarker = Math.random())")
    # Sort by action through the column header (an htmx swap of the table only).
    page.get_by_role("link", name="Action").click()
    page.wait_for_url("**sort=action**")
    assert page.locator("th[aria-sort='ascending']").inner_text().startswith("Action")
    # Then narrow to one action: the sort chosen above is kept.
    page.get_by_label("Action").select_option("auth.sign_in")
    page.wait_for_url("**action=auth.sign_in**")
    assert "sort=action" in page.url
    rows = page.locator("table.audit-table tbody tr")
    assert rows.count() >= 1
    for text in rows.locator("td:nth-child(3)").all_inner_texts():
        assert text == "auth.sign_in"
    assert page.evaluate("() => window.fullLoadMarker") == marker  # never reloaded
    watch.assert_clean(page)


@pytest.mark.browser
def test_a_far_end_date_is_refused_beside_the_field_not_a_server_error(page, sign_in, watch):
    """Finding 4 of issue 14: "To" 9999-12-31 was a 500 (the day after it is no date)."""
    sign_in("admin")
    page.goto("/admin/audit/")
    watch.expect_http_error(422, "/admin/audit/")  # a refused filter is answered 422, as forms are
    with page.expect_response("**/admin/audit/**end=9999-12-31**") as answer:
        page.get_by_label("To").fill("9999-12-31")
        page.get_by_role("button", name="Apply filters").click()
    assert answer.value.status == 422
    expect(page.get_by_role("alert")).to_contain_text(f"To: {TOO_LATE_MESSAGE}")
    expect(page.get_by_label("To")).to_have_value("9999-12-31")  # what was typed is kept
    watch.assert_clean(page)
