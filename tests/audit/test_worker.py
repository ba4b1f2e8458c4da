"""`flask worker` as it runs in production: a process of its own, sealing and checkpointing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portal.actors import SOURCE_CLI, Actor
from portal.audit import jobs
from portal.audit import services as audit
from portal.extensions import db
from portal.transaction import use_case
from tests.audit.helpers import events
from tests.support.database import AUDIT_KEY

ROOT = Path(__file__).resolve().parents[2]
TESTER = Actor(id=None, username="tester", source=SOURCE_CLI)
DEADLINE_SECONDS = 30


def record_events(app, count: int, detail: str) -> None:
    with app.app_context():
        for _ in range(count):
            with use_case():
                audit.record(TESTER, "test.event", detail=detail)
        db.session.remove()


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_the_worker_seals_checkpoints_and_stops_on_sigterm(app):
    record_events(app, 3, detail="before-start")
    environment = {
        **os.environ,
        "PORTAL_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "PORTAL_INSTANCE_PATH": app.instance_path,
        "PORTAL_AUDIT_KEY": AUDIT_KEY,
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "portal", "worker"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    checkpoint_file = Path(app.instance_path) / "audit-checkpoints.jsonl"
    try:
        wait_for(lambda: all(e.seq for e in events(app)), "the first events to be sealed")
        wait_for(checkpoint_file.exists, "the checkpoint written at start")
        record_events(app, 2, detail="while-running")
        wait_for(
            lambda: [e.seq for e in events(app)] == [1, 2, 3, 4, 5], "events written meanwhile"
        )
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=DEADLINE_SECONDS)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, output
    assert "worker started: seal audit events every 1 s; audit checkpoint every 300 s" in output
    assert "sealed 3 audit events (#1-#3)" in output
    assert "audit checkpoint at #3" in output
    assert "worker stopping (SIGTERM)" in output and "worker stopped" in output
    assert "before-start" not in output and "while-running" not in output  # no event data
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output


def test_the_worker_refuses_to_start_without_a_usable_audit_key():
    """Refused once, at start, not as a failing job every second."""
    with pytest.raises(RuntimeError, match="AUDIT_KEY must be"):
        jobs.periodic_jobs({"AUDIT_KEY": "short", "AUDIT_CHECKPOINT_MINUTES": 5})
    offered = jobs.periodic_jobs({"AUDIT_KEY": AUDIT_KEY, "AUDIT_CHECKPOINT_MINUTES": 5})
    assert [(job.name, job.every_seconds) for job in offered] == [
        ("seal audit events", 1.0),
        ("audit checkpoint", 300.0),
    ]
