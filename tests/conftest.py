"""Fixtures shared by every test (what they stand on is in tests/support/).

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

import os
import threading
import uuid

import pytest
from sqlalchemy import text
from werkzeug.serving import make_server

from portal import create_app
from portal.auth.passwords import hash_password
from portal.extensions import db
from tests.support.clients import PortalClient
from tests.support.database import (
    AUDIT_KEY,
    DATA_KEY,
    PASSWORD,
    ROLE_USER,
    SECRET_KEY,
    TestDatabase,
    fresh_database,
    migrate,
    seed_baseline,
    server_engine,
)

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
    engine = server_engine(base_url)
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
        migrate(url, instance)
        yield TestDatabase(url=url, dialect="sqlite", sqlite_template=template)
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"portal_test_{request.config.stash[_RUN_ID]}_{worker}"
    admin_engine = server_engine(base_url)
    with admin_engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_engine.url.set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url, instance)
        yield TestDatabase(url=url, dialect="postgresql")
    finally:
        with admin_engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()


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
        return hash_password(PASSWORD)


@pytest.fixture
def app(test_database, tmp_path, password_hash):
    """The application on a database holding the baseline: clinic, locations, four users."""
    url = fresh_database(test_database, tmp_path)
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
        seed_baseline(password_hash)
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


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
