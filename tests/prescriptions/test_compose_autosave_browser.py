"""In Chromium: what the prescriber types just before a click is never lost. The draft is
saved as it is typed (600 ms after the last key, or when a field is left); a click that
leaves the page or changes the draft ("Review and sign", a preferred pharmacy, a favourite)
comes right after the last keys, with a save still waiting or under way. The click waits for
that save and sends what is on the page first, then goes on."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from portal.extensions import db
from portal.prescriptions.models import PatientPharmacy, Prescription
from tests.integrations.dosespot.helpers import SandboxServer
from tests.prescriptions.compose_helpers import DRAFT_URL, draft_row, no_known_allergies
from tests.prescriptions.dosespot_support import enable_dosespot

NOTE = "Please label in Spanish; the patient will pick up after 5 pm on Friday."
SAVE = re.compile(r"/prescriptions/\d+/draft$")


def type_while_a_save_is_under_way(page, first: str, then: str) -> None:
    """Type ``first``, and as soon as its autosave leaves (600 ms later), ``then``: a save
    is under way while the rest is typed, so the click that follows finds one in flight and
    one more waiting behind it."""
    with page.expect_request(SAVE):
        page.keyboard.type(first)
    page.keyboard.type(then)


def open_a_lisinopril_draft(page, patient_id: int) -> int:
    from playwright.sync_api import expect

    page.goto(f"/patients/{patient_id}/prescriptions")
    with page.expect_navigation():
        page.get_by_role("button", name="Prescribe", exact=True).click()
    with page.expect_response(re.compile(r"/prescriptions/\d+/drugs$")):
        page.get_by_label("Find a drug").type("lisinopril 10")
    found = page.get_by_role("list", name="Drugs found")
    with page.expect_navigation():
        found.get_by_role("button", name=re.compile(r"^lisinopril 10 MG Oral Tablet")).click()
    expect(page.get_by_test_id("chosen-drug")).to_contain_text("lisinopril 10 MG Oral Tablet")
    return int(DRAFT_URL.search(page.url.split("#")[0]).group(1))


@pytest.mark.browser
def test_typing_then_review_and_sign_at_once_signs_what_was_typed(app, chart, page, sign_in, watch):
    from playwright.sync_api import expect

    patient_id = chart.patients[0]
    no_known_allergies(app, patient_id)
    sign_in("drlee")
    draft_id = open_a_lisinopril_draft(page, patient_id)

    page.get_by_label("Note to the pharmacist").click()
    page.keyboard.type(NOTE)  # and at once, no pause: the autosave's delay has not run out
    with page.expect_navigation(url=re.compile(r"/prescriptions/\d+/sign$")):
        page.get_by_role("link", name="Review and sign").click()
    dialog = page.get_by_role("region", name="Sign prescription")
    expect(dialog).to_contain_text(NOTE)
    assert draft_row(app, draft_id).pharmacist_note == NOTE
    watch.assert_clean(page)


@pytest.mark.browser
def test_typing_then_choosing_a_preferred_pharmacy_at_once_keeps_what_was_typed(
    app, chart, page, sign_in, watch
):
    from playwright.sync_api import expect

    sandbox = enable_dosespot(app, SandboxServer())
    try:
        patient_id = chart.patients[0]
        no_known_allergies(app, patient_id)
        with app.app_context():
            db.session.add(
                PatientPharmacy(
                    patient_id=patient_id,
                    connector="dosespot",
                    pharmacy_id="3002",
                    name="Sandbox Pharmacy Elm Avenue",
                )
            )
            db.session.commit()
        sign_in("drlee")
        draft_id = open_a_lisinopril_draft(page, patient_id)

        # The note, and the pharmacy clicked while the note is being saved.
        page.get_by_label("Note to the pharmacist").click()
        type_while_a_save_is_under_way(page, NOTE[:20], NOTE[20:])
        with page.expect_navigation():
            page.get_by_role("button", name="Use Sandbox Pharmacy Elm Avenue").click()
        expect(page.get_by_test_id("chosen-pharmacy")).to_have_text("Sandbox Pharmacy Elm Avenue")
        expect(page.get_by_label("Note to the pharmacist")).to_have_value(NOTE)
        expect(page.get_by_role("alert")).to_have_count(0)  # no "changed in another tab"
        row = draft_row(app, draft_id)
        assert row.pharmacist_note == NOTE and row.pharmacy_id == "3002"
        watch.assert_clean(page)
    finally:
        sandbox.stop()


@pytest.mark.browser
def test_typing_then_saving_a_favourite_at_once_saves_what_was_typed(
    app, chart, page, sign_in, watch
):
    from playwright.sync_api import expect

    patient_id = chart.patients[0]
    no_known_allergies(app, patient_id)
    sign_in("drlee")
    open_a_lisinopril_draft(page, patient_id)

    page.get_by_label("Name of the favourite").fill("Lisinopril daily")
    page.get_by_label("Write the directions out instead").check()
    page.get_by_label("Directions (written out)").click()
    type_while_a_save_is_under_way(page, "Take 1 tablet", " by mouth once daily")
    with page.expect_response(re.compile(r"/prescriptions/\d+/favorites$")):
        page.get_by_role("button", name="Save as favourite").click()
    favourites = page.get_by_role("region", name="Your favourites")
    expect(favourites).to_contain_text("Take 1 tablet by mouth once daily")
    watch.assert_clean(page)


@pytest.mark.browser
def test_removing_a_preferred_pharmacy_by_keyboard_asks_first(app, chart, page, sign_in, watch):
    """ "Remove…" opens a question in place (Enter), Escape closes it with nothing done, and
    its button removes the pharmacy from the portal's list, saying the vendor keeps it."""
    from playwright.sync_api import expect

    sandbox = enable_dosespot(app, SandboxServer())
    try:
        patient_id = chart.patients[0]
        with app.app_context():
            db.session.add(
                PatientPharmacy(
                    patient_id=patient_id,
                    connector="dosespot",
                    pharmacy_id="3002",
                    name="Sandbox Pharmacy Elm Avenue",
                    is_primary=True,
                )
            )
            db.session.commit()
        sign_in("drlee")
        page.goto(f"/patients/{patient_id}/prescriptions")
        with page.expect_navigation():
            page.get_by_role("button", name="Prescribe", exact=True).click()
        preferred = page.get_by_role("list", name="Preferred pharmacies")
        expect(preferred).to_contain_text("Sandbox Pharmacy Elm Avenue")
        expect(page.locator("#preferred-pharmacies-help")).to_contain_text("this list only")

        opener = page.locator("summary", has_text="Remove…")
        question = page.get_by_text(re.compile(r"^Remove Sandbox Pharmacy Elm Avenue from "))
        confirm = page.get_by_role("button", name="Remove Sandbox Pharmacy Elm Avenue")
        opener.focus()
        page.keyboard.press("Enter")
        expect(question).to_be_visible()
        expect(question).to_contain_text("removed in the portal only")
        page.keyboard.press("Escape")
        expect(question).to_be_hidden()
        expect(opener).to_be_focused()

        page.keyboard.press("Enter")
        page.keyboard.press("Tab")
        expect(confirm).to_be_focused()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        expect(
            page.get_by_text(re.compile("no longer one of the patient's preferred"))
        ).to_be_visible()
        expect(page.get_by_role("list", name="Preferred pharmacies")).to_have_count(0)
        with app.app_context():
            assert db.session.query(PatientPharmacy).count() == 0
            db.session.remove()
        watch.assert_clean(page)
    finally:
        sandbox.stop()


@pytest.mark.browser
def test_a_refused_save_holds_the_click_once_and_says_why(app, chart, page, sign_in, watch):
    """The draft was saved in another tab meanwhile: this page's save is refused (409). A click
    then stays on the page with the reason in the status line (what was typed is still
    there); a second click goes on without it."""
    from playwright.sync_api import expect

    patient_id = chart.patients[0]
    no_known_allergies(app, patient_id)
    sign_in("drlee")
    draft_id = open_a_lisinopril_draft(page, patient_id)
    with app.app_context():  # another tab's save
        db.session.execute(
            update(Prescription)
            .where(Prescription.id == draft_id)
            .values(version=Prescription.version + 1)
        )
        db.session.commit()
    watch.expect_http_error(409, f"/prescriptions/{draft_id}/draft")  # the refusal, expected

    # Every request the page makes, in order: the signing page's GET is the click going on.
    requested: list[str] = []
    page.on("request", lambda request: requested.append(f"{request.method} {request.url}"))
    signing = re.compile(rf"^GET \S+/prescriptions/{draft_id}/sign$")

    page.get_by_label("Note to the pharmacist").click()
    page.keyboard.type(NOTE)
    review = page.get_by_role("link", name="Review and sign")
    review.click()
    expect(page.locator("#draft-status")).to_contain_text("changed in another tab")
    expect(page.get_by_label("Note to the pharmacist")).to_have_value(NOTE)
    # The click decides after its save's refusal is shown: wait for the decision.
    expect(page.locator("#draft-form[data-click-held=refused]")).to_have_count(1)
    assert [r for r in requested if SAVE.search(r) and r.startswith("POST ")]
    assert not [r for r in requested if signing.match(r)]  # the first click was held

    with page.expect_navigation(url=re.compile(r"/prescriptions/\d+/sign$")):
        review.click()
    assert [r for r in requested if signing.match(r)]  # the second went on
    watch.assert_clean(page)
