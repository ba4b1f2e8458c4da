"""The instance folder (keys, the SQLite database, checkpoints, demo credentials) is private
to the service's user: created 0700 / 0600, and a start-up warning for anything wider."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from contextlib import contextmanager

from flask_migrate import upgrade

from portal import create_app
from portal.extensions import db


@contextmanager
def usual_umask():
    """The umask most systems give a service (022): files would be world-readable."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def mode_of(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_instance_folder_database_and_its_wal_files_are_private(tmp_path):
    instance = tmp_path / "srv" / "instance"
    with usual_umask():
        app = create_app({"TESTING": True, "INSTANCE_PATH": str(instance)})
        with app.app_context():
            upgrade()
            db.session.execute(db.text("SELECT 1 FROM users"))
            # Keep a connection (and so the -wal and -shm files) open while looking.
            held = sqlite3.connect(instance / "portal.sqlite")
            try:
                held.execute("BEGIN IMMEDIATE")
                held.execute("DELETE FROM users WHERE id = -1")
                files = {p.name: mode_of(p) for p in instance.iterdir()}
            finally:
                held.rollback()
                held.close()
            db.session.remove()
    assert mode_of(instance) == 0o700
    assert {"config.py", "portal.sqlite", "portal.sqlite-wal", "portal.sqlite-shm"} <= set(files)
    assert {name: mode for name, mode in files.items() if mode != 0o600} == {}


def test_start_up_warns_about_a_wider_instance_naming_path_and_mode(tmp_path, caplog):
    instance = tmp_path / "instance"
    with usual_umask():
        create_app({"TESTING": True, "INSTANCE_PATH": str(instance)})
    database = instance / "portal.sqlite"
    caplog.set_level(logging.WARNING)
    create_app({"TESTING": True, "INSTANCE_PATH": str(instance)})
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []

    instance.chmod(0o755)
    database.chmod(0o644)
    with usual_umask():
        create_app({"TESTING": True, "INSTANCE_PATH": str(instance)})
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(str(instance) in w and "0o755" in w for w in warnings), warnings
    assert any(str(database) in w and "0o644" in w for w in warnings), warnings
    assert len(warnings) == 2
    # What an operator already set is reported, not changed behind their back.
    assert mode_of(database) == 0o644


def test_a_database_outside_the_instance_folder_is_created_private_and_checked(tmp_path, caplog):
    elsewhere = tmp_path / "data"
    elsewhere.mkdir(mode=0o700)
    database = elsewhere / "clinic.sqlite"
    config = {
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}",
    }
    with usual_umask():
        create_app(config)
    assert mode_of(database) == 0o600
    database.chmod(0o664)
    caplog.set_level(logging.WARNING)
    create_app(config)
    assert any(
        str(database) in r.getMessage() and "0o664" in r.getMessage() for r in caplog.records
    )
