"""In Chromium: signing a note ends its autosaving (issue 14, section 4). Clicking "Sign
note" blurs the editor, whose autosave raced the signature: when it arrived second it was
refused (409) without a word."""

from __future__ import annotations

import contextlib
import re
import time

import pytest

from tests.support.chart import provider_note


@pytest.mark.browser
def test_signing_right_after_typing_sends_no_autosave_to_the_signed_note(
    app, chart, make_encounter, make_note, page, sign_in, watch
):
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect

    encounter_id = make_encounter()
    make_note(encounter_id, text="S:")
    note_id = provider_note(app).id
    draft_path = f"/chart/notes/{note_id}/draft"
    sign_in("drlee")
    page.goto(f"/chart/encounters/{encounter_id}")

    # The autosave sent as "Sign note" takes the focus (the editor's blur) reaches a busy
    # server late: after the signature, unless the signature waits for it. What the server
    # answered is read here, as the page may be reloading by then and never see it.
    draft_answers: list[int] = []
    draft_requests: list[str] = []

    def late_autosave(route):
        draft_requests.append(route.request.url)
        time.sleep(1.0)
        answer = route.fetch()
        draft_answers.append(answer.status)
        # The page may have reloaded meanwhile (the signature's answer): nothing to give.
        with contextlib.suppress(PlaywrightError):
            route.fulfill(response=answer)

    page.route(re.compile(rf".*{re.escape(draft_path)}$"), late_autosave)

    editor = page.get_by_label("Provider note text")
    editor.click()
    editor.press("End")
    editor.press_sequentially(" cough, better")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign note").click()
    expect(page.get_by_text("Signed by Jordan Lee at")).to_be_visible()
    # An autosave the page sent before the signature reached the route before the signature
    # was sent; wait until each one held there has had its answer (the handler runs while
    # Playwright waits, so the wait is what lets it finish).
    deadline = time.monotonic() + 30
    while len(draft_answers) < len(draft_requests) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert len(draft_answers) == len(draft_requests), "an autosave was never answered"
    page.unroute_all(behavior="ignoreErrors")

    note = provider_note(app)
    assert note.signed_at is not None
    assert note.text == "S: cough, better"  # the latest text was signed
    assert 409 not in draft_answers, draft_answers
    watch.assert_clean(page)
