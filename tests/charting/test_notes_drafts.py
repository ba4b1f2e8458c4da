"""Note drafts: templates, autosave with versions, two editors, limits, XSS, time-outs, audit."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from portal.charting.models import NOTE_MAX_CHARS
from portal.extensions import db
from tests.auth.helpers import age_session, session_token


def _note(app, note_id):
    from portal.charting.models import Note

    with app.app_context():
        note = db.session.get(Note, note_id)
        db.session.expunge(note)
        return note


def _events(app, action):
    from portal.audit.models import AuditEvent

    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _template(app, name, body, kind="provider", type_id=None, active=True):
    from portal.charting.models import NoteTemplate

    with app.app_context():
        db.session.add(
            NoteTemplate(
                name=name,
                body=body,
                note_kind=kind,
                appointment_type_id=type_id,
                is_active=active,
            )
        )
        db.session.commit()


def _start_note(browser, encounter_id, kind="provider"):
    response = browser.post_form(f"/chart/encounters/{encounter_id}/notes", {"kind": kind})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return int(re.search(r"#note-(\d+)$", response.location).group(1))


def _autosave(browser, note_id, text, version):
    return browser.htmx_post(f"/chart/notes/{note_id}/draft", {"text": text, "version": version})


def test_a_new_note_starts_from_its_visit_types_template(app, chart, make_appointment, signed_in):
    _template(app, "Default SOAP", "S:\nO:\nA:\nP:\n")
    _template(app, "Follow-up SOAP", "S: since last visit\nO:\nA:\nP:\n", type_id=chart.follow_up)
    _template(app, "Old follow-up", "never used", type_id=chart.follow_up, active=False)
    _template(app, "Nursing intake", "Intake:\n", kind="nursing")
    drlee = signed_in("prescriber")
    start = drlee.post_form(f"/chart/appointments/{make_appointment()}/start-visit")
    encounter_id = int(start.location.rsplit("/", 1)[1])
    provider_note = _note(app, _start_note(drlee, encounter_id))
    assert provider_note.text == "S: since last visit\nO:\nA:\nP:\n"
    nursing_note = _note(app, _start_note(drlee, encounter_id, "nursing"))
    assert nursing_note.text == "Intake:\n"
    # Starting again opens the same note.
    assert _start_note(drlee, encounter_id) == provider_note.id


def test_an_ad_hoc_encounter_gets_the_default_template(app, chart, make_encounter, signed_in):
    _template(app, "Default SOAP", "S:\nO:\nA:\nP:\n")
    _template(app, "Follow-up SOAP", "follow-up", type_id=chart.follow_up)
    note_id = _start_note(signed_in("prescriber"), make_encounter())
    assert _note(app, note_id).text == "S:\nO:\nA:\nP:\n"


def test_autosave_saves_and_answers_saved_at_with_the_new_version(
    app, chart, make_encounter, signed_in
):
    drlee = signed_in("prescriber")
    encounter_id = make_encounter()
    note_id = _start_note(drlee, encounter_id)
    page = drlee.get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    assert f'id="note-{note_id}-version" value="1"' in page
    assert 'hx-trigger="input changed delay:1s, blur"' in page

    response = _autosave(drlee, note_id, "S: cough\r\nP: fluids", 1)

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert re.search(r"Saved at \d\d:\d\d", body)
    assert f'id="note-{note_id}-version" value="2" hx-swap-oob="true"' in body
    note = _note(app, note_id)
    assert (note.text, note.version) == ("S: cough\nP: fluids", 2)
    # The same text again (a blur after the last keystroke's save) writes nothing.
    again = _autosave(drlee, note_id, "S: cough\nP: fluids", 2)
    assert again.status_code == 200 and _note(app, note_id).version == 2


def test_two_editors_the_later_save_does_not_overwrite_the_earlier(
    app, chart, make_encounter, signed_in
):
    drlee, nurse = signed_in("prescriber"), signed_in("nurse")
    note_id = _start_note(drlee, make_encounter())
    assert _autosave(drlee, note_id, "Dr Lee's text", 1).status_code == 200

    refused = _autosave(nurse, note_id, "Nurse's text", 1)  # loaded at version 1 too

    assert refused.status_code == 409
    body = refused.get_data(as_text=True)
    assert "Someone else saved this note" in body
    assert "Dr Lee&#39;s text" in body and "Nurse&#39;s text" in body  # both, nothing lost
    assert _note(app, note_id).text == "Dr Lee's text"
    # The nurse chooses to keep hers: the conflict panel's form names the version she saw.
    assert 'name="version" value="2"' in body
    kept = _autosave(nurse, note_id, "Nurse's text", 2)
    assert kept.status_code == 200
    assert (_note(app, note_id).text, _note(app, note_id).version) == ("Nurse's text", 3)
    # Dr Lee, still at version 2, is now the one refused.
    assert _autosave(drlee, note_id, "Dr Lee's second thought", 2).status_code == 409


def test_conflict_without_htmx_shows_the_page_with_both_texts(
    app, chart, make_encounter, signed_in
):
    drlee, nurse = signed_in("prescriber"), signed_in("nurse")
    note_id = _start_note(drlee, make_encounter())
    _autosave(drlee, note_id, "first", 1)
    response = nurse.post_form(f"/chart/notes/{note_id}/draft", {"text": "second", "version": 1})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Their version" in page and "Your version" in page
    assert re.search(rf'id="note-{note_id}-text"[^>]*>\s*second</textarea>', page)


def test_a_note_of_the_limit_is_kept_whole_and_a_longer_one_is_refused(
    app, chart, make_encounter, signed_in
):
    drlee = signed_in("prescriber")
    encounter_id = make_encounter()
    note_id = _start_note(drlee, encounter_id)
    full = ("Lorem ipsum dolor sit amet. " * 8000)[: NOTE_MAX_CHARS - 1] + "Z"
    assert len(full) == NOTE_MAX_CHARS
    assert _autosave(drlee, note_id, full, 1).status_code == 200
    assert _note(app, note_id).text == full

    too_long = full + "!"
    refused = _autosave(drlee, note_id, too_long, 2)
    assert refused.status_code == 422
    assert "at most 200,000 characters" in refused.get_data(as_text=True)
    assert "still in the editor" in refused.get_data(as_text=True)
    assert _note(app, note_id).text == full  # not cut, not changed

    page = drlee.post_form(f"/chart/notes/{note_id}/draft", {"text": too_long, "version": 2})
    assert page.status_code == 422
    assert too_long in page.get_data(as_text=True)  # the typed text stays in the editor


def test_a_note_of_the_limit_in_four_byte_characters_is_kept_whole(
    app, chart, make_encounter, signed_in
):
    """The limit is in characters: 200,000 emoji (4 bytes of UTF-8 each, 12 once
    form-encoded, some 2.4 MB) must be saved, not refused by the request size limit (413),
    which used to be 2 MB."""
    drlee = signed_in("prescriber")
    note_id = _start_note(drlee, make_encounter())
    full = "\N{GRINNING FACE}" * NOTE_MAX_CHARS
    assert _autosave(drlee, note_id, full, 1).status_code == 200
    assert _note(app, note_id).text == full
    # One more is over the limit: refused with the note's own message, never a bare 413.
    too_long = full + "\N{GRINNING FACE}"
    refused = _autosave(drlee, note_id, too_long, 2)
    assert refused.status_code == 422
    assert "at most 200,000 characters" in refused.get_data(as_text=True)


def test_script_in_a_note_renders_inert(app, chart, make_encounter, signed_in):
    drlee = signed_in("prescriber")
    encounter_id = make_encounter()
    note_id = _start_note(drlee, encounter_id)
    payload = '</textarea><script>alert(1)</script><img src=x onerror="alert(2)">'
    _autosave(drlee, note_id, payload, 1)
    page = drlee.get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;/textarea&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    drlee.post_form(f"/chart/notes/{note_id}/sign", {"version": 2})
    signed = drlee.get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    assert '<img src=x onerror="alert(2)">' not in signed
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in signed


def test_draft_saves_are_audited_once_per_ten_minutes_per_user(
    app, chart, make_encounter, signed_in
):
    drlee, nurse = signed_in("prescriber"), signed_in("nurse")
    note_id = _start_note(drlee, make_encounter())
    for version, text in enumerate(["S", "S: c", "S: co", "S: cough"], start=1):
        assert _autosave(drlee, note_id, text, version).status_code == 200
    assert len(_events(app, "note.draft_save")) == 1
    _autosave(nurse, note_id, "S: cough, nurse", 5)
    events = _events(app, "note.draft_save")
    assert len(events) == 2
    assert {event.category for event in events} == {"clinical notes"}
    assert all("cough" not in (event.detail or "") for event in events)
    # Ten minutes later the next save is audited again (the service's clock moved on).
    with app.app_context():
        from portal.actors import Actor
        from portal.auth.models import User
        from portal.charting.notes import services as notes
        from portal.timeutil import utcnow

        user = db.session.scalar(select(User).where(User.username == "drlee"))
        notes.save_draft(
            Actor.for_user(user, "127.0.0.1"),
            note_id,
            "S: later",
            6,
            now=utcnow() + timedelta(minutes=11),
        )
    assert len(_events(app, "note.draft_save")) == 3


def test_an_autosave_after_the_session_timed_out_loses_nothing(
    app, chart, make_encounter, signed_in
):
    drlee = signed_in("prescriber", through_the_form=True)
    encounter_id = make_encounter()
    note_id = _start_note(drlee, encounter_id)
    drlee.get(f"/chart/encounters/{encounter_id}")
    age_session(app, session_token(drlee), last_seen_at=timedelta(minutes=20))

    typed = "S: typed just before the time-out\nP: review in a week"
    response = drlee.htmx_post(
        f"/chart/notes/{note_id}/draft",
        {"text": typed, "version": 1},
        headers={"HX-Current-URL": f"http://localhost/chart/encounters/{encounter_id}"},
    )

    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/auth/sign-in"
    assert _note(app, note_id).text != typed
    after = drlee.sign_in("drlee")
    assert after.location == "/auth/resume"
    offer = drlee.get("/auth/resume").get_data(as_text=True)
    assert f'action="/chart/notes/{note_id}/draft"' in offer
    assert 'value="S: typed just before the time-out\nP: review in a week"' in offer
    resent = drlee.post_form(f"/chart/notes/{note_id}/draft", {"text": typed, "version": "1"})
    assert resent.status_code == 303
    assert resent.location.endswith(f"/chart/encounters/{encounter_id}#note-{note_id}")
    assert _note(app, note_id).text == typed
