"""Issue 11's browser scenario in one test, in Chromium against the DoseSpot sandbox over
HTTP with the worker running beside: the prescriber opens a checked-in patient's visit,
prescribes lisinopril with the SIG builder for a patient on spironolactone, sees the
interaction with its source, overrides it with a reason, signs with a TOTP code, watches the
status reach "Pharmacy verified" and finds the drug on the medication list."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import update

from portal.charting.models import Encounter
from portal.extensions import db
from portal.patients.models import Patient
from tests.integrations.dosespot.helpers import SandboxServer
from tests.prescriptions.compose_helpers import no_known_allergies, on_spironolactone
from tests.prescriptions.dosespot_support import enable_dosespot
from tests.prescriptions.signing_helpers import load, work_until
from tests.support.browser import totp_now, typing_answered


@pytest.mark.browser
def test_prescribe_from_the_visit_to_pharmacy_verified_and_the_medication_list(
    app, chart, live_server, make_appointment, make_encounter, page, sign_in, watch, shot
):
    from playwright.sync_api import expect

    sandbox = SandboxServer.for_portal(live_server)
    worker = None
    try:
        enable_dosespot(app, sandbox)
        appointment_id = make_appointment(status="arrived")  # checked in
        encounter_id = make_encounter()
        patient_id = chart.patients[0]
        with app.app_context():
            db.session.get(Encounter, encounter_id).appointment_id = appointment_id
            # The vendor needs an address and a phone to take the patient.
            db.session.execute(
                update(Patient)
                .where(Patient.id == patient_id)
                .values(
                    address_line1="12 Elm Street",
                    city="Springfield",
                    state="MA",
                    postal_code="01101",
                    phone_mobile="+14135550142",
                )
            )
            db.session.commit()
        no_known_allergies(app, patient_id)
        on_spironolactone(app, patient_id)

        sign_in("drlee")
        page.goto(f"/chart/encounters/{encounter_id}")
        with page.expect_navigation():
            page.get_by_role("button", name="Prescribe", exact=True).click()
        expect(page.get_by_role("heading", name="New prescription")).to_be_visible()

        # The drug, found at the vendor (its DispensableDrugId is needed to send).
        with typing_answered(page, r"/prescriptions/\d+/drugs$", "lisinopril 10"):
            page.get_by_label("Find a drug").type("lisinopril 10")
        found = page.get_by_role("list", name="Drugs found")
        with page.expect_navigation():
            found.get_by_role(
                "button", name=re.compile(r"^lisinopril 10 MG Oral Tablet")
            ).first.click()
        expect(page.get_by_test_id("chosen-drug")).to_contain_text("lisinopril 10 MG Oral Tablet")

        # The SIG builder writes the directions.
        page.get_by_label("Dose", exact=True).fill("1")
        page.get_by_label("Unit", exact=True).select_option(label="tablets")
        page.get_by_label("Route", exact=True).select_option(label="By mouth")
        page.get_by_label("How often").select_option(label="once daily")
        with page.expect_response(re.compile(r"/prescriptions/\d+/draft$")):
            page.get_by_label("For how long").fill("30")
        expect(page.get_by_test_id("directions-preview")).to_have_text(
            "Take 1 tablet by mouth once daily for 30 days"
        )
        with page.expect_response(re.compile(r"/prescriptions/\d+/draft$")):
            page.get_by_label("Quantity", exact=True).fill("30")
        with page.expect_response(re.compile(r"/prescriptions/\d+/draft$")):
            page.get_by_label("Dispense unit").select_option(value="tablet")
        with page.expect_response(re.compile(r"/prescriptions/\d+/draft$")):
            page.get_by_label("Refills", exact=True).fill("0")

        # No pause before the clicks below: a click waits for the saves under way and saves
        # what is on the page first (compose.js), so the draft's version it moves on is the
        # last one.

        # The interaction with its source.
        alert = (
            page.locator("#safety-panel")
            .get_by_role("article")
            .filter(has_text=re.compile("spironolactone", re.I))
        )
        expect(alert).to_contain_text("Source:")
        shot("interaction")

        # The pharmacy, searched at the vendor and kept as the patient's preferred one.
        page.get_by_label("Pharmacy name").fill("Main Street")
        page.get_by_role("button", name="Find pharmacy").click()
        with page.expect_navigation():
            page.get_by_role("button", name="Set Sandbox Pharmacy Main Street as preferred").click()
        expect(page.get_by_test_id("chosen-pharmacy")).to_contain_text("Main Street")

        with page.expect_navigation():
            page.get_by_role("link", name="Review and sign").click()
        dialog = page.get_by_role("region", name="Sign prescription")
        reason = dialog.get_by_label(re.compile("Reason to go ahead despite"))
        reason.first.select_option(label="Will monitor (levels, labs or symptoms)")
        dialog.get_by_label(re.compile(r"^In your words")).first.fill("Potassium in one week")
        dialog.get_by_label("Code from your authenticator app").fill(totp_now(app, "drlee"))
        with page.expect_response(re.compile(r"/prescriptions/\d+/sign$")):
            dialog.get_by_role("button", name="Sign and send").click()
        signed = page.get_by_role("region", name="Signed prescription")
        expect(signed.get_by_text("Queued")).to_be_visible()
        rx_id = int(re.search(r"/prescriptions/(\d+)/", page.url).group(1))

        # The worker, beside the page.
        worker = threading.Thread(
            target=lambda: work_until(
                app, lambda: load(app, rx_id).state == "pharmacy_verified", "pharmacy verified"
            ),
            daemon=True,
        )
        worker.start()
        expect(signed.get_by_text("Pharmacy verified")).to_be_visible(timeout=70_000)
        shot("pharmacy-verified")

        page.goto(f"/chart/patients/{patient_id}/medications")
        expect(
            page.get_by_role("cell", name="lisinopril 10 MG Oral Tablet", exact=True)
        ).to_be_visible()
        watch.assert_clean(page)
    finally:
        if worker is not None:  # never leave it working on a database being torn down
            worker.join(70)
        sandbox.stop()
