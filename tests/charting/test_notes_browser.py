"""In Chromium: start a visit from the flow board, write the note with a snippet (autosaved),
sign it, fail to edit it, add an addendum; and two editors of one draft lose nothing."""

from __future__ import annotations

import re

import pytest

from portal.extensions import db
from tests.support.browser import post_from_page, typing_answered
from tests.support.chart import add_snippet, provider_note

ROS = "ROS: no fever, no chest pain, no shortness of breath."


@pytest.mark.browser
def test_start_visit_write_with_a_snippet_sign_and_add_an_addendum(
    app, chart, make_appointment, page, sign_in, watch
):
    from playwright.sync_api import expect

    make_appointment(status="arrived", reason="Cough for two weeks")
    add_snippet(app, chart.drlee, ".ros", ROS)
    sign_in("drlee")

    page.goto(f"/schedule/flow-board?location_id={chart.main_street}")
    page.locator("#flow-column-arrived").get_by_text("Lovelace, Ada").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Start visit").click()
    expect(page.get_by_role("heading", name=re.compile("Office visit"))).to_be_visible()
    expect(page.get_by_text("Cough for two weeks")).to_be_visible()

    with page.expect_navigation():
        page.get_by_role("button", name="Start provider note").click()
    editor = page.get_by_label("Provider note text")
    editor.click()
    editor.press_sequentially("S: cough, worse at night. .ros ")
    expect(editor).to_have_value(f"S: cough, worse at night. {ROS} ")
    # The autosave of all of it: one sent in a pause mid-typing also says "Saved at".
    with typing_answered(page, r"/draft$", f"S: cough, worse at night. {ROS} P: fluids"):
        editor.press_sequentially("P: fluids")
    expect(
        page.get_by_role("status").filter(has_text=re.compile(r"Saved at \d\d:\d\d"))
    ).to_be_visible()
    page.wait_for_function("() => document.querySelector('[id$=-version]').value !== '1'")
    assert provider_note(app).text == f"S: cough, worse at night. {ROS} P: fluids"

    # Clicking "Sign note" blurs the editor: the signature waits for that autosave, and no
    # autosave is sent after it (none is refused: no 409 is forgiven here).
    with page.expect_navigation():
        page.get_by_role("button", name="Sign note").click()
    expect(page.get_by_text("Signed by Jordan Lee at")).to_be_visible()
    expect(page.get_by_label("Provider note text")).to_have_count(0)
    note = provider_note(app)
    assert note.signed_at is not None
    # Trying anyway (as a stale tab's autosave would) is refused and changes nothing.
    path = f"/chart/notes/{note.id}/draft"
    watch.expect_http_error(409, path)
    assert post_from_page(page, path, {"text": "rewritten", "version": "2"}) == 409
    assert provider_note(app).text == note.text

    page.get_by_label("Addendum").fill("Chest X-ray ordered after review.")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign and add addendum").click()
    expect(page.get_by_text("Chest X-ray ordered after review.")).to_be_visible()
    expect(page.get_by_text("Addendum signed by Jordan Lee at")).to_be_visible()
    watch.assert_clean(page)


@pytest.mark.browser
def test_two_editors_of_one_draft_see_both_texts(
    app, chart, make_encounter, make_note, browser, live_server, page, sign_in, watch
):
    from playwright.sync_api import expect

    from tests.support.database import PASSWORD

    encounter_id = make_encounter()
    make_note(encounter_id, text="S:")
    sign_in("drlee")
    page.goto(f"/chart/encounters/{encounter_id}")

    other_context = browser.new_context(base_url=live_server)
    other = other_context.new_page()
    other.goto("/auth/sign-in")
    other.get_by_label("Username").fill("nurse")
    other.get_by_label("Password").fill(PASSWORD)
    with other.expect_navigation():
        other.get_by_role("button", name="Sign in").click()
    other.goto(f"/chart/encounters/{encounter_id}")
    other_editor = other.get_by_label("Provider note text")
    other_editor.click()
    other_editor.press("End")
    # Its save of all of it (one sent in a pause mid-typing also says "Saved at"), answered
    # before the tab closes.
    with typing_answered(other, r"/draft$", "S: nurse was here"):
        other_editor.press_sequentially(" nurse was here")
        other_editor.blur()
    expect(other.get_by_text(re.compile(r"Saved at \d\d:\d\d"))).to_be_visible()
    other_context.close()

    path = f"/chart/notes/{provider_note(app).id}/draft"
    watch.expect_http_error(409, path)
    editor = page.get_by_label("Provider note text")
    editor.click()
    editor.press("End")
    editor.press_sequentially(" doctor typing")
    editor.blur()
    expect(page.get_by_text("Someone else saved this note while you were typing")).to_be_visible()
    expect(page.get_by_label("Their version (saved)")).to_have_value("S: nurse was here")
    expect(page.get_by_label("Your version (not saved)")).to_have_value("S: doctor typing")
    page.get_by_role("button", name="Merge by hand: put both in the editor").click()
    expect(editor).to_have_value(re.compile(r"^S: nurse was here\n\n.*\nS: doctor typing$"))
    expect(page.get_by_text(re.compile(r"Saved at \d\d:\d\d"))).to_be_visible()
    page.wait_for_function("() => document.querySelector('[id$=-version]').value === '3'")
    assert "S: nurse was here" in provider_note(app).text
    assert "S: doctor typing" in provider_note(app).text


@pytest.mark.browser
def test_an_autosave_after_an_idle_time_out_is_sent_again_after_sign_in(
    app, chart, make_encounter, make_note, page, watch
):
    from datetime import timedelta

    from playwright.sync_api import expect

    from tests.auth.helpers import age_session
    from tests.support.database import PASSWORD

    encounter_id = make_encounter()
    note_id = make_note(encounter_id, kind="nursing", author="nurse", text="Intake:")
    page.goto("/auth/sign-in")
    page.get_by_label("Username").fill("nurse")
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    page.goto(f"/chart/encounters/{encounter_id}")
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "portal_session")
    age_session(app, token, last_seen_at=timedelta(minutes=20))  # the nurse was away

    watch.expect_http_error(401, f"/chart/notes/{note_id}/draft")
    editor = page.get_by_label("Nursing note text")
    editor.click()
    editor.press("End")
    editor.press_sequentially(" BP 120/80 sitting")
    page.wait_for_url("**/auth/sign-in")
    expect(page.get_by_text("Your session timed out")).to_be_visible()
    page.get_by_label("Username").fill("nurse")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/auth/resume")
    with page.expect_navigation():
        page.get_by_role("button", name="Send the saved form").click()
    expect(page.get_by_label("Nursing note text")).to_have_value("Intake: BP 120/80 sitting")
    expect(page.locator(f"#note-{note_id}-status")).to_have_text(re.compile(r"Saved at \d\d:\d\d"))
    from portal.charting.models import Note

    with app.app_context():
        assert db.session.get(Note, note_id).text == "Intake: BP 120/80 sitting"


@pytest.mark.browser
def test_an_autosave_the_server_refuses_says_not_saved_and_keeps_the_text(
    app, chart, make_encounter, make_note, page, sign_in, watch
):
    """Signed out in another tab, the editor's next autosave is refused (the session is
    gone). The status must not go on saying "Saved at ..." about an older text."""
    from playwright.sync_api import expect

    encounter_id = make_encounter()
    note_id = make_note(encounter_id, text="S:")
    sign_in("drlee")
    page.goto(f"/chart/encounters/{encounter_id}")
    editor = page.get_by_label("Provider note text")
    editor.click()
    editor.press("End")
    with typing_answered(page, r"/draft$", "S: cough"):
        editor.press_sequentially(" cough")
    expect(page.get_by_role("status").filter(has_text=re.compile(r"Saved at"))).to_be_visible()

    other_tab = page.context.new_page()
    other_tab.goto("/")
    with other_tab.expect_navigation():
        other_tab.get_by_role("button", name="Sign out").click()
    other_tab.close()

    watch.expect_http_error(400, f"/chart/notes/{note_id}/draft")
    editor.press_sequentially(" for three weeks")
    alert = page.get_by_role("alert").filter(has_text="Not saved")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("the server refused it (400)")
    expect(alert).to_contain_text("Your text is still here")
    expect(page.get_by_text(re.compile(r"Saved at \d\d:\d\d"))).to_have_count(0)
    expect(editor).to_have_value("S: cough for three weeks")
    assert provider_note(app).text == "S: cough"
    watch.assert_clean(page)


@pytest.mark.browser
def test_a_signature_the_server_refuses_says_not_signed(
    app, chart, make_encounter, make_note, page, sign_in, watch
):
    """Signed out in another tab, "Sign note" is refused (400): the page must say the note
    is not signed rather than stay silent."""
    from playwright.sync_api import expect

    encounter_id = make_encounter()
    note_id = make_note(encounter_id, text="S: cough")
    sign_in("drlee")
    page.goto(f"/chart/encounters/{encounter_id}")
    other_tab = page.context.new_page()
    other_tab.goto("/")
    with other_tab.expect_navigation():
        other_tab.get_by_role("button", name="Sign out").click()
    other_tab.close()

    watch.expect_http_error(400, f"/chart/notes/{note_id}/sign")
    page.get_by_role("button", name="Sign note").click()
    alert = page.get_by_role("alert").filter(has_text="Not signed")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("the server refused it (400)")
    expect(alert).to_contain_text("The note is still a draft.")
    assert provider_note(app).signed_at is None
    watch.assert_clean(page)
