"""Server-side sessions: opaque cookie, rotation, time-outs, resume, and ending sessions."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from sqlalchemy import text

from portal.auth import services
from portal.auth.models import ServerSession
from portal.extensions import db
from tests.auth.helpers import age_session, page_text, session_row, session_token
from tests.support.audit import audit_events
from tests.support.clients import PortalClient, actor_of
from tests.support.database import PASSWORD

NEW_PASSWORD = "paper lanterns drift over the quiet harbour"


def with_cookie(app, token: str) -> PortalClient:
    """A second browser that presents a copied session cookie."""
    other = PortalClient(app)
    other.client.set_cookie("portal_session", token)
    return other


def live_sessions(app, username: str) -> list[ServerSession]:
    with app.app_context():
        user_id = services.find_user(username).id
        query = db.select(ServerSession).where(
            ServerSession.user_id == user_id, ServerSession.ended_at.is_(None)
        )
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
        return rows


def test_the_cookie_carries_only_a_random_token_whose_hash_is_stored(app, signed_in):
    browser = signed_in("nurse", through_the_form=True)
    token = session_token(browser)
    assert token and len(token) >= 40
    row = session_row(app, token)
    assert row is not None and row.ended_at is None
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    # The token itself is nowhere in the table: not as a key, not inside the data.
    with app.app_context():
        dump = db.session.execute(text("SELECT * FROM server_sessions")).all()
    assert token not in repr(dump)
    assert "nurse" not in (row.data or "")  # the user is an id, not a name


def test_the_session_id_rotates_at_sign_in_and_the_old_one_stops_working(app, client):
    client.refresh_csrf()
    before = session_token(client)
    assert before
    client.sign_in("nurse")
    after = session_token(client)
    assert after != before
    assert session_row(app, before).ended_at is not None
    old_browser = with_cookie(app, before)
    assert old_browser.get("/").status_code == 302


def test_the_session_id_rotates_at_sign_in_with_a_second_factor(app, client):
    client.refresh_csrf()
    before = session_token(client)
    client.sign_in("drlee")
    assert session_token(client) != before
    assert with_cookie(app, before).get("/").status_code == 302


def test_idle_time_out_defaults_to_15_minutes(app, signed_in):
    assert app.config["SESSION_IDLE_MINUTES"] == 15
    browser = signed_in("nurse", through_the_form=True)
    token = session_token(browser)
    age_session(app, token, last_seen_at=timedelta(minutes=14))
    assert browser.get("/").status_code == 200
    age_session(app, token, last_seen_at=timedelta(minutes=16))
    response = browser.get("/")
    assert response.status_code == 302
    assert response.location == "/auth/sign-in"
    row = session_row(app, token)
    assert row.end_reason == "idle" and row.data == "{}"
    assert "Your session timed out" in page_text(browser.get("/auth/sign-in"))


def test_static_files_neither_use_nor_end_a_session(app, signed_in):
    """A lazy favicon fetch after the time-out must not be what notices it: the next real
    request still knows whose session timed out."""
    browser = signed_in("nurse", through_the_form=True)
    token = session_token(browser)
    age_session(app, token, last_seen_at=timedelta(minutes=20))
    static = browser.get("/static/css/portal.css")
    assert static.status_code == 200
    assert "Set-Cookie" not in static.headers
    assert session_row(app, token).ended_at is None  # untouched by the static request
    assert browser.get("/").location == "/auth/sign-in"
    assert "Your session timed out" in page_text(browser.get("/auth/sign-in"))


def test_absolute_lifetime_ends_an_active_session(app, signed_in):
    browser = signed_in("nurse", through_the_form=True)
    token = session_token(browser)
    age_session(app, token, created_at=timedelta(hours=13))
    assert browser.get("/").status_code == 302
    assert session_row(app, token).end_reason == "expired"


def test_a_plain_get_after_time_out_returns_to_that_page(app, notes_page, signed_in):
    browser = signed_in("nurse", through_the_form=True)
    age_session(app, session_token(browser), last_seen_at=timedelta(minutes=20))
    response = browser.get(notes_page + "?tab=history")
    assert response.location == "/auth/sign-in"
    response = browser.sign_in("nurse")
    assert response.location == notes_page + "?tab=history"


def time_out_while_posting(app, notes_page, browser):
    browser.get(notes_page)
    age_session(app, session_token(browser), last_seen_at=timedelta(minutes=20))
    return browser.post_form(
        notes_page,
        {"note": 'Called back <b>re</b> "results"', "kind": "phone", "password": "hunter2"},
        headers={"Referer": "http://localhost" + notes_page},
    )


def test_a_form_posted_after_time_out_is_offered_back_to_the_same_user(app, notes_page, signed_in):
    browser = signed_in("nurse", through_the_form=True)
    response = time_out_while_posting(app, notes_page, browser)
    assert response.status_code == 302, "the timed-out form must not fail the CSRF check"
    assert response.location == "/auth/sign-in"
    assert "saved note" not in page_text(response)

    response = browser.sign_in("nurse")
    assert response.location == "/auth/resume"
    page = browser.get("/auth/resume")
    assert page.status_code == 200
    text = page_text(page)
    assert f'action="{notes_page}"' in text
    assert 'value="Called back &lt;b&gt;re&lt;/b&gt; &#34;results&#34;"' in text
    assert "hunter2" not in text  # passwords are never kept
    token = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)
    response = browser.client.post(
        notes_page,
        data={"csrf_token": token, "note": 'Called back <b>re</b> "results"', "kind": "phone"},
    )
    assert page_text(response) == 'saved note: Called back <b>re</b> "results" / phone'
    # Sent again: no longer offered.
    assert browser.get("/auth/resume").location == "/"


def test_a_different_user_never_sees_the_saved_form(app, notes_page, signed_in):
    browser = signed_in("nurse", through_the_form=True)
    time_out_while_posting(app, notes_page, browser)
    response = browser.sign_in("frontdesk")
    assert response.location == "/"
    assert browser.get("/auth/resume").location == "/"
    with app.app_context():
        rows = db.session.execute(text("SELECT data FROM server_sessions")).all()
    assert not any("Called back" in (row.data or "") for row in rows)


def test_the_saved_form_can_be_discarded(app, notes_page, signed_in):
    browser = signed_in("nurse", through_the_form=True)
    time_out_while_posting(app, notes_page, browser)
    browser.sign_in("nurse")
    response = browser.post_form("/auth/resume/discard")
    assert response.location == notes_page
    assert browser.get("/auth/resume").location == "/"


def test_htmx_request_after_time_out_is_redirected_to_sign_in(app, notes_page, signed_in):
    browser = signed_in("nurse", through_the_form=True)
    age_session(app, session_token(browser), last_seen_at=timedelta(minutes=20))
    response = browser.client.get(
        "/patients/1",
        headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/test-notes?x=1"},
    )
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/auth/sign-in"
    assert browser.sign_in("nurse").location == "/test-notes?x=1"


def test_htmx_post_with_a_foreign_current_url_does_not_redirect_off_site(app, signed_in):
    browser = signed_in("nurse", through_the_form=True)
    age_session(app, session_token(browser), last_seen_at=timedelta(minutes=20))
    browser.client.get(
        "/", headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/\\evil.example"}
    )
    assert browser.sign_in("nurse").location == "/"


def test_sign_out_ends_the_session_on_the_server(app, signed_in):
    browser = signed_in("nurse", through_the_form=True)
    token = session_token(browser)
    browser.post_form("/auth/sign-out")
    assert session_row(app, token).end_reason == "signed_out"
    assert with_cookie(app, token).get("/").status_code == 302


def test_disabling_a_user_ends_their_sessions(app, signed_in):
    browser = signed_in("nurse", through_the_form=True)
    token = session_token(browser)
    with app.test_request_context():
        services.set_user_enabled(
            actor=actor_of("admin"), user=services.find_user("nurse"), enabled=False
        )
        db.session.remove()
    assert browser.get("/").status_code == 302
    assert session_row(app, token).end_reason == "disabled"


def test_a_password_change_ends_other_sessions_and_renews_the_current_one(app, signed_in):
    here = signed_in("nurse", through_the_form=True)
    elsewhere = signed_in("nurse", through_the_form=True)
    old_token = session_token(here)
    response = here.post_form(
        "/auth/account",
        {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    assert "Password changed" in page_text(here.get("/auth/account"))
    assert here.get("/").status_code == 200
    assert session_token(here) != old_token
    assert with_cookie(app, old_token).get("/").status_code == 302
    assert elsewhere.get("/").status_code == 302
    assert len(live_sessions(app, "nurse")) == 1
    assert [e.username for e in audit_events(app, "auth.password_changed")] == ["nurse"]


def test_a_wrong_current_password_changes_nothing(app, signed_in):
    here = signed_in("nurse", through_the_form=True)
    elsewhere = signed_in("nurse", through_the_form=True)
    response = here.post_form(
        "/auth/account",
        {
            "current_password": "not my password at all",
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
    )
    assert response.status_code == 422
    assert elsewhere.get("/").status_code == 200


def test_an_admin_can_end_a_users_sessions(app, signed_in):
    first = signed_in("nurse", through_the_form=True)
    second = signed_in("nurse", through_the_form=True)
    with app.test_request_context():
        count = services.end_sessions(actor=actor_of("admin"), user=services.find_user("nurse"))
        db.session.remove()
    assert count == 2
    assert first.get("/").status_code == 302
    assert second.get("/").status_code == 302
    event = audit_events(app, "user.sessions_ended")[-1]
    assert event.username == "admin" and event.object_type == "users"


def test_the_idle_time_out_is_configurable(app, signed_in):
    app.config["SESSION_IDLE_MINUTES"] = 5
    browser = signed_in("nurse", through_the_form=True)
    age_session(app, session_token(browser), last_seen_at=timedelta(minutes=6))
    assert browser.get("/").status_code == 302


def test_absolute_lifetime_defaults_to_12_hours(app, signed_in):
    assert app.config["SESSION_ABSOLUTE_HOURS"] == 12
    browser = signed_in("nurse", through_the_form=True)
    age_session(app, session_token(browser), created_at=timedelta(hours=11, minutes=50))
    assert browser.get("/").status_code == 200


def test_a_form_from_a_browser_that_never_signed_in_is_not_kept(app, notes_page, client):
    client.refresh_csrf()
    response = client.post_form(
        notes_page, {"note": "anonymous text"}, headers={"Referer": "http://localhost/"}
    )
    assert response.location == "/auth/sign-in"
    assert client.sign_in("nurse").location == "/"
    assert client.get("/auth/resume").location == "/"
    with app.app_context():
        rows = db.session.execute(text("SELECT data FROM server_sessions")).all()
    assert not any("anonymous text" in (row.data or "") for row in rows)


def test_an_htmx_form_posted_after_time_out_is_kept_too(app, notes_page, signed_in):
    browser = signed_in("nurse", through_the_form=True)
    age_session(app, session_token(browser), last_seen_at=timedelta(minutes=20))
    response = browser.htmx_post(
        notes_page,
        {"note": "typed into a panel", "kind": "inline"},
        headers={"HX-Current-URL": "http://localhost/?panel=notes"},
    )
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/auth/sign-in"
    assert browser.sign_in("nurse").location == "/auth/resume"
    page = page_text(browser.get("/auth/resume"))
    assert f'action="{notes_page}"' in page
    assert 'value="typed into a panel"' in page
    assert 'href="/?panel=notes"' in page  # "go to the page" returns to where the user was


def test_the_saved_form_survives_the_second_factor(app, notes_page, signed_in):
    browser = signed_in("prescriber", through_the_form=True)
    time_out_while_posting(app, notes_page, browser)
    assert browser.sign_in("drlee").location == "/auth/resume"
    assert 'value="phone"' in page_text(browser.get("/auth/resume"))
