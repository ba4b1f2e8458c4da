"""Configuration (instance file, PORTAL_* variables) and the CLI: seed-demo, create-user."""

from __future__ import annotations

import re
import stat
from datetime import datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from portal import create_app
from portal.clinic.models import Clinic
from portal.extensions import db
from tests.support.database import migrated_app


def test_first_start_writes_a_private_instance_config_with_random_keys(tmp_path, monkeypatch):
    monkeypatch.delenv("PORTAL_SECRET_KEY", raising=False)
    instance = tmp_path / "instance"
    first = create_app({"INSTANCE_PATH": str(instance)})
    config_file = instance / "config.py"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    text = config_file.read_text()
    assert "SECRET_KEY" in text and "DATA_ENCRYPTION_KEY" in text
    assert len(first.config["SECRET_KEY"]) >= 40
    # A second start reads the same keys; nothing is regenerated.
    second = create_app({"INSTANCE_PATH": str(instance)})
    assert second.config["SECRET_KEY"] == first.config["SECRET_KEY"]
    assert second.config["DATA_ENCRYPTION_KEY"] == first.config["DATA_ENCRYPTION_KEY"]
    assert config_file.read_text() == text
    # Two installations never share keys.
    other = create_app({"INSTANCE_PATH": str(tmp_path / "other")})
    assert other.config["SECRET_KEY"] != first.config["SECRET_KEY"]
    assert first.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / 'portal.sqlite'}"


def test_environment_variables_override_the_instance_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path / "from-env"))
    monkeypatch.setenv("PORTAL_SECRET_KEY", "from-the-environment")
    monkeypatch.setenv("PORTAL_SESSION_IDLE_MINUTES", "5")
    monkeypatch.setenv("PORTAL_HTTPS", "1")
    monkeypatch.setenv("PORTAL_DATABASE_URL", "postgres://someone@db.example/portal")
    app = create_app()
    assert app.instance_path == str(tmp_path / "from-env")
    assert (tmp_path / "from-env" / "config.py").exists()
    assert app.config["SECRET_KEY"] == "from-the-environment"
    assert app.config["SESSION_IDLE_MINUTES"] == 5
    assert app.config["HTTPS"]
    assert app.config["SQLALCHEMY_DATABASE_URI"] == (
        "postgresql+psycopg://someone@db.example/portal"
    )


def _patients(app) -> list[tuple]:
    from portal.patients.models import Patient

    with app.app_context():
        return db.session.execute(
            select(
                Patient.mrn,
                Patient.family_name,
                Patient.given_name,
                Patient.birth_date,
                Patient.phone_mobile,
            ).order_by(Patient.mrn)
        ).all()


def test_seed_demo_is_deterministic_and_writes_private_credentials(tmp_path):
    import phonenumbers

    from portal.auth.models import User

    first = migrated_app(tmp_path / "one")
    result = first.test_cli_runner().invoke(args=["seed-demo", "--patients", "60", "--seed", "7"])
    assert result.exit_code == 0, result.output
    for username in ("frontdesk", "nurse", "drlee", "admin"):
        assert username in result.output
    credentials = tmp_path / "one" / "demo-credentials.txt"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    text = credentials.read_text()
    assert text.count("TOTP secret") == 2  # the prescriber and the admin
    # The demo API client: its secret in the file, never in the output; and it works.
    client_id = re.search(r"client id:\s+(\S+)", text).group(1)
    secret = re.search(r"client secret:\s+(\S+)", text).group(1)
    assert secret not in result.output and "Demo API client registered" in result.output
    token = first.test_client().post(
        "/fhir/auth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert token.status_code == 200, token.get_data(as_text=True)
    assert token.get_json()["scope"] == "system/*.read"
    with first.app_context():
        users = {u.username: u for u in db.session.scalars(select(User))}
        assert users["drlee"].mfa_enabled and users["admin"].mfa_enabled
        assert not users["frontdesk"].mfa_enabled
        assert set(users["drlee"].roles) == {"prescriber"}

    second = migrated_app(tmp_path / "two")
    second.test_cli_runner().invoke(args=["seed-demo", "--patients", "60", "--seed", "7"])
    patients = _patients(first)
    assert len(patients) == 60
    assert patients == _patients(second)  # same seed, same people
    for _mrn, _family, _given, _birth, phone in patients:
        assert phonenumbers.is_valid_number(phonenumbers.parse(phone))

    # A schedule to work with: types, Dr. Lee's hours, and visits that never overlap.
    from portal.scheduling.models import Appointment, AppointmentType, AvailabilityBlock

    with first.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(AppointmentType)) == 4
        assert (
            db.session.scalar(select(db.func.count()).select_from(AvailabilityBlock)) == 14
        )  # two sessions a day, every day
        visits = db.session.scalars(select(Appointment).order_by(Appointment.starts_at)).all()
        assert visits, "the demo day should have visits"
        # Whatever day of the week the demo starts on, today has visits to work with.
        zone = ZoneInfo(db.session.scalars(select(Clinic)).first().time_zone)
        today = datetime.now(zone).date()
        assert visits[0].starts_at.astimezone(zone).date() == today
        for earlier, later in pairwise(visits):
            assert earlier.ends_at <= later.starts_at

    again = first.test_cli_runner().invoke(args=["seed-demo", "--if-empty"])
    assert "already present" in again.output
    assert len(_patients(first)) == 60


def test_no_demo_credentials_without_demo_data(tmp_path):
    app = migrated_app(tmp_path / "plain")
    assert not (tmp_path / "plain" / "demo-credentials.txt").exists()
    result = app.test_cli_runner().invoke(
        args=[
            "create-user",
            "--username",
            "chief",
            "--full-name",
            "Robin Chief",
            "--role",
            "admin",
        ],
        input="quiet meadow lantern 1987\nquiet meadow lantern 1987\n",
    )
    assert result.exit_code == 0, result.output
    assert "Two-step sign-in is required" in result.output
    assert not (tmp_path / "plain" / "demo-credentials.txt").exists()


@pytest.mark.parametrize("password", ["short", "password1234"])
def test_create_user_refuses_weak_passwords(tmp_path, password):
    app = migrated_app(tmp_path / "weak")
    result = app.test_cli_runner().invoke(
        args=[
            "create-user",
            "--username",
            "chief",
            "--full-name",
            "Robin Chief",
            "--role",
            "admin",
        ],
        input=f"{password}\n{password}\n",
    )
    assert result.exit_code != 0
    assert "Error" in result.output
