"""E-prescribing in Chromium, as a clinic first sets it up and uses it: the admin enters
DoseSpot's settings (a wrong clinic key is refused beside its field, the right one enables
the connector and its health says so) and links Dr. Lee; Dr. Lee opens e-prescribing from a
patient's chart, writes and sends a prescription in the DoseSpot sandbox's framed screen,
goes back to the chart and finds it in the medication list and the prescriptions, "Pharmacy
verified". Real sockets throughout: the portal's live server, the sandbox on its own port,
its webhooks into the portal, a worker thread processing them."""

from __future__ import annotations

import re
import threading
import time
from datetime import date

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.integrations.jobs import process_inbox
from portal.transaction import use_case
from tests.integrations.dosespot.helpers import (
    CLINIC_ID,
    CLINIC_KEY,
    PRESCRIBER,
    SUBSCRIPTION_KEY,
    WEBHOOK_SECRET,
    SandboxServer,
)
from tests.support.browser import labelled, sign_in_by_cookie
from tests.support.factories import patient_row

pytestmark = pytest.mark.browser


@pytest.fixture
def sandbox(live_server):
    server = SandboxServer.for_portal(live_server)
    yield server
    server.stop()


@pytest.fixture
def worker(app):
    """The worker's inbox job, running beside the test as `flask worker` would."""
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            with app.app_context():
                process_inbox()
                db.session.remove()
            stop.wait(0.1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)


def a_patient(app) -> int:
    with app.app_context(), use_case():
        patient = patient_row(
            "Ana",
            "Muñoz",
            date(1980, 2, 3),
            address_line1="12 Elm Street",
            city="Springfield",
            state="MA",
            postal_code="01101",
            phone_mobile="+14135550142",
        )
        db.session.add(patient)
        db.session.flush()
        return patient.id


def fill_dosespot_settings(page, sandbox, clinic_key: str) -> None:
    labelled(page, "Clinic id").fill(str(CLINIC_ID))
    labelled(page, "Clinic key").fill(clinic_key)
    labelled(page, "Subscription key").fill(SUBSCRIPTION_KEY)
    labelled(page, "Admin clinician id").fill(str(PRESCRIBER))
    labelled(page, "API base URL").fill(sandbox.url)
    labelled(page, "SSO base URL").fill(sandbox.url)
    labelled(page, "Webhook secret").fill(WEBHOOK_SECRET)


def test_the_admin_sets_up_dosespot_and_the_prescriber_prescribes_in_its_screen(
    app, page, new_page, sign_in, watch, sandbox, worker, shot
):
    patient_id = a_patient(app)
    sign_in("admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Integrations").click()
    page.get_by_role("link", name="DoseSpot e-prescribing").click()
    fill_dosespot_settings(page, sandbox, "SANDBOXKEY-wrong")
    watch.expect_http_error(422, "/admin/integrations/dosespot")
    page.get_by_role("button", name="Save and enable").click()
    clinic_key = labelled(page, "Clinic key")
    expect(clinic_key).to_have_attribute("aria-invalid", "true")
    expect(clinic_key).to_have_accessible_description(re.compile("DoseSpot refused the clinic id"))
    expect(labelled(page, "API base URL")).to_have_value(sandbox.url)  # typed values kept

    fill_dosespot_settings(page, sandbox, CLINIC_KEY)
    page.get_by_role("button", name="Save and enable").click()
    expect(page.get_by_text("State: Enabled")).to_be_visible()
    expect(page.get_by_role("region", name="Health").get_by_text("Healthy")).to_be_visible()
    page.get_by_label("Jordan Lee").fill(str(PRESCRIBER))
    page.get_by_role("button", name="Save clinician ids").click()
    expect(page.get_by_label("Jordan Lee")).to_have_value(str(PRESCRIBER))
    shot("console")

    doctor = new_page()
    sign_in_by_cookie(doctor, app, "drlee")
    doctor.goto(f"/chart/patients/{patient_id}")
    doctor.get_by_role("link", name="Prescribe (e-prescribing)").click()
    screen = doctor.frame_locator("iframe[title='DoseSpot e-prescribing prescribing screen']")
    expect(screen.get_by_role("heading", name="Prescribe for Ana Muñoz")).to_be_visible()
    screen.get_by_label("Drug").select_option(label="lisinopril 10 MG Oral Tablet")
    screen.get_by_label("Quantity").fill("30")
    screen.get_by_label("Days supply").fill("30")
    screen.get_by_label("Refills").fill("2")
    screen.get_by_label("Directions").fill("Take 1 tablet by mouth once daily")
    screen.get_by_role("button", name="Sign & Send").click()
    expect(screen.get_by_role("status")).to_contain_text("sent.")

    doctor.get_by_role("link", name="Back to chart").click()
    expect(doctor.get_by_role("heading", name="Chart summary")).to_be_visible()
    doctor.get_by_role("link", name="Active medications").click()
    medication = doctor.get_by_role("row").filter(has_text="lisinopril 10 MG Oral Tablet")
    expect(medication).to_contain_text("Prescribed here")
    doctor.get_by_role("link", name="Prescriptions").click()
    prescription = doctor.get_by_role("row").filter(has_text="lisinopril 10 MG Oral Tablet")
    # The pharmacy's verification arrives by webhook a moment later (later on a busy
    # machine): reload until it shows, each look waiting up to a second for the text.
    deadline = time.monotonic() + 60
    while True:
        try:
            expect(prescription).to_contain_text("Pharmacy verified", timeout=1_000)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            doctor.reload()
