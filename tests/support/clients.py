"""Clients for tests: the Flask test client as a browser would use it (CSRF tokens, sign-in
with a TOTP code), sessions opened without the form, and the actor of a demo user for calling
services directly."""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass

import pyotp
from flask import session
from flask_login import login_user
from flask_wtf.csrf import generate_csrf
from sqlalchemy import insert, select

from portal.actors import Actor
from portal.auth.models import ServerSession, User
from portal.auth.sessions import hash_token
from portal.extensions import db
from portal.timeutil import utcnow
from tests.support.database import PASSWORD, TOTP_SECRETS

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@dataclass(frozen=True)
class SignedIn:
    """A session made by ``open_signed_in_session``: the cookie's value and a CSRF token."""

    token: str
    csrf_token: str


def open_signed_in_session(app, username: str, source_address: str = "127.0.0.1") -> SignedIn:
    """A server session signed in as ``username``, made directly in ``server_sessions``.

    What the sign-in form leaves behind, without the form: the session's data is what
    Flask-Login and Flask-WTF store at sign-in (the user id, a CSRF secret), the row holds the
    token's SHA-256, and the cookie will carry the token. No password hash is checked, no
    TOTP code used, no request made and no sign-in audited: for tests that only need to
    start signed in. Tests about signing in use the form.
    """
    token = secrets.token_urlsafe(32)
    with app.test_request_context():
        user = db.session.scalars(select(User).filter_by(username=username)).one()
        assert login_user(user), f"{username} cannot sign in (disabled?)"
        csrf_token = generate_csrf()
        data, user_id = dict(session), user.id
    now = utcnow()
    # Outside the request context: this is set-up, not a write made during a request.
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(
            insert(ServerSession.__table__).values(
                token_hash=hash_token(token),
                user_id=user_id,
                data=json.dumps(data),
                created_at=now,
                last_seen_at=now,
                source_address=source_address,
            )
        )
    return SignedIn(token=token, csrf_token=csrf_token)


def session_cookie_name(app) -> str:
    return app.session_interface.cookie_name(app)


class PortalClient:
    """The Flask test client plus what a browser would do: CSRF tokens, sign-in with TOTP."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()
        self.csrf = None

    def __getattr__(self, name):
        return getattr(self.client, name)

    def refresh_csrf(self, path: str = "/auth/sign-in") -> str:
        response = self.client.get(path)
        match = CSRF_META.search(response.get_data(as_text=True))
        assert match, f"no CSRF token on {path} ({response.status_code})"
        self.csrf = match.group(1)
        return self.csrf

    def post_form(self, path: str, data: dict | None = None, **kwargs):
        """POST a form the way the page would: with the session's CSRF token."""
        data = dict(data or {})
        if self.csrf is None:
            self.refresh_csrf()
        data.setdefault("csrf_token", self.csrf)
        return self.client.post(path, data=data, **kwargs)

    def htmx_post(self, path: str, data: dict | None = None, **kwargs):
        if self.csrf is None:
            self.refresh_csrf()
        headers = {"HX-Request": "true", "X-CSRFToken": self.csrf, **kwargs.pop("headers", {})}
        return self.client.post(path, data=data or {}, headers=headers, **kwargs)

    def sign_in(self, username: str, password: str = PASSWORD):
        """Password, then (for MFA users) a TOTP code; ends on the page after sign-in."""
        self.refresh_csrf()
        response = self.post_form("/auth/sign-in", {"username": username, "password": password})
        if response.status_code == 302 and response.location.endswith("/auth/second-factor"):
            response = self.post_form(
                "/auth/second-factor", {"code": fresh_totp(self.app, username)}
            )
        assert response.status_code == 302, response.get_data(as_text=True)[:2000]
        self.refresh_csrf("/")
        return response

    def sign_in_by_cookie(self, username: str) -> SignedIn:
        """Start signed in without the form: a session made directly, its cookie set here."""
        signed = open_signed_in_session(self.app, username)
        self.client.set_cookie(session_cookie_name(self.app), signed.token)
        self.csrf = signed.csrf_token
        return signed


def fresh_totp(app, username: str) -> str:
    """A TOTP code the server will accept: the current step's, or the next one's when the
    current step was already used (no replay). Never the previous step's: a 30-second
    boundary passing before the server checks it would make that one too old."""
    with app.app_context():
        user = db.session.scalars(db.select(User).filter_by(username=username)).one()
        last = user.totp_last_step
        db.session.remove()
    totp = pyotp.TOTP(TOTP_SECRETS[username])
    while True:
        now_step = int(utcnow().timestamp()) // 30
        for step in (now_step, now_step + 1):
            if last is None or step > last:
                return totp.at(step * 30)
        time.sleep(30 - utcnow().timestamp() % 30 + 0.05)  # both used: wait for a new step


def actor_of(username: str, source: str = "127.0.0.1"):
    """The actor a demo user is when calling services directly (inside an app context)."""
    user = db.session.scalars(db.select(User).filter_by(username=username)).one()
    return Actor.for_user(user, source)
