"""Device cookies: a browser that signed in to an account before gets through the account's
back-off, so knowing a username is not enough to lock its owner out; unknown browsers are
still slowed, and a known browser that fails backs off on its own. All of it audited."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.auth import services
from portal.auth.models import SignInDevice
from portal.extensions import db
from portal.timeutil import utcnow
from tests.auth.helpers import field_error, get_user, reset_password_by_two_admins, update_user
from tests.support.audit import audit_events
from tests.support.clients import PortalClient, actor_of, fresh_totp
from tests.support.database import PASSWORD

WRONG = "not the right password at all"
COOKIE = "portal_device"


def attempt(client, username, password, address="192.0.2.10"):
    return client.post_form(
        "/auth/sign-in",
        {"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def sign_out(browser: PortalClient) -> None:
    browser.refresh_csrf("/")
    assert browser.post_form("/auth/sign-out").status_code == 302
    browser.refresh_csrf()


def own_workstation(app, username: str) -> PortalClient:
    """A browser the user signed in on (through the form) and then signed out of."""
    browser = PortalClient(app)
    browser.sign_in(username)
    sign_out(browser)
    return browser


def lock_out(app, username: str) -> PortalClient:
    """Someone elsewhere who knows the username guesses until the account backs off."""
    attacker = PortalClient(app)
    for n in range(5):
        assert attempt(attacker, username, WRONG, address=f"203.0.113.{n + 1}").status_code == 401
    assert get_user(app, username).locked_until > utcnow()
    return attacker


def device_cookie(browser: PortalClient) -> str | None:
    cookie = browser.client.get_cookie(COOKIE)
    return cookie.value if cookie else None


def test_a_known_browser_signs_in_while_guessing_elsewhere_keeps_the_account_backing_off(app):
    workstation = own_workstation(app, "nurse")
    attacker = lock_out(app, "nurse")

    response = attempt(workstation, "nurse", PASSWORD)
    assert response.status_code == 302
    assert workstation.get("/").status_code == 200
    assert audit_events(app, "auth.sign_in")[-1].detail == "password; known device"
    # Whoever guesses elsewhere is still slowed, even with the right password ...
    assert attempt(attacker, "nurse", PASSWORD).status_code == 401
    assert audit_events(app, "auth.sign_in_failed")[-1].detail == "account backing off"
    assert attempt(PortalClient(app), "nurse", PASSWORD).status_code == 401
    # ... and the owner's sign-in did not lift the account's back-off for them.
    assert get_user(app, "nurse").locked_until > utcnow()


def test_the_device_cookie_is_signed_httponly_samesite_and_private_to_this_site(app):
    browser = PortalClient(app)
    response = attempt(browser, "nurse", PASSWORD)
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE))
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=strict" in header.lower()
    assert "secure" not in attributes  # plain HTTP (development): a Secure cookie is lost
    # Only the nonce's hash is kept on the server.
    with app.app_context():
        rows = db.session.scalars(db.select(SignInDevice)).all()
        assert len(rows) == 1
        assert rows[0].nonce_hash not in device_cookie(browser)


def test_behind_https_the_device_cookie_is_secure_and_host_only(app):
    app.config["HTTPS"] = True
    browser = PortalClient(app)
    browser.client.environ_base["wsgi.url_scheme"] = "https"
    response = attempt(browser, "nurse", PASSWORD)
    assert response.status_code == 302
    header = next(
        h for h in response.headers.getlist("Set-Cookie") if h.startswith("__Host-portal_device=")
    )
    assert "Secure" in header and "HttpOnly" in header and "Path=/" in header
    assert "Domain" not in header


@pytest.mark.parametrize("how", ["forged", "another account's", "copied before a newer sign-in"])
def test_only_a_genuine_current_cookie_for_this_account_gets_through(app, how):
    workstation = own_workstation(app, "nurse")
    genuine = device_cookie(workstation)
    if how == "forged":
        value = genuine[:-3] + ("AAA" if genuine[-3:] != "AAA" else "BBB")
    elif how == "another account's":
        value = device_cookie(own_workstation(app, "frontdesk"))
    else:
        value = genuine
        assert attempt(workstation, "nurse", PASSWORD).status_code == 302  # a new nonce
        assert device_cookie(workstation) != genuine
    lock_out(app, "nurse")
    stranger = PortalClient(app)
    stranger.client.set_cookie(COOKIE, value)
    response = attempt(stranger, "nurse", PASSWORD)
    assert response.status_code == 401
    assert "Sign-in failed" in field_error(response, "password")


def test_a_known_browser_that_fails_backs_off_on_its_own(app):
    workstation = own_workstation(app, "nurse")
    for _ in range(4):
        assert attempt(workstation, "nurse", WRONG).status_code == 401
    assert audit_events(app, "auth.device_lockout") == []
    assert attempt(workstation, "nurse", WRONG).status_code == 401
    lockout = audit_events(app, "auth.device_lockout")[-1]
    assert lockout.username == "nurse"
    assert "5 failures from a known device; locked for 30 s" in lockout.detail
    # Now even the right password is refused from this browser ...
    assert attempt(workstation, "nurse", PASSWORD).status_code == 401
    assert audit_events(app, "auth.sign_in_failed")[-1].detail == "known device backing off"
    # ... while the account itself counted none of it: elsewhere, the owner signs in.
    assert get_user(app, "nurse").failed_sign_ins == 0
    assert attempt(PortalClient(app), "nurse", PASSWORD).status_code == 302


def test_lifting_a_device_lockout_and_an_account_lockout_is_audited(app):
    workstation = own_workstation(app, "nurse")
    for _ in range(5):
        attempt(workstation, "nurse", WRONG)
    with app.app_context():
        db.session.execute(
            db.update(SignInDevice).values(locked_until=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    assert attempt(workstation, "nurse", PASSWORD).status_code == 302
    lifted = audit_events(app, "auth.device_lockout_lifted")
    assert [e.detail for e in lifted] == ["signed in on the known device after 5 failures"]

    lock_out(app, "frontdesk")
    update_user(app, "frontdesk", locked_until=utcnow() - timedelta(seconds=1))  # time passes
    assert attempt(PortalClient(app), "frontdesk", PASSWORD).status_code == 302
    lifted = audit_events(app, "auth.lockout_lifted")[-1]
    assert (lifted.username, lifted.detail) == ("frontdesk", "signed in after 5 failures")
    assert get_user(app, "frontdesk").locked_until is None


def test_a_known_browser_gets_through_at_the_second_factor_too(app):
    workstation = own_workstation(app, "drlee")
    lock_out(app, "drlee")
    response = attempt(workstation, "drlee", PASSWORD)
    assert response.location.endswith("/auth/second-factor")
    response = workstation.post_form("/auth/second-factor", {"code": fresh_totp(app, "drlee")})
    assert response.status_code == 302
    assert workstation.get("/").status_code == 200
    assert audit_events(app, "auth.sign_in")[-1].detail == "password + totp; known device"


def test_a_shared_workstation_keeps_a_device_cookie_for_each_colleague(app):
    workstation = PortalClient(app)
    for username in ("nurse", "frontdesk"):
        assert attempt(workstation, username, PASSWORD).status_code == 302
        sign_out(workstation)
    lock_out(app, "nurse")
    lock_out(app, "frontdesk")
    for username in ("nurse", "frontdesk"):
        assert attempt(workstation, username, PASSWORD).status_code == 302, username
        sign_out(workstation)


def test_a_device_unused_for_longer_than_the_cookie_lives_is_unknown_again(app):
    workstation = own_workstation(app, "nurse")
    with app.app_context():
        db.session.execute(
            db.update(SignInDevice).values(last_used_at=utcnow() - timedelta(days=91))
        )
        db.session.commit()
    lock_out(app, "nurse")
    assert attempt(workstation, "nurse", PASSWORD).status_code == 401


def known_devices(app, username: str) -> int:
    with app.app_context():
        user_id = get_user(app, username).id
        return db.session.query(SignInDevice).filter_by(user_id=user_id).count()


def test_a_reset_password_or_a_disabled_account_forgets_its_known_browsers(app):
    """The account may have been in other hands: no browser keeps its way past the account's
    back-off once an administrator resets its password or disables it."""
    workstation = own_workstation(app, "nurse")
    assert known_devices(app, "nurse") == 1
    reset_password_by_two_admins(app, "nurse", "velvet harbour lantern 42")
    assert known_devices(app, "nurse") == 0
    lock_out(app, "nurse")
    assert attempt(workstation, "nurse", "velvet harbour lantern 42").status_code == 401

    frontdesk = own_workstation(app, "frontdesk")
    assert known_devices(app, "frontdesk") == 1
    with app.test_request_context():
        user = services.find_user("frontdesk")
        services.set_user_enabled(actor=actor_of("admin"), user=user, enabled=False)
        db.session.remove()
    assert known_devices(app, "frontdesk") == 0
    assert device_cookie(frontdesk) is not None  # the browser still holds it: it opens nothing
