"""Two (or ten) "Start provider note" clicks racing on one encounter end on one note.

An encounter has one note of each kind: a unique index on (encounter_id, kind) decides a
race, and the click whose insert loses opens the note the winner made (like "Start visit").

The HTTP race sends the clicks at once to a real server (a thread and a connection each).
On PostgreSQL several of them read "no note yet" and insert; on SQLite the write lock
queues them. Either way: every click answers 303 to the same note, no 500, one note, one
audit event. The staged race (PostgreSQL) makes the losing insert certain: another
connection commits the note after the service looked and before it inserts.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import event, func, select, text

from portal.actors import Actor
from portal.audit.models import AuditEvent
from portal.auth.models import User
from portal.charting.models import Note
from portal.charting.notes import services as notes
from portal.extensions import db
from tests.support.clients import CSRF_META
from tests.support.database import PASSWORD

CLICKS = 10


def _nurse_session(base: str) -> tuple[dict, str]:
    """Sign the nurse in over HTTP: the cookies and CSRF token a page would post with."""
    browser = requests.Session()
    page = browser.get(f"{base}/auth/sign-in", timeout=30)
    response = browser.post(
        f"{base}/auth/sign-in",
        data={
            "username": "nurse",
            "password": PASSWORD,
            "csrf_token": CSRF_META.search(page.text).group(1),
        },
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[:500]
    home = browser.get(f"{base}/", timeout=30)
    return browser.cookies.get_dict(), CSRF_META.search(home.text).group(1)


def _notes_and_events(app, encounter_id: int) -> tuple[list[Note], int]:
    with app.app_context():
        rows = list(db.session.scalars(select(Note).where(Note.encounter_id == encounter_id)))
        created = db.session.scalar(select(func.count()).where(AuditEvent.action == "note.create"))
        db.session.remove()
        return rows, created


def test_ten_start_note_clicks_at_once_make_one_note(app, chart, make_encounter, live_server):
    encounter_id = make_encounter()
    cookies, token = _nurse_session(live_server)
    start = threading.Barrier(CLICKS)

    def click(_):
        with requests.Session() as browser:
            browser.cookies.update(cookies)
            start.wait(timeout=30)
            return browser.post(
                f"{live_server}/chart/encounters/{encounter_id}/notes",
                data={"kind": "provider", "csrf_token": token},
                timeout=120,
                allow_redirects=False,
            )

    with ThreadPoolExecutor(max_workers=CLICKS) as pool:
        responses = list(pool.map(click, range(CLICKS)))

    assert [r.status_code for r in responses] == [303] * CLICKS, [
        (r.status_code, r.text[:300]) for r in responses if r.status_code != 303
    ]
    (note,), created = _notes_and_events(app, encounter_id)
    assert {r.headers["Location"] for r in responses} == {
        f"/chart/encounters/{encounter_id}#note-{note.id}"
    }
    assert note.kind == "provider"
    assert created == 1  # the losers' audit events went with their rolled-back inserts
    page = requests.get(
        f"{live_server}/chart/encounters/{encounter_id}", cookies=cookies, timeout=30
    ).text
    assert page.count('<article class="note card') == 1 and f'id="note-{note.id}"' in page
    assert "Start provider note" not in page


@pytest.mark.postgres_only
def test_the_click_whose_insert_loses_opens_the_winners_note(app, chart, make_encounter):
    encounter_id = make_encounter()
    with app.test_request_context():
        nurse = Actor.for_user(
            db.session.scalars(select(User).filter_by(username="nurse")).one(), "127.0.0.1"
        )
        raced = []

        def other_click_commits_first(session, flush_context, instances):
            if raced or not any(isinstance(row, Note) for row in session.new):
                return
            raced.append(True)
            with db.engine.begin() as other:
                other.execute(
                    text(
                        "INSERT INTO notes (encounter_id, patient_id, author_id, kind, text, "
                        "version, saved_at, created_at) SELECT id, patient_id, :author, "
                        "'provider', 'theirs', 1, now(), now() FROM encounters WHERE id = :id"
                    ),
                    {"author": chart.drlee, "id": encounter_id},
                )

        event.listen(db.session, "before_flush", other_click_commits_first)
        try:
            opened = notes.start_note(nurse, encounter_id, "provider")
        finally:
            event.remove(db.session, "before_flush", other_click_commits_first)
        assert raced
        assert (opened.text, opened.author_id) == ("theirs", chart.drlee)
    rows, created = _notes_and_events(app, encounter_id)
    assert [row.id for row in rows] == [opened.id]
    assert created == 0  # the loser's event was rolled back with its insert


def test_the_database_refuses_a_second_note_of_a_kind(app, chart, make_encounter, make_note):
    from sqlalchemy.exc import IntegrityError

    encounter_id = make_encounter()
    make_note(encounter_id, kind="provider")
    make_note(encounter_id, kind="nursing", author="nurse")  # another kind: fine
    with pytest.raises(IntegrityError):
        make_note(encounter_id, kind="provider")
