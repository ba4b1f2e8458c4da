"""Checks shared by the "entered in error" tests of vital signs and immunizations: both use
one confirmation form (charting/_entered_in_error_form.html), so a user meets the same
questions, messages and keyboard order on either page."""

from __future__ import annotations

import re


def assert_asked_again(response, sent: dict, messages: list[str]) -> None:
    """The confirmation page came back, 422, saying nothing was changed, with each of
    ``messages`` beside its field and the reason that was typed (a short one) kept."""
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Nothing was changed" in page
    shown = " ".join(re.findall(r'id="(?:reason|confirm)-error">([^<]*)<', page))
    for message in messages:
        assert message in shown
    if sent.get("reason", "").strip() and len(sent["reason"]) < 100:
        assert f'value="{sent["reason"]}"' in page  # what was typed is kept


def mark_entered_in_error_from_the_keyboard(page, watch, *, heading: str, thing: str, reason: str):
    """From a page that lists the row, keyboard only: open its "Entered in error…" link, type
    the reason and send it without ticking the box (the page asks again, 422, reason kept),
    then tick the box and send; ends on the page the row went back to."""
    from playwright.sync_api import expect

    page.get_by_role("link", name="Entered in error…").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    watch.expect_http_error(422, page.url.replace(page.url.split("/chart/")[0], ""))
    reason_field = page.get_by_label(f"Why was this {thing} entered in error?")
    reason_field.focus()
    page.keyboard.type(reason)
    with page.expect_navigation():
        page.keyboard.press("Enter")  # submits without the box ticked
    expect(page.get_by_text("Nothing was changed")).to_be_visible()
    expect(page.get_by_text("Tick the box to confirm.", exact=True)).to_be_visible()
    expect(reason_field).to_have_value(reason)

    reason_field.focus()
    page.keyboard.press("Tab")
    expect(page.get_by_label(f"I confirm this {thing} was entered in error")).to_be_focused()
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Mark as entered in error")).to_be_focused()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_text("Marked as entered in error.")).to_be_visible()
