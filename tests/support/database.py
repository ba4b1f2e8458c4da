"""The test databases: made for a run (per xdist worker), migrated with the real migrations,
reset to the same baseline for every test (the demo clinic, two locations, one user per role).

The suite runs on SQLite by default and on PostgreSQL when PORTAL_TEST_DATABASE_URL is set.
SQLite: a migrated template file copied for each test. PostgreSQL: a database per worker,
truncated between tests.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from flask_migrate import upgrade
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from portal import create_app
from portal.auth.models import User
from portal.clinic.models import Clinic, Location
from portal.crypto import encrypt_text
from portal.extensions import db

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


def server_engine(base_url: str):
    """The PostgreSQL server of PORTAL_TEST_DATABASE_URL, for creating and dropping databases."""
    server = make_url(base_url).set(drivername="postgresql+psycopg")
    return create_engine(server, isolation_level="AUTOCOMMIT")


@dataclass
class TestDatabase:
    url: str
    dialect: str
    sqlite_template: Path | None = None


def migrate(url: str, instance: Path) -> None:
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


def fresh_database(test_database: TestDatabase, tmp_path: Path) -> str:
    if test_database.dialect == "sqlite":
        target = tmp_path / "portal.sqlite"
        shutil.copyfile(test_database.sqlite_template, target)
        target.chmod(0o600)  # as the app creates its own (else each start-up warns about it)
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


def seed_baseline(password_hash: str) -> None:
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


def migrated_app(folder: Path):
    """An app whose instance folder is ``folder``, on a new, migrated, empty SQLite database
    there (no baseline rows): for tests of what the commands do to a database of their own."""
    folder.mkdir(parents=True, exist_ok=True)
    app = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(folder),
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'portal.sqlite'}",
        }
    )
    with app.app_context():
        upgrade()
    return app
