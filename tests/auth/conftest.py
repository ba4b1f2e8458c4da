"""Helpers for the sign-in and session tests: reading the database as the server left it.

The browser fixtures are defined once, in tests/browser.py.
"""

from __future__ import annotations

import hashlib
import html
import re
from datetime import timedelta

import pyotp
import pytest
from flask import request

from portal.audit.models import AuditEvent
from portal.auth.models import ServerSession, User
from portal.auth.permissions import require
from portal.extensions import db
from portal.timeutil import utcnow
from tests.browser import (  # noqa: F401
    browser,
    page,
    pytest_runtest_makereport,
    shot,
    sign_in,
    watch,
)

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


def audit_events(app, action: str | None = None) -> list[AuditEvent]:
    with app.app_context():
        query = db.select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        events = list(db.session.scalars(query))
        db.session.expunge_all()
        return events


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


@pytest.fixture
def notes_page(app):
    """A small page with a form, added to the app the way a feature would add one.

    GET shows a form; POST echoes what was sent, so a test can see the form arrive.
    """

    @require("account.self")
    def notes():
        if request.method == "POST":
            return f"saved note: {request.form.get('note', '')} / {request.form.get('kind', '')}"
        return '<form method="post"><label for="n">Note</label><input id="n" name="note"></form>'

    app.add_url_rule("/test-notes", "test_notes", notes, methods=["GET", "POST"])
    return "/test-notes"
