"""Note templates (administrators) and snippets (own per clinician, clinic-wide by admins)."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser

import pytest
from sqlalchemy import select

from portal.extensions import db


def _templates(app):
    from portal.charting.models import NoteTemplate

    with app.app_context():
        rows = list(db.session.scalars(select(NoteTemplate).order_by(NoteTemplate.id)))
        db.session.expunge_all()
        return rows


def _snippets(app):
    from portal.charting.models import NoteSnippet

    with app.app_context():
        rows = list(db.session.scalars(select(NoteSnippet).order_by(NoteSnippet.id)))
        db.session.expunge_all()
        return rows


def test_admin_adds_edits_and_deactivates_a_template(app, chart, signed_in):
    admin = signed_in("admin")
    assert "No templates yet." in admin.get("/chart/templates").get_data(as_text=True)
    form = admin.get("/chart/templates/new").get_data(as_text=True)
    assert "Follow-up" in form and "Default (any visit type)" in form
    created = admin.post_form(
        "/chart/templates/new",
        {
            "name": "Follow-up SOAP",
            "note_kind": "provider",
            "appointment_type_id": str(chart.follow_up),
            "body": "S:\r\nO:\r\nA:\r\nP:",
        },
    )
    assert created.status_code == 303
    [template] = _templates(app)
    assert (template.body, template.appointment_type_id, template.is_active) == (
        "S:\nO:\nA:\nP:",
        chart.follow_up,
        True,
    )
    listing = admin.get("/chart/templates").get_data(as_text=True)
    assert "Follow-up SOAP" in listing and "Deactivate" in listing
    edited = admin.post_form(
        f"/chart/templates/{template.id}",
        {
            "name": "Follow-up SOAP",
            "note_kind": "provider",
            "appointment_type_id": "",
            "body": "S:",
        },
    )
    assert edited.status_code == 303
    assert _templates(app)[0].appointment_type_id is None
    admin.post_form(f"/chart/templates/{template.id}/active", {"active": "0"})
    assert _templates(app)[0].is_active is False
    assert "Activate" in admin.get("/chart/templates").get_data(as_text=True)


def test_template_refusals_keep_what_was_typed(app, chart, signed_in):
    admin = signed_in("admin")
    admin.post_form("/chart/templates/new", {"name": "SOAP", "note_kind": "provider", "body": "S:"})
    duplicate = admin.post_form(
        "/chart/templates/new", {"name": "SOAP", "note_kind": "nursing", "body": "Intake"}
    )
    assert duplicate.status_code == 422
    assert "Another template has that name." in duplicate.get_data(as_text=True)
    assert "Intake</textarea>" in duplicate.get_data(as_text=True)
    empty = admin.post_form("/chart/templates/new", {"name": "Empty", "note_kind": "provider"})
    assert empty.status_code == 422
    assert "Write the template&#39;s text." in empty.get_data(as_text=True)
    assert len(_templates(app)) == 1


def test_a_template_for_an_impossible_visit_type_is_refused_beside_the_field(app, chart, signed_in):
    """A visit type id beyond the database's integer range used to reach the query (500)."""
    admin = signed_in("admin")
    refused = admin.post_form(
        "/chart/templates/new",
        {
            "name": "Follow-up SOAP",
            "note_kind": "provider",
            "appointment_type_id": "99999999999999999999999",
            "body": "S:",
        },
    )
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert 'id="appointment_type_id-error"' in text and "Choose one from the list." in text
    assert 'value="Follow-up SOAP"' in text
    assert _templates(app) == []


def test_clinicians_keep_their_own_snippets(app, chart, signed_in):
    nurse = signed_in("nurse")
    added = nurse.post_form("/chart/snippets", {"trigger": ".ros", "body": "ROS: negative"})
    assert added.status_code == 303
    [snippet] = _snippets(app)
    assert (snippet.trigger, snippet.owner_id) == (".ros", chart.nurse)
    page = nurse.get("/chart/snippets").get_data(as_text=True)
    assert ".ros" in page and "ROS: negative" in page
    # Another clinician neither sees nor changes it.
    drlee = signed_in("prescriber")
    assert "ROS: negative" not in drlee.get("/chart/snippets").get_data(as_text=True)
    assert drlee.get(f"/chart/snippets/{snippet.id}").status_code == 404
    assert drlee.post_form(f"/chart/snippets/{snippet.id}/delete").status_code == 404
    # Its owner edits and deletes it.
    nurse.post_form(f"/chart/snippets/{snippet.id}", {"trigger": ".ros", "body": "ROS: all neg"})
    assert _snippets(app)[0].body == "ROS: all neg"
    nurse.post_form(f"/chart/snippets/{snippet.id}/delete")
    assert _snippets(app) == []


def test_snippet_triggers_are_checked(app, chart, signed_in):
    nurse = signed_in("nurse")
    for trigger in ("ros", ".r-s", "." + "a" * 32, ". ros"):
        response = nurse.post_form("/chart/snippets", {"trigger": trigger, "body": "x"})
        assert response.status_code == 422, trigger
        assert "A trigger is a dot followed by" in response.get_data(as_text=True) or (
            "Field cannot be longer" in response.get_data(as_text=True)
        )
    nurse.post_form("/chart/snippets", {"trigger": ".ros", "body": "x"})
    again = nurse.post_form("/chart/snippets", {"trigger": ".ros", "body": "y"})
    assert again.status_code == 422
    assert "That trigger is already used" in again.get_data(as_text=True)
    assert len(_snippets(app)) == 1


def test_admin_manages_clinic_wide_snippets_and_clinicians_cannot(app, chart, signed_in):
    admin = signed_in("admin")
    assert (
        admin.post_form("/chart/snippets", {"trigger": ".ros", "body": "Clinic ROS"}).status_code
        == 303
    )
    [snippet] = _snippets(app)
    assert snippet.owner_id is None
    duplicate = admin.post_form("/chart/snippets", {"trigger": ".ros", "body": "again"})
    assert duplicate.status_code == 422
    nurse = signed_in("nurse")
    page = nurse.get("/chart/snippets").get_data(as_text=True)
    assert "Clinic ROS" in page
    assert f"/chart/snippets/{snippet.id}/delete" not in page
    assert nurse.post_form(f"/chart/snippets/{snippet.id}/delete").status_code == 404
    # A clinician's "clinic-wide" box does not make a clinic-wide snippet.
    refused = nurse.post_form(
        "/chart/snippets", {"trigger": ".pe", "body": "Exam", "clinic_wide": "y"}
    )
    assert refused.status_code == 403
    assert signed_in("front_desk").get("/chart/snippets").status_code == 403


def test_the_editor_receives_own_snippets_over_clinic_wide_ones(
    app, chart, make_encounter, make_note, signed_in
):
    signed_in("admin").post_form("/chart/snippets", {"trigger": ".ros", "body": "Clinic ROS"})
    signed_in("admin").post_form("/chart/snippets", {"trigger": ".pe", "body": "Clinic <exam>"})
    drlee = signed_in("prescriber")
    drlee.post_form("/chart/snippets", {"trigger": ".ros", "body": "My ROS"})
    encounter_id = make_encounter()
    make_note(encounter_id)
    page = drlee.get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    raw = re.search(r"data-snippets='([^']*)'", page).group(1)

    assert json.loads(html.unescape(raw)) == {".ros": "My ROS", ".pe": "Clinic <exam>"}
    assert "<exam>" not in raw  # escaped inside the attribute


class _MainNavLinks(HTMLParser):
    """The links of the top bar's navigation: text -> (href, marked as the current page)."""

    def __init__(self):
        super().__init__()
        self.links: dict[str, tuple[str, bool]] = {}
        self._in_nav = False
        self._link: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "nav" and attrs.get("aria-label") == "Main":
            self._in_nav = True
        elif tag == "a" and self._in_nav and "nav-link" in (attrs.get("class") or ""):
            self._link = {"href": attrs["href"], "current": attrs.get("aria-current") == "page"}
            self._text = ""

    def handle_data(self, data):
        if self._link is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "a" and self._link is not None:
            self.links[self._text.strip()] = (self._link["href"], self._link["current"])
            self._link = None
        elif tag == "nav":
            self._in_nav = False


def _main_nav(response) -> dict[str, tuple[str, bool]]:
    parser = _MainNavLinks()
    parser.feed(response.get_data(as_text=True))
    return parser.links


CHART_SETUP_LINKS = {"Snippets": "/chart/snippets", "Note templates": "/chart/templates"}


@pytest.mark.parametrize(
    ("role", "offered"),
    [
        ("front_desk", set()),
        ("nurse", {"Snippets"}),  # chart.write: their own snippets
        ("prescriber", {"Snippets"}),
        ("admin", {"Note templates"}),  # chart.manage; clinic-wide snippets are reached from it
    ],
)
def test_the_main_navigation_offers_snippets_and_templates_to_who_may_use_them(
    signed_in, role, offered
):
    user = signed_in(role)
    links = _main_nav(user.get("/"))
    assert {text for text in CHART_SETUP_LINKS if text in links} == offered
    for text in offered:
        href, current = links[text]
        assert (href, current) == (CHART_SETUP_LINKS[text], False)
        # The link leads to a page this role may open, where it is marked as the current one.
        page = user.get(href)
        assert page.status_code == 200
        assert _main_nav(page)[text] == (href, True)


def test_an_administrators_clinic_wide_snippets_belong_to_note_templates_in_the_navigation(
    signed_in,
):
    admin = signed_in("admin")
    templates = admin.get("/chart/templates").get_data(as_text=True)
    assert 'href="/chart/snippets"' in templates  # "Clinic-wide snippets"
    assert _main_nav(admin.get("/chart/snippets"))["Note templates"] == ("/chart/templates", True)
    # A clinician's snippets page is their own "Snippets", not the templates.
    assert _main_nav(signed_in("nurse").get("/chart/snippets"))["Snippets"] == (
        "/chart/snippets",
        True,
    )
