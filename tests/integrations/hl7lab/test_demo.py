"""The demo's lab: ``flask seed-demo`` enables the lab connector against the lab sandbox
that ``make run`` starts (the Procfile's ``lab-sandbox``), once."""

from __future__ import annotations

from pathlib import Path

from portal.demo.integrations import LAB_SANDBOX_PORT, seed_lab
from portal.extensions import db
from portal.integrations import settings
from portal.integrations.hl7lab.connector import Hl7LabConnector

ROOT = Path(__file__).resolve().parents[3]


def test_the_demo_enables_the_lab_connector_against_the_sandbox_once(app):
    with app.app_context():
        assert seed_lab() is True
        connector = settings.enabled_connector("hl7lab")
        assert isinstance(connector, Hl7LabConnector)
        assert (connector.host, connector.port) == ("127.0.0.1", 2576)
        connector.validate_settings()  # what the console would accept
        assert connector.identities()["receiving_facility"] == "SANDBOX_LAB"
        assert seed_lab() is False  # the second seed leaves it alone
        db.session.rollback()


def test_make_run_starts_the_sandbox_where_the_demo_points():
    procfile = (ROOT / "Procfile").read_text()
    (line,) = [row for row in procfile.splitlines() if row.startswith("lab-sandbox:")]
    assert "-m portal.integrations.sandbox.hl7lab" in line
    assert f"--mllp-port {LAB_SANDBOX_PORT}" in line
    assert "--results-port 2575" in line  # the listener's port (lab-listener's default)
    assert any(row.startswith("lab-listener:") for row in procfile.splitlines())
