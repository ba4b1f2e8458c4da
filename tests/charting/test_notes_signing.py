"""Signing: who may sign, signed is signed (routes, services, raw SQL), co-signature, addenda."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from portal.extensions import db


def _note(app, note_id):
    from portal.charting.models import Note

    with app.app_context():
        note = db.session.get(Note, note_id)
        _ = note.addenda
        db.session.expunge_all()
        return note


def _user(username):
    from portal.auth.models import User

    return db.session.scalar(select(User).where(User.username == username))


def _events(app, action):
    from portal.audit.models import AuditEvent

    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_a_prescriber_signs_with_the_editors_latest_text(
    app, chart, make_encounter, make_note, signed_in
):
    encounter_id = make_encounter()
    note_id = make_note(encounter_id, text="S: draft")
    drlee = signed_in("prescriber")
    response = drlee.htmx_post(
        f"/chart/notes/{note_id}/sign", {"text": "S: cough\r\nP: rest", "version": "1"}
    )
    assert response.status_code == 200
    assert response.headers["HX-Refresh"] == "true"  # the page reloads, signed
    note = _note(app, note_id)
    assert note.text == "S: cough\nP: rest"
    assert note.signed_by_id == chart.drlee and note.signed_at is not None
    assert note.signed_text_sha256 == hashlib.sha256(b"S: cough\nP: rest").hexdigest()
    page = drlee.get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    assert re.search(r'class="note-text"[^>]*>S: cough\nP: rest</div>', page)
    assert "Signed by Jordan Lee at" in page
    assert f'id="note-{note_id}-text"' not in page  # no editor any more
    [event] = _events(app, "note.sign")
    assert event.category == "clinical notes" and "cough" not in (event.detail or "")


def test_a_nurse_cannot_sign_a_provider_note(app, chart, make_encounter, make_note, signed_in):
    encounter_id = make_encounter()
    note_id = make_note(encounter_id)
    nurse = signed_in("nurse")
    page = nurse.get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    assert "A prescriber signs this note." in page
    assert "Sign note" not in page
    assert nurse.post_form(f"/chart/notes/{note_id}/sign", {"version": "1"}).status_code == 403
    assert nurse.htmx_post(f"/chart/notes/{note_id}/sign", {"version": "1"}).status_code == 403
    assert _note(app, note_id).signed_at is None


def test_nursing_notes_are_signed_by_their_author(app, chart, make_encounter, make_note, signed_in):
    encounter_id = make_encounter()
    note_id = make_note(encounter_id, kind="nursing", author="nurse", text="BP taken")
    assert (
        signed_in("prescriber")
        .post_form(f"/chart/notes/{note_id}/sign", {"version": "1"})
        .status_code
        == 403
    )
    nurse = signed_in("nurse")
    response = nurse.post_form(f"/chart/notes/{note_id}/sign", {"version": "1"})
    assert response.status_code == 303
    assert _note(app, note_id).signed_by_id == chart.nurse


def test_an_empty_note_or_a_stale_editor_is_not_signed(
    app, chart, make_encounter, make_note, signed_in
):
    encounter_id = make_encounter()
    note_id = make_note(encounter_id, text="")
    drlee = signed_in("prescriber")
    empty = drlee.htmx_post(f"/chart/notes/{note_id}/sign", {"text": "  ", "version": "1"})
    assert empty.status_code == 422
    assert "An empty note cannot be signed" in empty.get_data(as_text=True)
    signed_in("nurse").htmx_post(f"/chart/notes/{note_id}/draft", {"text": "nurse", "version": 1})
    stale = drlee.htmx_post(f"/chart/notes/{note_id}/sign", {"text": "mine", "version": "1"})
    assert stale.status_code == 409
    assert _note(app, note_id).signed_at is None


def test_a_signed_note_cannot_be_changed_through_any_route(
    app, chart, make_encounter, make_note, signed_in
):
    encounter_id = make_encounter()
    note_id = make_note(encounter_id, text="As signed", signed=True)
    before = _note(app, note_id)
    drlee, nurse = signed_in("prescriber"), signed_in("nurse")
    attempts = [
        drlee.htmx_post(f"/chart/notes/{note_id}/draft", {"text": "changed", "version": "1"}),
        drlee.post_form(f"/chart/notes/{note_id}/draft", {"text": "changed", "version": "1"}),
        nurse.htmx_post(f"/chart/notes/{note_id}/draft", {"text": "changed", "version": "2"}),
        drlee.htmx_post(f"/chart/notes/{note_id}/sign", {"text": "changed", "version": "1"}),
        drlee.post_form(f"/chart/notes/{note_id}/sign", {"version": "1"}),
    ]
    assert [r.status_code for r in attempts] == [409, 409, 409, 409, 409]
    assert "signed and can no longer be changed" in attempts[0].get_data(as_text=True)
    assert "signed and can no longer be changed" in attempts[1].get_data(as_text=True)
    # Starting a note again opens the signed one; cosigning it is not for anyone unnamed.
    drlee.post_form(f"/chart/encounters/{encounter_id}/notes", {"kind": "provider"})
    assert drlee.post_form(f"/chart/notes/{note_id}/cosign").status_code == 403
    after = _note(app, note_id)
    assert (after.text, after.version, after.signed_at, after.signed_text_sha256) == (
        before.text,
        before.version,
        before.signed_at,
        before.signed_text_sha256,
    )


def test_a_signed_note_cannot_be_changed_through_the_services(
    app, chart, make_encounter, make_note
):
    from portal.actors import Actor
    from portal.charting.notes import services as notes
    from portal.charting.notes.services import NoteLocked

    note_id = make_note(make_encounter(), text="As signed", signed=True)
    with app.app_context():
        drlee = Actor.for_user(_user("drlee"), "127.0.0.1")
        with pytest.raises(NoteLocked):
            notes.save_draft(drlee, note_id, "changed", 1)
        with pytest.raises(NoteLocked):
            notes.sign_note(drlee, note_id, 1, text="changed")
    assert _note(app, note_id).text == "As signed"


def test_the_database_refuses_changing_or_deleting_a_signed_note(
    app, chart, make_encounter, make_note
):
    from portal.charting.models import Note, NoteAddendum

    note_id = make_note(make_encounter(), text="As signed", signed=True)
    with app.app_context():
        db.session.add(
            NoteAddendum(
                note_id=note_id, author_id=chart.drlee, text="add", signed_text_sha256="0" * 64
            )
        )
        db.session.commit()
        addendum_id = db.session.scalar(select(NoteAddendum.id))
    statements = [
        ("UPDATE notes SET text = 'rewritten' WHERE id = :id", note_id),
        ("UPDATE notes SET signed_at = NULL WHERE id = :id", note_id),
        ("DELETE FROM notes WHERE id = :id", note_id),
        ("UPDATE note_addenda SET text = 'rewritten' WHERE id = :id", addendum_id),
        ("DELETE FROM note_addenda WHERE id = :id", addendum_id),
    ]
    with app.app_context():
        for statement, row_id in statements:
            with pytest.raises(DBAPIError, match=r"cannot be (changed|deleted)"):
                db.session.execute(text(statement), {"id": row_id})
            db.session.rollback()
        # Through the ORM too: the flush is refused.
        note = db.session.get(Note, note_id)
        note.text = "rewritten by the ORM"
        with pytest.raises(DBAPIError, match="cannot be changed"):
            db.session.commit()
        db.session.rollback()
    assert _note(app, note_id).text == "As signed"
    assert [a.text for a in _note(app, note_id).addenda] == ["add"]


def test_co_signature_routes_to_the_named_prescriber(
    app, chart, make_encounter, make_note, signed_in
):
    from portal.charting.notes.services import notes_awaiting_cosignature

    encounter_id = make_encounter()
    note_id = make_note(encounter_id, author="drpatel", text="Supervised note")
    drpatel = signed_in("drpatel")
    refused = drpatel.htmx_post(
        f"/chart/notes/{note_id}/sign", {"version": "1", "cosigner_id": str(chart.nurse)}
    )
    assert refused.status_code == 422
    assert "Choose a prescriber to co-sign." in refused.get_data(as_text=True)
    signed = drpatel.post_form(
        f"/chart/notes/{note_id}/sign", {"version": "1", "cosigner_id": str(chart.drlee)}
    )
    assert signed.status_code == 303
    with app.app_context():
        [row] = notes_awaiting_cosignature(chart.drlee)
        assert row.note_id == note_id and row.family_name == "Lovelace"
        assert notes_awaiting_cosignature(chart.drpatel) == []
    assert drpatel.post_form(f"/chart/notes/{note_id}/cosign").status_code == 403
    drlee = signed_in("prescriber")
    assert "Awaiting co-signature by Jordan Lee" in drlee.get(
        f"/chart/encounters/{encounter_id}"
    ).get_data(as_text=True)
    assert drlee.post_form(f"/chart/notes/{note_id}/cosign").status_code == 303
    note = _note(app, note_id)
    assert note.cosigned_at is not None and note.text == "Supervised note"
    with app.app_context():
        assert notes_awaiting_cosignature(chart.drlee) == []
    assert "Co-signed by Jordan Lee" in drlee.get(f"/chart/encounters/{encounter_id}").get_data(
        as_text=True
    )
    assert len(_events(app, "note.cosign")) == 1


def test_addenda_are_signed_shown_in_order_and_only_on_signed_notes(
    app, chart, make_encounter, make_note, signed_in
):
    encounter_id = make_encounter()
    draft_id = make_note(encounter_id, kind="nursing", author="nurse")
    signed_id = make_note(encounter_id, text="As signed", signed=True)
    nurse, drlee = signed_in("nurse"), signed_in("prescriber")
    on_draft = nurse.post_form(f"/chart/notes/{draft_id}/addenda", {"text": "x"})
    assert on_draft.status_code == 422
    assert "Addenda are for signed notes" in on_draft.get_data(as_text=True)
    empty = nurse.post_form(f"/chart/notes/{signed_id}/addenda", {"text": "   "})
    assert empty.status_code == 422
    assert "Write the addendum first." in empty.get_data(as_text=True)
    assert (
        nurse.post_form(
            f"/chart/notes/{signed_id}/addenda", {"text": "BP recheck 128/82"}
        ).status_code
        == 303
    )
    assert (
        drlee.post_form(
            f"/chart/notes/{signed_id}/addenda", {"text": "Reviewed <b>labs</b>"}
        ).status_code
        == 303
    )
    note = _note(app, signed_id)
    assert note.text == "As signed"
    assert [(a.text, a.author_id) for a in note.addenda] == [
        ("BP recheck 128/82", chart.nurse),
        ("Reviewed <b>labs</b>", chart.drlee),
    ]
    assert note.addenda[0].signed_text_sha256 == hashlib.sha256(b"BP recheck 128/82").hexdigest()
    page = drlee.get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    first, second = page.index("BP recheck 128/82"), page.index("Reviewed &lt;b&gt;labs&lt;/b&gt;")
    assert first < second
    assert "Addendum signed by Sam Okafor at" in page
    assert "Addendum signed by Jordan Lee at" in page
    assert len(_events(app, "note.addendum")) == 2


def test_an_overlong_addendum_is_refused_and_kept(app, chart, make_encounter, make_note, signed_in):
    from portal.charting.models import NOTE_MAX_CHARS

    encounter_id = make_encounter()
    note_id = make_note(encounter_id, signed=True)
    text_ = "x" * (NOTE_MAX_CHARS + 1)
    response = signed_in("nurse").post_form(f"/chart/notes/{note_id}/addenda", {"text": text_})
    assert response.status_code == 422
    assert "at most 200,000 characters" in response.get_data(as_text=True)
    assert text_ in response.get_data(as_text=True)
    assert _note(app, note_id).addenda == []


def test_unsigned_notes_older_than_a_day(app, chart, make_encounter, make_note):
    from portal.charting.notes.services import unsigned_notes_older_than

    encounter_id = make_encounter()
    old = make_note(encounter_id, hours_ago=30)
    make_note(make_encounter(), hours_ago=2)  # recent
    make_note(make_encounter(), hours_ago=40, signed=True)  # signed
    nursing = make_note(encounter_id, kind="nursing", author="nurse", hours_ago=30)
    # A provider note the nurse started on drlee's encounter waits on drlee, who signs it.
    started_by_nurse = make_note(make_encounter(), author="nurse", hours_ago=35)
    with app.app_context():
        assert [row.note_id for row in unsigned_notes_older_than(chart.drlee)] == [
            started_by_nurse,
            old,
        ]
        # The nurse still sees the draft they started, beside their own nursing note.
        assert [row.note_id for row in unsigned_notes_older_than(chart.nurse)] == [
            started_by_nurse,
            nursing,
        ]
        assert unsigned_notes_older_than(chart.drpatel) == []


def test_the_form_without_javascript_signs_only_the_version_its_page_showed(
    app, chart, make_encounter, make_note, signed_in
):
    """Dr Lee's page showed version 1; the nurse then saved version 2 with a new line. The
    sign form (no text, the page's version) must not sign text Dr Lee never saw; reloaded,
    the page's form carries version 2 and signs it."""
    encounter_id = make_encounter()
    note_id = make_note(encounter_id, text="S: cough")
    drlee, nurse = signed_in("prescriber"), signed_in("nurse")
    page = drlee.get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    assert 'name="shown_version" value="1"' in page
    saved = nurse.htmx_post(
        f"/chart/notes/{note_id}/draft", {"text": "S: cough\nNEW LINE BY NURSE", "version": "1"}
    )
    assert saved.status_code == 200
    refused = drlee.post_form(f"/chart/notes/{note_id}/sign", {"shown_version": "1"})
    assert refused.status_code == 409
    assert "NEW LINE BY NURSE" in refused.get_data(as_text=True), "the newer text is shown"
    assert _note(app, note_id).signed_at is None
    # A client that sends an old editor version without its text is refused the same way.
    assert drlee.post_form(f"/chart/notes/{note_id}/sign", {"version": "1"}).status_code == 409
    reloaded = drlee.get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    assert 'name="shown_version" value="2"' in reloaded
    signed = drlee.post_form(f"/chart/notes/{note_id}/sign", {"shown_version": "2"})
    assert signed.status_code == 303
    note = _note(app, note_id)
    assert note.signed_at is not None and note.text == "S: cough\nNEW LINE BY NURSE"


def test_signing_without_any_version_is_refused(app, chart, make_encounter, make_note, signed_in):
    """The version is what shows the signer saw the stored text: without it, nothing is signed."""
    encounter_id = make_encounter()
    note_id = make_note(encounter_id, text="S: cough")
    response = signed_in("prescriber").post_form(f"/chart/notes/{note_id}/sign", {})
    assert response.status_code == 409
    assert _note(app, note_id).signed_at is None


def test_the_database_sets_a_co_signature_once_and_never_changes_it(
    app, chart, make_encounter, make_note
):
    """Co-signing sets cosigned_at after the signature; from then on it is as final as the
    rest of the signed note: not cleared, not moved."""
    note_id = make_note(make_encounter(), text="Supervised", signed=True)
    with app.app_context():
        db.session.execute(
            text("UPDATE notes SET cosigner_id = cosigner_id WHERE id = :id"), {"id": note_id}
        )
        db.session.execute(
            text("UPDATE notes SET cosigned_at = signed_at WHERE id = :id"), {"id": note_id}
        )
        db.session.commit()
        for statement in (
            "UPDATE notes SET cosigned_at = NULL WHERE id = :id",
            "UPDATE notes SET cosigned_at = '2001-01-01 00:00:00' WHERE id = :id",
        ):
            with pytest.raises(DBAPIError, match="cannot be changed"):
                db.session.execute(text(statement), {"id": note_id})
            db.session.rollback()
    assert _note(app, note_id).cosigned_at is not None


@pytest.mark.parametrize("cosigner", ["99999999999999999999999", "abc"])
def test_an_impossible_cosigner_id_is_refused_and_the_note_stays_unsigned(
    app, chart, make_encounter, make_note, signed_in, cosigner
):
    """Beyond the database's integer range the id used to reach the query (a 500); a value
    that is no number at all was read as "no co-signer" and the note signed unrouted."""
    note_id = make_note(make_encounter(), author="drpatel", text="Supervised note")
    response = signed_in("drpatel").post_form(
        f"/chart/notes/{note_id}/sign", {"version": "1", "cosigner_id": cosigner}
    )
    assert response.status_code == 422
    assert "Choose a prescriber to co-sign." in response.get_data(as_text=True)
    note = _note(app, note_id)
    assert note.signed_at is None and note.cosigner_id is None
