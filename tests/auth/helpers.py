"""Helpers for the sign-in and session tests: reading and changing the database as the
server left it (sessions, accounts), TOTP codes, what a page shows next to a field."""

from __future__ import annotations

import hashlib
import html
import re
from datetime import timedelta

import pyotp

from portal.auth import services
from portal.auth.models import ServerSession, User, UserRole
from portal.crypto import encrypt_text
from portal.extensions import db
from portal.timeutil import utcnow
from tests.support.clients import actor_of
from tests.support.database import PASSWORD

COOKIE = "portal_session"


def session_token(portal_client, name: str = COOKIE) -> str | None:
    cookie = portal_client.client.get_cookie(name)
    return cookie.value if cookie else None


def session_row(app, token: str) -> ServerSession | None:
    with app.app_context():
        row = db.session.get(ServerSession, hashlib.sha256(token.encode()).hexdigest())
        db.session.expunge_all()
        return row


def get_user(app, username: str) -> User:
    with app.app_context():
        user = db.session.scalars(db.select(User).filter_by(username=username)).one()
        user.roles  # noqa: B018  (load the roles before the session closes)
        db.session.expunge_all()
        return user


def update_user(app, username: str, **values) -> None:
    with app.app_context():
        db.session.execute(db.update(User).where(User.username == username).values(**values))
        db.session.commit()


def age_session(app, token: str, **deltas: timedelta) -> None:
    """Move a session's timestamps into the past, as if time had gone by."""
    with app.app_context():
        row = db.session.get(ServerSession, hashlib.sha256(token.encode()).hexdigest())
        for column, delta in deltas.items():
            setattr(row, column, getattr(row, column) - delta)
        db.session.commit()


def totp_code(secret: str, offset_steps: int = 0) -> str:
    step = int(utcnow().timestamp()) // 30 + offset_steps
    return pyotp.TOTP(secret).at(step * 30)


def page_text(response) -> str:
    return response.get_data(as_text=True)


def field_error(response, field_id: str) -> str | None:
    """The message shown next to a field (the forms macro puts it in #<id>-error)."""
    match = re.search(rf'id="{field_id}-error">(.*?)</div>', page_text(response), re.S)
    return html.unescape(match.group(1).strip()) if match else None


# Signing up and enrolling a second factor, as a new user does.

NEW_USER_PASSWORD = "granite orchard whistle lantern"


def create_user(app, username, full_name, roles):
    with app.test_request_context():
        services.create_user(
            actor=actor_of("admin"),
            username=username,
            full_name=full_name,
            email=None,
            roles=roles,
            password=NEW_USER_PASSWORD,
        )
        db.session.remove()


def password_step(client, username, password=PASSWORD):
    client.refresh_csrf()
    return client.post_form("/auth/sign-in", {"username": username, "password": password})


def shown_key(response) -> str:
    match = re.search(r'id="totp-key">(.*?)</code>', page_text(response), re.S)
    assert match, "the enrolment page shows no key"
    return match.group(1).replace(" ", "").strip()


def shown_recovery_codes(response) -> list[str]:
    return re.findall(r"<li><code[^>]*>([0-9a-f]{5}-[0-9a-f]{5})</code></li>", page_text(response))


def enrol_at_sign_in(app, client, username):
    """Sign in as a user whose role needs MFA but who has none; return (secret, codes)."""
    response = password_step(client, username, NEW_USER_PASSWORD)
    assert response.location == "/auth/enrol-mfa"
    page = client.get("/auth/enrol-mfa")
    secret = shown_key(page)
    response = client.post_form("/auth/enrol-mfa", {"code": totp_code(secret)})
    assert response.status_code == 200
    return secret, shown_recovery_codes(response)


# Accounts an administrator touched: the sign-in gate, a second administrator, MFA for a role
# that does not require it.

OWN_PASSWORD = "copper kettle meadow harbour"  # what the owner chooses after a reset


def sign_in_to_gate(client, username: str, password: str):
    """The password step of a user whose sign-in must finish a step first (no MFA on the
    account); returns the answer, a redirect to the step's page."""
    response = password_step(client, username, password)
    assert response.status_code == 302, page_text(response)[:500]
    client.refresh_csrf(response.location)
    return response


def choose_own_password(client, password: str = OWN_PASSWORD):
    """Replace the temporary password on the gate's page."""
    return client.post_form(
        "/auth/new-password", {"new_password": password, "confirm_password": password}
    )


def add_second_admin(app, username: str = "admin2", full_name: str = "Robin Shaw") -> None:
    """Another administrator (the two-person rule needs two), independent of "admin": their
    role's provenance is empty, as for one set up before provenance was kept."""
    create_user(app, username, full_name, ["admin"])
    with app.app_context():
        db.session.execute(
            db.update(UserRole)
            .where(
                UserRole.user_id
                == db.select(User.id).filter_by(username=username).scalar_subquery()
            )
            .values(granted_by_id=None, granted_at=None)
        )
        db.session.commit()


def reset_password_by_two_admins(
    app, username: str, password: str, *, proposer: str = "admin2", approver: str = "admin"
) -> None:
    """An account with no second factor: one administrator proposes the
    reset and another approves it by setting the temporary password (the second
    administrator is created if missing)."""
    with app.app_context():
        missing = services.find_user(proposer) is None and proposer == "admin2"
        db.session.remove()
    if missing:
        add_second_admin(app)
    with app.test_request_context():
        services.propose_password_reset(actor=actor_of(proposer), user=services.find_user(username))
        db.session.remove()
    with app.test_request_context():
        services.approve_password_reset(
            actor=actor_of(approver), user=services.find_user(username), new_password=password
        )
        db.session.remove()


EXTRA_TOTP_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


def give_mfa(app, username: str, secret: str = EXTRA_TOTP_SECRET) -> None:
    """Turn two-step sign-in on for an account, with this TOTP secret."""
    with app.app_context():
        user = db.session.scalars(db.select(User).filter_by(username=username)).one()
        user.totp_secret_encrypted = encrypt_text(secret)
        user.mfa_enabled = True
        db.session.commit()
