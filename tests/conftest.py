"""Fixtures shared by every test.

The suite runs on SQLite by default and on PostgreSQL when PORTAL_TEST_DATABASE_URL is set.
Either way the schema comes from the Alembic migrations, once per run, into a database made
for this run (a fresh PostgreSQL database, dropped at the end). Under pytest-xdist
(``make test`` runs with ``-n``) "once per run" is once per worker: each worker process has
its own SQLite template or PostgreSQL database, so workers never share rows. Each test then
starts from the same baseline: an empty registry, the demo clinic and one user per role.

Most tests start signed in through ``signed_in(who)``, which makes the session row directly
(no password hash, no TOTP, no requests). Tests about signing in, sessions, MFA, time-outs
or CSRF use the real form: ``signed_in(who, through_the_form=True)`` or ``client.sign_in``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from cryptography.fernet import Fernet
from flask import session
from flask_login import login_user
from flask_wtf.csrf import generate_csrf
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from portal import create_app
from portal.auth.models import ServerSession, User
from portal.auth.sessions import hash_token
from portal.extensions import db
from portal.timeutil import utcnow

PASSWORD = "correct horse battery staple 42"
TOTP_SECRETS = {
    "drlee": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    "admin": "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU",
}
USERS = {
    "frontdesk": ("Maria Alvarez", ["front_desk"]),
    "nurse": ("Sam Okafor", ["nurse"]),
    "drlee": ("Jordan Lee", ["prescriber"]),
    "admin": ("Pat Kim", ["admin"]),
}
ROLE_USER = {"front_desk": "frontdesk", "nurse": "nurse", "prescriber": "drlee", "admin": "admin"}
SECRET_KEY = "test-secret-key-not-for-production"
DATA_KEY = Fernet.generate_key().decode()
AUDIT_KEY = "test-audit-key-" + "k" * 32  # the same in a subprocess (the worker's test)


_RUN_ID = pytest.StashKey[str]()


def pytest_configure(config):
    """Give the run an id that every xdist worker shares (xdist's ``testrunuid``), so the
    PostgreSQL databases of one run can be told apart from those of runs beside it."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        run = workerinput["testrunuid"]
    else:
        run = config.getoption("testrunuid", None) or uuid.uuid4().hex
        if config.pluginmanager.hasplugin("xdist"):
            config.option.testrunuid = run  # handed to the workers xdist starts
    config.stash[_RUN_ID] = run[:12]


def pytest_collection_modifyitems(config, items):
    on_postgres = bool(os.environ.get("PORTAL_TEST_DATABASE_URL"))
    skip = pytest.mark.skip(reason="needs PostgreSQL (set PORTAL_TEST_DATABASE_URL)")
    for item in items:
        if "postgres_only" in item.keywords and not on_postgres:
            item.add_marker(skip)
        if item.get_closest_marker("browser"):
            # With --dist loadgroup (make test) the browser tests run one at a time on one
            # worker, beside the other tests: one Chromium at a time on a small machine.
            item.add_marker(pytest.mark.xdist_group("browser"))


def pytest_sessionfinish(session):
    """In the process that ran the session (xdist's controller, or the only one): drop any
    database of this run still there, e.g. of a worker that crashed before its teardown."""
    base_url = os.environ.get("PORTAL_TEST_DATABASE_URL")
    if not base_url or hasattr(session.config, "workerinput"):
        return
    prefix = f"portal_test_{session.config.stash[_RUN_ID]}_"
    engine = _server_engine(base_url)
    try:
        with engine.connect() as connection:
            left = connection.scalars(
                text("SELECT datname FROM pg_database WHERE starts_with(datname, :prefix)"),
                {"prefix": prefix},
            ).all()
            for name in left:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def _server_engine(base_url: str):
    """The PostgreSQL server of PORTAL_TEST_DATABASE_URL, for creating and dropping databases."""
    server = make_url(base_url).set(drivername="postgresql+psycopg")
    return create_engine(server, isolation_level="AUTOCOMMIT")


@dataclass
class TestDatabase:
    url: str
    dialect: str
    sqlite_template: Path | None = None


@pytest.fixture(scope="session")
def test_database(request, tmp_path_factory):
    """Migrate a database made for this run (for this worker, under xdist); drop it
    afterwards (PostgreSQL), whether the tests passed or not.

    SQLite: a template file in this process's temporary folder (xdist gives each worker
    its own), copied for every test. PostgreSQL: ``portal_test_<run>_<worker>`` on the
    server, truncated between tests; <run> is shared by the run's workers, <worker> is
    xdist's id ("gw0", "gw1", ...) or "main" without xdist.
    """
    base_url = os.environ.get("PORTAL_TEST_DATABASE_URL")
    instance = tmp_path_factory.mktemp("instance-migrate")
    if not base_url:
        template = tmp_path_factory.mktemp("sqlite") / "template.sqlite"
        url = f"sqlite:///{template}"
        _migrate(url, instance)
        yield TestDatabase(url=url, dialect="sqlite", sqlite_template=template)
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"portal_test_{request.config.stash[_RUN_ID]}_{worker}"
    admin_engine = _server_engine(base_url)
    with admin_engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_engine.url.set(database=name).render_as_string(hide_password=False)
    try:
        _migrate(url, instance)
        yield TestDatabase(url=url, dialect="postgresql")
    finally:
        with admin_engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()


def _migrate(url: str, instance: Path) -> None:
    from flask_migrate import upgrade

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "INSTANCE_PATH": str(instance),
            "SECRET_KEY": SECRET_KEY,
            "TESTING": True,
        }
    )
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def password_hash(tmp_path_factory):
    """One argon2id hash of PASSWORD, shared by every test user (hashing is slow on purpose)."""
    instance = tmp_path_factory.mktemp("instance-hash")
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "SECRET_KEY": SECRET_KEY,
            "INSTANCE_PATH": str(instance),
        }
    )
    with app.app_context():
        from portal.auth.passwords import hash_password

        return hash_password(PASSWORD)


def _fresh_database(test_database: TestDatabase, tmp_path: Path) -> str:
    if test_database.dialect == "sqlite":
        target = tmp_path / "portal.sqlite"
        shutil.copyfile(test_database.sqlite_template, target)
        return f"sqlite:///{target}"
    engine = create_engine(test_database.url)
    with engine.begin() as connection:
        tables = [
            row[0]
            for row in connection.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            )
        ]
        connection.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        connection.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
    engine.dispose()
    return test_database.url


@pytest.fixture
def app(test_database, tmp_path, password_hash):
    """The application on a database holding the baseline: clinic, locations, four users."""
    url = _fresh_database(test_database, tmp_path)
    application = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": url,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SECRET_KEY": SECRET_KEY,
            "DATA_ENCRYPTION_KEY": DATA_KEY,
            "AUDIT_KEY": AUDIT_KEY,
        }
    )
    with application.app_context():
        _seed_baseline(password_hash)
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def _seed_baseline(password_hash: str) -> None:
    from portal.auth.models import User
    from portal.clinic.models import Clinic, Location
    from portal.crypto import encrypt_text

    clinic = Clinic(
        name="Riverside Family Practice",
        address="100 Main Street",
        phone="+14135550100",
        time_zone="America/New_York",
    )
    clinic.locations = [Location(name="Main Street"), Location(name="Westside")]
    db.session.add(clinic)
    for username, (full_name, roles) in USERS.items():
        user = User(username=username, full_name=full_name, password_hash=password_hash)
        user.set_roles(roles)
        if username in TOTP_SECRETS:
            user.totp_secret_encrypted = encrypt_text(TOTP_SECRETS[username])
            user.mfa_enabled = True
        db.session.add(user)
    db.session.commit()


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
    import time

    from portal.auth.models import User
    from portal.timeutil import utcnow

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


@pytest.fixture
def client(app):
    return PortalClient(app)


@pytest.fixture
def signed_in(app):
    """signed_in("nurse") -> a PortalClient signed in as that demo user (or role name).

    By default the session is made directly (``open_signed_in_session``): one INSERT, no
    argon2, no TOTP. ``signed_in("nurse", through_the_form=True)`` signs in through the real
    form (password, then a TOTP code for MFA users), for tests about signing in, sessions,
    MFA, time-outs and CSRF, and for tests that need what a real sign-in records (its audit
    event, the last sign-in time, a used TOTP step).
    """

    def make(who: str, *, through_the_form: bool = False) -> PortalClient:
        portal_client = PortalClient(app)
        username = ROLE_USER.get(who, who)
        if through_the_form:
            portal_client.sign_in(username)
        else:
            portal_client.sign_in_by_cookie(username)
        return portal_client

    return make


@pytest.fixture
def live_server(app):
    """The app served over real HTTP on a free loopback port, in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def actor_of(username: str, source: str = "127.0.0.1"):
    """The actor a demo user is when calling services directly (inside an app context)."""
    from portal.auth.models import User
    from portal.auth.permissions import actor_for

    user = db.session.scalars(db.select(User).filter_by(username=username)).one()
    return actor_for(user, source)
