"""Sign-in with a password: one message for every failure, per-account back-off, audit."""

from __future__ import annotations

import re
from datetime import timedelta

from portal.auth import services
from portal.extensions import db
from portal.timeutil import utcnow
from tests.auth.helpers import field_error, get_user, page_text, update_user
from tests.support.audit import audit_events
from tests.support.clients import actor_of
from tests.support.database import PASSWORD

WRONG = "not the right password at all"


def attempt(client, username, password, address="192.0.2.10"):
    return client.post_form(
        "/auth/sign-in",
        {"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def normalised_page(response, username: str) -> str:
    """The page with what legitimately differs between two requests taken out."""
    text = page_text(response)
    text = re.sub(r'nonce="[^"]+"', "", text)
    text = re.sub(
        r'(name="csrf-token" content|name="csrf_token" type="hidden" value)="[^"]+"', "", text
    )
    text = re.sub(r'id="csrf_token"[^>]*>', "", text)
    return text.replace(f'value="{username}"', "")


def test_password_sign_in_lands_on_home_and_is_audited(app, client):
    response = attempt(client, "nurse", PASSWORD)
    assert response.status_code == 302
    assert response.location == "/"
    assert client.get("/").status_code == 200
    event = audit_events(app, "auth.sign_in")[-1]
    assert event.username == "nurse"
    assert event.outcome == "success"
    assert event.source == "192.0.2.10"


def test_username_is_case_insensitive(client):
    assert attempt(client, "  NURSE ", PASSWORD).status_code == 302


def test_the_failure_message_is_identical_for_every_kind_of_failure(app, client):
    # A disabled account, and one that is backing off.
    update_user(app, "frontdesk", is_enabled=False)
    update_user(app, "drlee", locked_until=utcnow() + timedelta(minutes=5))
    cases = {
        "unknown account": ("nobody", PASSWORD),
        "wrong password": ("nurse", WRONG),
        "backing off (right password)": ("drlee", PASSWORD),
        "disabled (right password)": ("frontdesk", PASSWORD),
    }
    pages = {}
    for case, (username, password) in cases.items():
        response = attempt(client, username, password)
        assert response.status_code == 401, case
        assert "Sign-in failed" in field_error(response, "password"), case
        pages[case] = normalised_page(response, username)
    assert len(set(pages.values())) == 1, "the pages differ between kinds of failure"
    failures = [event.detail for event in audit_events(app) if event.outcome == "denied"]
    assert "unknown account" in failures
    assert "wrong password" in failures
    assert "account backing off" in failures
    assert "account disabled" in failures


def test_back_off_after_five_failures_whatever_the_source_address(app, client):
    for attempt_number in range(5):
        response = attempt(client, "nurse", WRONG, address=f"198.51.100.{attempt_number + 1}")
        assert response.status_code == 401
    user = get_user(app, "nurse")
    assert user.failed_sign_ins == 5
    assert user.locked_until > utcnow()
    # During the back-off even the right password fails, from yet another address.
    response = attempt(client, "nurse", PASSWORD, address="203.0.113.77")
    assert response.status_code == 401
    assert client.get("/").status_code == 302
    lockouts = audit_events(app, "auth.lockout")
    assert len(lockouts) == 1
    assert lockouts[0].username == "nurse"
    assert "locked for 30 s" in lockouts[0].detail
    # Every attempt is in the audit trail with its source address, the refused one too.
    failed = audit_events(app, "auth.sign_in_failed")
    assert [e.source for e in failed] == [f"198.51.100.{n}" for n in range(1, 6)] + ["203.0.113.77"]
    assert failed[-1].detail == "account backing off"


def test_back_off_grows_exponentially_and_each_lockout_is_audited(app, client):
    for _ in range(5):
        attempt(client, "nurse", WRONG)
    for expected in (60, 120, 240):
        update_user(app, "nurse", locked_until=utcnow() - timedelta(seconds=1))  # time passes
        attempt(client, "nurse", WRONG)
        assert f"locked for {expected} s" in audit_events(app, "auth.lockout")[-1].detail
    assert len(audit_events(app, "auth.lockout")) == 4
    locked_until = get_user(app, "nurse").locked_until
    assert timedelta(seconds=230) < locked_until - utcnow() <= timedelta(seconds=240)


def test_back_off_is_capped(app, client):
    app.config["LOGIN_BACKOFF_MAX_SECONDS"] = 100
    update_user(app, "nurse", failed_sign_ins=20)
    attempt(client, "nurse", WRONG)
    assert "locked for 100 s" in audit_events(app, "auth.lockout")[-1].detail


def test_after_the_back_off_the_right_password_works_and_clears_the_count(app, client):
    for _ in range(5):
        attempt(client, "nurse", WRONG)
    update_user(app, "nurse", locked_until=utcnow() - timedelta(seconds=1))
    assert attempt(client, "nurse", PASSWORD).status_code == 302
    user = get_user(app, "nurse")
    assert user.failed_sign_ins == 0
    assert user.locked_until is None


def test_sign_out_ends_the_session_and_is_audited(app, signed_in):
    browser = signed_in("nurse", through_the_form=True)
    response = browser.post_form("/auth/sign-out")
    assert response.status_code == 302
    assert response.location == "/auth/sign-in"
    assert "You are signed out" in page_text(browser.get("/auth/sign-in"))
    assert browser.get("/").status_code == 302
    event = audit_events(app, "auth.sign_out")[-1]
    assert event.username == "nurse"


def test_a_disabled_user_cannot_sign_in(app, client):
    with app.test_request_context():
        nurse = services.find_user("nurse")
        services.set_user_enabled(actor=actor_of("admin"), user=nurse, enabled=False)
        db.session.remove()
    assert attempt(client, "nurse", PASSWORD).status_code == 401


def test_a_signed_in_user_visiting_sign_in_goes_home(signed_in):
    browser = signed_in("nurse", through_the_form=True)
    assert browser.get("/auth/sign-in").location == "/"


def test_sign_out_only_accepts_post(signed_in):
    browser = signed_in("nurse", through_the_form=True)
    assert browser.get("/auth/sign-out").status_code == 405
    assert browser.get("/").status_code == 200


def test_missing_fields_are_reported_next_to_the_field(client):
    response = client.post_form("/auth/sign-in", {"username": "nurse", "password": ""})
    assert response.status_code == 422
    assert field_error(response, "password")
    assert 'value="nurse"' in page_text(response)  # what was typed is kept
