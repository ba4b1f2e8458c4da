"""The TOTP second factor: required roles, enrolment, recovery codes, replay, back-off."""

from __future__ import annotations

import json
import re

from portal.auth.models import RecoveryCode, ServerSession
from portal.auth.sessions import hash_token
from portal.extensions import db
from portal.timeutil import utcnow
from tests.auth.helpers import (
    NEW_USER_PASSWORD,
    create_user,
    enrol_at_sign_in,
    field_error,
    get_user,
    page_text,
    password_step,
    session_row,
    session_token,
    shown_key,
    shown_recovery_codes,
    totp_code,
)
from tests.support.audit import audit_events
from tests.support.clients import PortalClient
from tests.support.database import TOTP_SECRETS


def test_prescriber_must_pass_the_second_factor(app, client):
    response = password_step(client, "drlee")
    assert response.status_code == 302
    assert response.location == "/auth/second-factor"
    page = client.get("/auth/second-factor")
    text = page_text(page)
    assert 'autocomplete="one-time-code"' in text
    assert 'inputmode="numeric"' in text
    # The code cannot be skipped: the home page still treats the browser as signed out.
    assert client.get("/").status_code == 302
    assert client.get("/").location == "/auth/sign-in"
    response = client.post_form("/auth/second-factor", {"code": totp_code(TOTP_SECRETS["drlee"])})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert audit_events(app, "auth.sign_in")[-1].detail == "password + totp"


def test_wrong_code_shows_a_message_next_to_the_field_and_counts_as_a_failure(app, client):
    password_step(client, "drlee")
    wrong = "000000" if totp_code(TOTP_SECRETS["drlee"]) != "000000" else "111111"
    response = client.post_form("/auth/second-factor", {"code": wrong})
    assert response.status_code == 401
    assert "didn't work" in field_error(response, "code")
    assert get_user(app, "drlee").failed_sign_ins == 1
    # Still at the second step: the right code now works.
    response = client.post_form("/auth/second-factor", {"code": totp_code(TOTP_SECRETS["drlee"])})
    assert response.status_code == 302
    assert get_user(app, "drlee").failed_sign_ins == 0


def test_guessing_codes_backs_off_even_with_the_right_password(app, client):
    for _ in range(5):
        password_step(client, "drlee")
        client.post_form("/auth/second-factor", {"code": "123456x"})
    assert len(audit_events(app, "auth.lockout")) == 1
    # The right code is refused now, and so is starting over with the right password.
    response = client.post_form("/auth/second-factor", {"code": totp_code(TOTP_SECRETS["drlee"])})
    assert response.status_code == 401
    assert password_step(client, "drlee").status_code == 401
    assert client.get("/").status_code == 302


def test_a_totp_code_cannot_be_replayed(app, client):
    code = totp_code(TOTP_SECRETS["drlee"])
    password_step(client, "drlee")
    assert client.post_form("/auth/second-factor", {"code": code}).status_code == 302
    client.refresh_csrf("/")
    client.post_form("/auth/sign-out")
    password_step(client, "drlee")
    response = client.post_form("/auth/second-factor", {"code": code})
    assert response.status_code == 401
    assert client.get("/").status_code == 302


def test_role_without_mfa_is_sent_to_enrolment_and_gets_recovery_codes(app, client):
    create_user(app, "drpatel", "Anita Patel", ["prescriber"])
    response = password_step(client, "drpatel", NEW_USER_PASSWORD)
    assert response.location == "/auth/enrol-mfa"
    assert client.get("/").status_code == 302  # not signed in yet
    page = client.get("/auth/enrol-mfa")
    assert page.status_code == 200
    text = page_text(page)
    assert "<svg" in text and 'class="qr-code"' in text
    assert re.search(r'<svg viewBox="[^"]+" class="qr-code"', text), "sized by CSS, not cropped"
    secret = shown_key(page)
    assert len(secret) >= 16

    wrong = "000000" if totp_code(secret) != "000000" else "111111"
    response = client.post_form("/auth/enrol-mfa", {"code": wrong})
    assert response.status_code == 422
    assert "doesn't match" in field_error(response, "code")
    assert shown_key(response) == secret  # the same key: the phone already has it

    response = client.post_form("/auth/enrol-mfa", {"code": totp_code(secret)})
    assert response.status_code == 200
    codes = shown_recovery_codes(response)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert client.get("/").status_code == 200
    user = get_user(app, "drpatel")
    assert user.mfa_enabled
    assert secret not in (user.totp_secret_encrypted or "")  # encrypted at rest
    # Only hashes are stored, and the codes are not shown again.
    with app.app_context():
        stored = [row.code_hash for row in db.session.scalars(db.select(RecoveryCode))]
    assert not set(codes) & set(stored)
    account = page_text(client.get("/auth/account"))
    assert "Recovery codes left: <strong>10</strong>" in account
    assert not any(code in account for code in codes)
    assert [e.username for e in audit_events(app, "auth.mfa_enrolled")] == ["drpatel"]


def test_a_recovery_code_works_once(app):
    create_user(app, "drpatel", "Anita Patel", ["prescriber"])
    _, codes = enrol_at_sign_in(app, PortalClient(app), "drpatel")
    first = PortalClient(app)
    password_step(first, "drpatel", NEW_USER_PASSWORD)
    response = first.post_form("/auth/second-factor", {"recovery_code": codes[0].upper()})
    assert response.status_code == 302
    assert first.get("/").status_code == 200
    assert audit_events(app, "auth.sign_in")[-1].detail == "password + recovery code"

    second = PortalClient(app)
    password_step(second, "drpatel", NEW_USER_PASSWORD)
    response = second.post_form("/auth/second-factor", {"recovery_code": codes[0]})
    assert response.status_code == 401
    assert field_error(response, "recovery_code")
    assert second.get("/").status_code == 302
    assert "Recovery codes left: <strong>9</strong>" in page_text(first.get("/auth/account"))


def test_required_roles_are_configurable(app, client):
    app.config["MFA_REQUIRED_ROLES"] = ("nurse",)
    create_user(app, "drpatel", "Anita Patel", ["prescriber"])
    assert password_step(client, "nurse").location == "/auth/enrol-mfa"
    other = PortalClient(app)
    assert password_step(other, "drpatel", NEW_USER_PASSWORD).location == "/"


def test_optional_enrolment_from_the_account_page(app, signed_in):
    browser = signed_in("nurse", through_the_form=True)
    account = page_text(browser.get("/auth/account"))
    assert "/auth/enrol-mfa" in account
    page = browser.get("/auth/enrol-mfa")
    secret = shown_key(page)
    response = browser.post_form("/auth/enrol-mfa", {"code": totp_code(secret)})
    assert len(shown_recovery_codes(response)) == 10
    assert 'href="/auth/account"' in page_text(response)
    # The next sign-in asks for a code.
    later = PortalClient(app)
    assert password_step(later, "nurse").location == "/auth/second-factor"
    # The enrolment's own code was used: it cannot sign in again.
    step_code = totp_code(secret)
    response = later.post_form("/auth/second-factor", {"code": step_code})
    assert response.status_code == 401
    # A second enrolment would silently replace the working factor: refused.
    assert browser.get("/auth/enrol-mfa").location == "/auth/account"


def test_pending_second_step_expires(app, client):
    password_step(client, "drlee")
    token = session_token(client)
    assert session_row(app, token).user_id is None  # half signed in is not signed in
    # Move the time of the password step back past the limit.
    with app.app_context():
        row = db.session.get(ServerSession, hash_token(token))
        data = json.loads(row.data)
        data["pending_sign_in"]["since"] = utcnow().timestamp() - 11 * 60
        row.data = json.dumps(data)
        db.session.commit()
    response = client.post_form("/auth/second-factor", {"code": totp_code(TOTP_SECRETS["drlee"])})
    assert response.status_code == 302
    assert response.location == "/auth/sign-in"
    assert client.get("/").status_code == 302


def test_knowing_the_password_does_not_allow_enrolling_a_new_authenticator(app, client):
    """Half signed in as a user who has MFA: enrolment is closed, so the code can't be
    bypassed by registering an attacker's own app."""
    before = get_user(app, "drlee").totp_secret_encrypted
    password_step(client, "drlee")
    assert client.get("/auth/enrol-mfa").location == "/auth/second-factor"
    response = client.post_form("/auth/enrol-mfa", {"code": "123456"})
    assert response.location == "/auth/second-factor"
    assert get_user(app, "drlee").totp_secret_encrypted == before
    assert client.get("/").status_code == 302


def test_enrolment_needs_the_password_step_first(client):
    assert client.get("/auth/enrol-mfa").location == "/auth/sign-in"
    assert client.get("/auth/second-factor").location == "/auth/sign-in"
