"""Own-account password changes and the account services admins use."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from portal.auth import services
from portal.auth.models import RecoveryCode
from portal.extensions import db
from portal.timeutil import utcnow
from portal.transaction import Refused
from tests.auth.helpers import (
    add_second_admin,
    enrol_at_sign_in,
    field_error,
    get_user,
    reset_password_by_two_admins,
    session_row,
    session_token,
    sign_in_to_gate,
)
from tests.support.audit import audit_events
from tests.support.clients import PortalClient, actor_of
from tests.support.database import PASSWORD

NEW_PASSWORD = "paper lanterns drift over the quiet harbour"


def change_password(browser, current):
    return browser.post_form(
        "/auth/account",
        {
            "current_password": current,
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
    )


def as_admin(app, action):
    """Run a service as the admin would (inside a request, like the admin pages)."""
    with app.test_request_context():
        result = action(actor_of("admin"))
        db.session.remove()
        return result


def test_guessing_the_current_password_backs_off(app, signed_in):
    browser = signed_in("nurse", through_the_form=True)
    for _ in range(5):
        response = change_password(browser, "is it this one maybe")
        assert response.status_code == 422
        assert "not correct" in field_error(response, "current_password")
    assert len(audit_events(app, "auth.lockout")) == 1
    response = change_password(browser, PASSWORD)
    assert response.status_code == 422
    assert "wait a few minutes" in field_error(response, "current_password")
    assert get_user(app, "nurse").password_hash == get_user(app, "frontdesk").password_hash
    assert browser.get("/").status_code == 200  # the session itself goes on


def test_mismatched_confirmation_keeps_the_password(app, signed_in):
    browser = signed_in("nurse")
    response = browser.post_form(
        "/auth/account",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm_password": "x"},
    )
    assert response.status_code == 422
    assert "differ" in field_error(response, "confirm_password")


def test_admin_password_reset_ends_sessions_and_the_new_password_works(app, signed_in):
    browser = signed_in("nurse", through_the_form=True)
    token = session_token(browser)
    # The nurse has no second factor: a second administrator proposed the reset first.
    reset_password_by_two_admins(app, "nurse", NEW_PASSWORD)
    assert browser.get("/").status_code == 302
    assert session_row(app, token).end_reason == "password_reset"
    again = PortalClient(app)
    assert sign_in_to_gate(again, "nurse", NEW_PASSWORD).location == "/auth/new-password"
    assert audit_events(app, "user.password_reset")[-1].username == "admin"


def test_admin_mfa_reset_sends_a_prescriber_back_to_enrolment(app, signed_in):
    browser = signed_in("prescriber", through_the_form=True)
    add_second_admin(app)
    as_admin(
        app, lambda admin: services.propose_mfa_reset(actor=admin, user=services.find_user("drlee"))
    )
    assert browser.get("/").status_code == 200  # a proposal changes nothing yet
    with app.test_request_context():
        services.approve_mfa_reset(actor=actor_of("admin2"), user=services.find_user("drlee"))
        db.session.remove()
    assert browser.get("/").status_code == 302
    user = get_user(app, "drlee")
    assert not user.mfa_enabled and user.totp_secret_encrypted is None
    again = PortalClient(app)
    again.refresh_csrf()
    response = again.post_form("/auth/sign-in", {"username": "drlee", "password": PASSWORD})
    assert response.location == "/auth/enrol-mfa"


def test_recovery_codes_are_stored_as_keyed_hashes(app):
    as_admin(
        app,
        lambda admin: services.create_user(
            actor=admin,
            username="drpatel",
            full_name="Anita Patel",
            email=None,
            roles=["prescriber"],
            password="granite orchard whistle lantern",
        ),
    )
    _, codes = enrol_at_sign_in(app, PortalClient(app), "drpatel")
    with app.app_context():
        stored = {row.code_hash for row in db.session.scalars(db.select(RecoveryCode))}
    assert len(stored) == 10
    plain = {hashlib.sha256(code.replace("-", "").encode()).hexdigest() for code in codes}
    assert not stored & plain, "a copy of the database alone must not reveal the codes"


@pytest.mark.parametrize(
    ("username", "full_name", "field"),
    [
        ("a b", "Rosa Garcia", "username"),
        ("x" * 65, "Rosa Garcia", "username"),
        ("rgarcia", "  ", "full_name"),
    ],
)
def test_create_user_checks_username_and_name(app, username, full_name, field):
    with pytest.raises(Refused) as refused:
        as_admin(
            app,
            lambda admin: services.create_user(
                actor=admin,
                username=username,
                full_name=full_name,
                email=None,
                roles=["nurse"],
                password="granite orchard whistle lantern",
            ),
        )
    assert refused.value.field == field


def test_admins_cannot_lock_themselves_out(app):
    with pytest.raises(Refused):
        as_admin(
            app,
            lambda admin: services.set_user_enabled(
                actor=admin, user=services.find_user("admin"), enabled=False
            ),
        )
    with pytest.raises(Refused):
        as_admin(
            app,
            lambda admin: services.update_user(
                actor=admin,
                user=services.find_user("admin"),
                full_name="Pat Kim",
                email=None,
                roles=["nurse"],
            ),
        )
    assert get_user(app, "admin").is_enabled


def test_enabling_a_user_again_clears_the_back_off(app):
    nurse_locked = {"failed_sign_ins": 7, "locked_until": utcnow() + timedelta(hours=1)}
    with app.app_context():
        db.session.execute(
            db.update(services.User).where(services.User.username == "nurse").values(**nurse_locked)
        )
        db.session.commit()
    as_admin(
        app,
        lambda admin: services.set_user_enabled(
            actor=admin, user=services.find_user("nurse"), enabled=False
        ),
    )
    as_admin(
        app,
        lambda admin: services.set_user_enabled(
            actor=admin, user=services.find_user("nurse"), enabled=True
        ),
    )
    PortalClient(app).sign_in("nurse")
