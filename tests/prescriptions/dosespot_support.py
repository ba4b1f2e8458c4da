"""The DoseSpot sandbox as the prescription tests use it: DoseSpot enabled against a live
sandbox with Dr. Lee linked to its prescriber, the vendor's screen opened for a patient, and
the worker's inbox run until webhooks have done their work. One place, for the embedded
path's, the composing, the signing and the printing tests alike."""

from __future__ import annotations

import re
import time

from sqlalchemy import select

from portal.extensions import db
from portal.integrations import epcs_credentials
from portal.integrations.jobs import process_inbox
from portal.integrations.models import ExternalId
from portal.integrations.settings import Submitted, save_and_enable
from portal.prescriptions.models import Prescription
from portal.timeutil import utcnow
from portal.transaction import use_case
from tests.integrations.dosespot.helpers import (
    CLINIC_ID,
    CLINIC_KEY,
    PRESCRIBER,
    PRESCRIBER_EPCS_PIN,
    PRESCRIBER_EPCS_SEED,
    SUBSCRIPTION_KEY,
    WEBHOOK_SECRET,
)
from tests.support.clients import actor_of

IFRAME = re.compile(r'<iframe class="eprescribe-frame" src="([^"]+)"')
DEADLINE_SECONDS = 60  # generous for a loaded CI machine; the loops end once it holds


def enable_dosespot(app, sandbox):
    """DoseSpot enabled (its check passed against the sandbox), Dr. Lee linked to the
    sandbox's prescriber; returns the sandbox."""
    with app.app_context():
        save_and_enable(
            actor_of("admin"),
            "dosespot",
            Submitted(
                values={
                    "clinic_id": CLINIC_ID,
                    "admin_clinician_id": PRESCRIBER,
                    "api_base_url": sandbox.url,
                    "sso_base_url": sandbox.url,
                },
                secrets={
                    "clinic_key": CLINIC_KEY,
                    "subscription_key": SUBSCRIPTION_KEY,
                    "webhook_secret": WEBHOOK_SECRET,
                },
            ),
        )
        with use_case():
            db.session.add(
                ExternalId(
                    connector="dosespot",
                    kind="clinician",
                    local_id=actor_of("drlee").id,
                    external_id=str(PRESCRIBER),
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
        db.session.remove()
    return sandbox


def register_epcs_credential(
    app, pin: str = PRESCRIBER_EPCS_PIN, seed: str = PRESCRIBER_EPCS_SEED
) -> None:
    """Dr. Lee's EPCS credential at the sandbox (the PIN and token seed of its prescriber
    2001 unless told otherwise), as he would store it himself."""
    with app.test_request_context():
        with use_case():
            epcs_credentials.set_credential(actor_of("drlee"), "dosespot", pin, seed)
        db.session.remove()


def launch(doctor, patient_id: int):
    """The patient's page framing the vendor's screen (200, or the test fails here)."""
    page = doctor.get(f"/patients/{patient_id}/eprescribe")
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    return page


def process_until(app, condition, what: str) -> None:
    """Run the worker's inbox job until ``condition()`` holds (webhooks arrive over time)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        with app.app_context():
            process_inbox()
            db.session.remove()
            done = condition()
            db.session.remove()
        if done:
            return
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def all_prescriptions(app) -> list[Prescription]:
    """Every prescription, oldest first, detached from the session."""
    with app.app_context():
        rows = list(db.session.scalars(select(Prescription).order_by(Prescription.id)))
        db.session.expunge_all()
        return rows
