"""Picking a note's template (issue 14, section 4): a clinician starting a note may choose
any active template of the note's kind, not only the visit type's default, or none."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.extensions import db
from tests.support.chart import provider_note


def _template(app, name, body, kind="provider", type_id=None, active=True) -> int:
    from portal.charting.models import NoteTemplate

    with app.app_context():
        template = NoteTemplate(
            name=name, body=body, note_kind=kind, appointment_type_id=type_id, is_active=active
        )
        db.session.add(template)
        db.session.commit()
        return template.id


def _notes(app):
    from portal.charting.models import Note

    with app.app_context():
        rows = list(db.session.scalars(select(Note).order_by(Note.id)))
        db.session.expunge_all()
        return rows


@pytest.fixture
def templates(app, chart) -> dict[str, int]:
    return {
        "follow_up": _template(
            app, "Follow-up SOAP", "S: since last visit\n", type_id=chart.follow_up
        ),
        "default": _template(app, "Default SOAP", "S:\nO:\nA:\nP:\n"),
        "diabetes": _template(app, "Diabetes review", "HbA1c:\nFeet:\nEyes:\n"),
        "retired": _template(app, "Old review", "never used", active=False),
        "intake": _template(app, "Nursing intake", "Intake:\n", kind="nursing"),
    }


def _visit(signed_in, make_appointment) -> tuple:
    drlee = signed_in("prescriber")
    start = drlee.post_form(f"/chart/appointments/{make_appointment()}/start-visit")
    return drlee, int(start.location.rsplit("/", 1)[1])


def _start(client, encounter_id, **fields):
    return client.post_form(
        f"/chart/encounters/{encounter_id}/notes", {"kind": "provider", **fields}
    )


def test_the_encounter_page_offers_every_active_template_of_the_kind(
    app, chart, templates, make_appointment, signed_in
):
    drlee, encounter_id = _visit(signed_in, make_appointment)
    page = drlee.get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    provider_choice = re.search(
        r'<label[^>]*for="start-provider-template">Provider note template</label>\s*'
        r'<select[^>]*id="start-provider-template"[^>]*>(.*?)</select>',
        page,
        re.S,
    )
    assert provider_choice, "a labelled template choice beside Start provider note"
    options = re.findall(r"<option[^>]*>([^<]*)</option>", provider_choice.group(1))
    assert options == [
        "Default SOAP",
        "Diabetes review",
        "Follow-up SOAP (this visit type's)",
        "No template (blank note)",
    ]
    selected = re.search(r'<option value="(\d+)" selected>', provider_choice.group(1))
    assert int(selected.group(1)) == templates["follow_up"]
    assert "Nursing intake" in page  # the nursing note's own choice


def test_a_prescriber_starts_the_note_from_the_template_they_pick(
    app, chart, templates, make_appointment, signed_in
):
    drlee, encounter_id = _visit(signed_in, make_appointment)
    response = _start(drlee, encounter_id, template_id=str(templates["diabetes"]))
    assert response.status_code == 303
    assert provider_note(app).text == "HbA1c:\nFeet:\nEyes:\n"


def test_no_choice_keeps_the_visit_types_default_and_blank_starts_empty(
    app, chart, templates, make_appointment, make_encounter, signed_in
):
    drlee, encounter_id = _visit(signed_in, make_appointment)
    _start(drlee, encounter_id)
    assert provider_note(app).text == "S: since last visit\n"
    drlee.post_form(
        f"/chart/encounters/{make_encounter()}/notes", {"kind": "nursing", "template_id": "blank"}
    )
    assert _notes(app)[-1].kind == "nursing"
    assert _notes(app)[-1].text == ""


@pytest.mark.parametrize("which", ["retired", "intake", "unknown", "garbage"])
def test_a_template_that_is_not_on_offer_is_refused(
    app, chart, templates, make_appointment, signed_in, which
):
    drlee, encounter_id = _visit(signed_in, make_appointment)
    value = {"unknown": "987654", "garbage": "9" * 40}.get(which) or str(templates[which])
    response = _start(drlee, encounter_id, template_id=value)
    assert response.status_code == 303
    assert _notes(app) == []  # nothing started
    page = drlee.get(response.location).get_data(as_text=True)
    assert "Choose one of the active templates for this kind of note." in page


@pytest.mark.browser
def test_in_chromium_a_prescriber_picks_another_template(
    app, chart, templates, make_appointment, page, sign_in, watch
):
    from playwright.sync_api import expect

    make_appointment(status="roomed")
    sign_in("drlee")
    page.goto(f"/schedule/flow-board?location_id={chart.main_street}")
    page.locator("#flow-column-roomed").get_by_text("Lovelace, Ada").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Start visit").click()
    choice = page.get_by_label("Provider note template")
    expect(choice).to_have_value(str(templates["follow_up"]))
    choice.select_option(label="Diabetes review")
    with page.expect_navigation():
        page.get_by_role("button", name="Start provider note").click()
    expect(page.get_by_label("Provider note text")).to_have_value("HbA1c:\nFeet:\nEyes:\n")
    watch.assert_clean(page)
