"""Server-side sessions: the cookie carries only a random token; the data lives in a table.

Storage goes through its own short connection (not the request's ORM session), so saving a
session never commits, or waits on, the request's unit of work.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta

from flask import request
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import bindparam, insert, select, update
from werkzeug.datastructures import CallbackDict

from portal.auth.models import ServerSession, User, UserRole
from portal.auth.signed_in import SignedInUser
from portal.extensions import db
from portal.timeutil import utcnow
from portal.transaction import end_read, writing

TABLE = ServerSession.__table__
# Every request runs it, so it is built once, and it reads the signed-in account with the
# session (one round trip instead of two): one row per role, the session's columns in each.
_BY_TOKEN = (
    select(
        TABLE,
        User.username,
        User.full_name,
        User.mfa_enabled,
        UserRole.role,
    )
    .outerjoin(User, (User.id == TABLE.c.user_id) & User.is_enabled.is_(True))
    .outerjoin(UserRole, UserRole.user_id == User.id)
    .where(TABLE.c.token_hash == bindparam("token_hash"))
)
# last_seen_at is refreshed at most this often, so most requests write nothing.
TOUCH_INTERVAL = timedelta(seconds=30)
USER_KEY = "_user_id"  # where Flask-Login keeps the signed-in user's id
CSRF_KEY = "csrf_token"  # where Flask-WTF keeps the session's CSRF secret
TIMED_OUT_KEY = "timed_out_user_id"
# Sent by requests a page makes by itself (the flow board's polling): they must not count as
# the user being there, or an unattended screen would never reach its idle time-out.
BACKGROUND_HEADER = "X-Portal-Background"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class DatabaseSession(CallbackDict, SessionMixin):
    """The Flask session, backed by a row of ``server_sessions``."""

    def __init__(self, initial=None, token=None, last_seen_at=None):
        def on_update(_):
            self.modified = True

        super().__init__(initial, on_update)
        self.token = token
        self.last_seen_at = last_seen_at
        self.modified = False
        self.rotate_requested = False
        self.end_requested = False
        # The signed-in account as read with the session (None: read it when asked).
        self.signed_in: SignedInUser | None = None
        # Set when the previous session ended by idle time-out: whose it was.
        # Static files never read or write the session (see open_session).
        self.untracked = False

    @property
    def timed_out_user_id(self) -> int | None:
        """Whose session ended by idle time-out, if this browser's did (kept in the data, so
        it survives until the user signs in again)."""
        return self.get(TIMED_OUT_KEY)

    def rotate(self) -> None:
        """Give this session a new token (at sign-in), ending the old one on the server."""
        self.rotate_requested = True
        self.modified = True

    def end(self) -> None:
        """End the session on the server and forget its data (sign-out).

        Anything stored afterwards in this request (a flash message) goes into a fresh,
        anonymous session with a new token; otherwise the cookie is dropped.
        """
        self.clear()
        self.end_requested = True
        self.modified = True


class DatabaseSessionInterface(SessionInterface):
    def __init__(self, sessionless_prefixes: tuple[str, ...] = ()):
        # Paths of APIs that authenticate each request themselves (bearer tokens): they
        # never read a session nor set a cookie, like static files.
        self.sessionless_prefixes = sessionless_prefixes

    def _sessionless(self, app, path: str) -> bool:
        if path.startswith(app.static_url_path + "/"):
            return True
        return any(path == p or path.startswith(p + "/") for p in self.sessionless_prefixes)

    def cookie_name(self, app) -> str:
        return "__Host-portal_session" if app.config["HTTPS"] else "portal_session"

    def open_session(self, app, request):
        if self._sessionless(app, request.path):
            # Static files (and the bearer-token APIs) need no session; a browser's lazy
            # favicon fetch must not be the request that notices (and so consumes) an idle
            # time-out.
            untracked = DatabaseSession()
            untracked.untracked = True
            return untracked
        token = request.cookies.get(self.cookie_name(app))
        if not token:
            return DatabaseSession()
        now = utcnow()
        # Read without the write lock (SQLite); only a session that has just ended writes.
        with db.engine.connect() as connection:
            rows = connection.execute(_BY_TOKEN, {"token_hash": hash_token(token)}).all()
            connection.rollback()
        row = rows[0] if rows else None
        if row is None or row.ended_at is not None:
            return DatabaseSession()
        idle = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
        lifetime = timedelta(hours=app.config["SESSION_ABSOLUTE_HOURS"])
        reason = None
        if now - row.created_at > lifetime:
            reason = "expired"
        elif row.user_id is not None and now - row.last_seen_at > idle:
            reason = "idle"
        if reason is None:
            opened = DatabaseSession(
                json.loads(row.data), token=token, last_seen_at=row.last_seen_at
            )
            if row.user_id is not None and row.username is not None:
                roles = tuple(sorted(r.role for r in rows if r.role is not None))
                opened.signed_in = SignedInUser(
                    row.user_id, row.username, row.full_name, roles, row.mfa_enabled
                )
            return opened
        with writing(), db.engine.begin() as connection:
            connection.execute(
                update(TABLE)
                .where(TABLE.c.token_hash == row.token_hash, TABLE.c.ended_at.is_(None))
                .values(ended_at=now, end_reason=reason, data="{}")
            )
        if reason != "idle":
            return DatabaseSession()
        # The browser that held the idle session keeps its CSRF secret, so a form it posts
        # now passes the CSRF check and reaches the sign-in flow, which keeps the form for
        # the same user instead of failing with "400 Bad Request".
        carried = {}
        csrf_secret = json.loads(row.data or "{}").get(CSRF_KEY)
        if csrf_secret:
            carried[CSRF_KEY] = csrf_secret
        carried[TIMED_OUT_KEY] = row.user_id
        return DatabaseSession(carried)

    def save_session(self, app, session: DatabaseSession, response):
        if session.untracked:
            return
        # End the request's (read) transaction: the page is rendered, nothing is pending.
        end_read()
        name = self.cookie_name(app)
        secure = bool(app.config["HTTPS"])
        now = utcnow()
        if not (
            session.end_requested
            or session.rotate_requested
            or (not session.token and session)
            or session.modified
            or self._due_for_touch(session, now)
        ):
            if session.token:
                response.set_cookie(
                    name, session.token, httponly=True, secure=secure, samesite="Lax", path="/"
                )
                response.vary.add("Cookie")
            return
        with writing(), db.engine.begin() as connection:
            if session.end_requested or session.rotate_requested:
                if session.token:
                    reason = "signed_out" if session.end_requested else "rotated"
                    _end(connection, session.token, reason, now)
                session.token = None
            if not session.token:
                if not session:
                    if session.end_requested:
                        response.delete_cookie(
                            name, path="/", secure=secure, httponly=True, samesite="Lax"
                        )
                    return  # nothing worth a cookie
                session.token = secrets.token_urlsafe(32)
                connection.execute(
                    insert(TABLE).values(
                        token_hash=hash_token(session.token),
                        user_id=_user_id(session),
                        data=json.dumps(dict(session)),
                        created_at=now,
                        last_seen_at=now,
                        source_address=_source_address(),
                        user_agent=_user_agent(),
                    )
                )
            elif session.modified:
                connection.execute(
                    update(TABLE)
                    .where(TABLE.c.token_hash == hash_token(session.token))
                    .values(
                        data=json.dumps(dict(session)), user_id=_user_id(session), last_seen_at=now
                    )
                )
            elif self._due_for_touch(session, now):
                connection.execute(
                    update(TABLE)
                    .where(TABLE.c.token_hash == hash_token(session.token))
                    .values(last_seen_at=now)
                )
        response.set_cookie(
            name, session.token, httponly=True, secure=secure, samesite="Lax", path="/"
        )
        response.vary.add("Cookie")

    @staticmethod
    def _due_for_touch(session: DatabaseSession, now) -> bool:
        """Whether this request refreshes the session's last-seen time: at most every
        TOUCH_INTERVAL, and never for a request the page made by itself (a poll)."""
        return (
            bool(session.token)
            and (session.last_seen_at is None or now - session.last_seen_at > TOUCH_INTERVAL)
            and request.headers.get(BACKGROUND_HEADER) != "1"
        )


def _end(connection, token: str, reason: str, now) -> None:
    # An ended session keeps no data: nothing typed into a saved form outlives it.
    connection.execute(
        update(TABLE)
        .where(TABLE.c.token_hash == hash_token(token), TABLE.c.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason, data="{}")
    )


def _user_id(session) -> int | None:
    value = session.get(USER_KEY)
    return int(value) if value is not None else None


def _source_address() -> str | None:
    return request.remote_addr


def _user_agent() -> str | None:
    agent = request.headers.get("User-Agent")
    return agent[:300] if agent else None


def end_user_sessions(user_id: int, reason: str) -> int:
    """End every live session of a user (sign-out everywhere, disable, password change).

    Runs in the caller's ORM transaction so it commits with the change that caused it.
    """
    result = db.session.execute(
        update(TABLE)
        .where(TABLE.c.user_id == user_id, TABLE.c.ended_at.is_(None))
        .values(ended_at=utcnow(), end_reason=reason, data="{}")
    )
    return result.rowcount
