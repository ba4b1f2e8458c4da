"""In Chromium: the prescriber signs a draft with a code from the authenticator app in the
signing dialog and watches its badge go from "Queued" to "Pharmacy verified" while the
worker delivers it to the DoseSpot sandbox and the sandbox's webhooks come back."""

from __future__ import annotations

import threading

import pytest
from playwright.sync_api import expect

from tests.admin.epcs_helpers import grant_drlee
from tests.integrations.dosespot.helpers import SandboxServer
from tests.prescriptions.dosespot_support import enable_dosespot, register_epcs_credential
from tests.prescriptions.signing_helpers import (
    OXYCODONE,
    a_draft,
    a_patient,
    load,
    work_until,
)
from tests.support.browser import sign_in_by_cookie, totp_now
from tests.support.database import PASSWORD


@pytest.mark.browser
def test_sign_with_a_code_and_watch_it_reach_the_pharmacy(app, live_server, page, watch):
    sandbox = SandboxServer.for_portal(live_server)
    try:
        enable_dosespot(app, sandbox)
        patient_id = a_patient(app)
        rx_id = a_draft(app, patient_id)
        sign_in_by_cookie(page, app, "drlee")
        page.goto(f"/prescriptions/{rx_id}/sign")
        dialog = page.get_by_role("region", name="Sign prescription")
        expect(dialog).to_contain_text("lisinopril 10 MG Oral Tablet")
        dialog.get_by_label("Code from your authenticator app").fill(totp_now(app, "drlee"))
        with page.expect_response(lambda r: r.url.endswith(f"/prescriptions/{rx_id}/sign")):
            dialog.get_by_role("button", name="Sign and send").click()
        signed = page.get_by_role("region", name="Signed prescription")
        expect(signed.get_by_text("Queued")).to_be_visible()

        # The worker, beside the page: delivers the send, then processes the webhooks.
        done = threading.Event()
        worker = threading.Thread(
            target=lambda: (
                work_until(app, lambda: load(app, rx_id).state == "pharmacy_verified", "it"),
                done.set(),
            ),
            daemon=True,
        )
        worker.start()
        expect(signed.get_by_text("Pharmacy verified")).to_be_visible(timeout=70_000)
        worker.join(70)
        assert done.is_set()
        watch.assert_clean(page)
    finally:
        sandbox.stop()


@pytest.mark.browser
def test_a_schedule_ii_is_signed_with_password_and_code(app, page, watch):
    grant_drlee(app)
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id, drug=OXYCODONE)
    sign_in_by_cookie(page, app, "drlee")
    page.goto(f"/prescriptions/{rx_id}/sign")
    dialog = page.get_by_role("region", name="Sign prescription")
    expect(dialog.get_by_text("Schedule II")).to_be_visible()
    # No connector in this clinic: signed, to be printed. Without the password: refused.
    watch.expect_http_error(422, f"/prescriptions/{rx_id}/sign")
    dialog.get_by_label("Code from your authenticator app").fill(totp_now(app, "drlee"))
    with page.expect_response(lambda r: r.url.endswith(f"/prescriptions/{rx_id}/sign")):
        dialog.get_by_role("button", name="Sign", exact=True).click()
    expect(dialog.get_by_text("Type your password.")).to_be_visible()
    assert load(app, rx_id).state == "draft"

    dialog = page.get_by_role("region", name="Sign prescription")
    dialog.get_by_label("Your password (controlled substance)").fill(PASSWORD)
    dialog.get_by_label("Code from your authenticator app").fill(totp_now(app, "drlee"))
    with page.expect_response(lambda r: r.url.endswith(f"/prescriptions/{rx_id}/sign")):
        dialog.get_by_role("button", name="Sign", exact=True).click()
    signed = page.get_by_role("region", name="Signed prescription")
    expect(signed.get_by_text("Signed", exact=True)).to_be_visible()
    assert load(app, rx_id).state == "signed" and load(app, rx_id).schedule == 2
    watch.assert_clean(page)


@pytest.mark.browser
def test_a_schedule_ii_signed_with_two_factors_reaches_pharmacy_verified_by_epcs(
    app, live_server, page, watch
):
    """EPCS end to end: password and code at signing; the worker sends it with sendEpcs and
    the prescriber's stored credential; the sandbox checks the PIN and one-time password."""
    sandbox = SandboxServer.for_portal(live_server)
    try:
        enable_dosespot(app, sandbox)
        grant_drlee(app)
        register_epcs_credential(app)
        patient_id = a_patient(app)
        rx_id = a_draft(app, patient_id, drug=OXYCODONE)
        sign_in_by_cookie(page, app, "drlee")
        page.goto(f"/prescriptions/{rx_id}/sign")
        dialog = page.get_by_role("region", name="Sign prescription")
        expect(dialog.get_by_text("Schedule II")).to_be_visible()
        dialog.get_by_label("Your password (controlled substance)").fill(PASSWORD)
        dialog.get_by_label("Code from your authenticator app").fill(totp_now(app, "drlee"))
        with page.expect_response(lambda r: r.url.endswith(f"/prescriptions/{rx_id}/sign")):
            dialog.get_by_role("button", name="Sign and send").click()
        signed = page.get_by_role("region", name="Signed prescription")
        expect(signed.get_by_text("Queued")).to_be_visible()
        done = threading.Event()
        worker = threading.Thread(
            target=lambda: (
                work_until(app, lambda: load(app, rx_id).state == "pharmacy_verified", "it"),
                done.set(),
            ),
            daemon=True,
        )
        worker.start()
        expect(signed.get_by_text("Pharmacy verified")).to_be_visible(timeout=70_000)
        worker.join(70)
        assert done.is_set()
        [at_vendor] = sandbox.prescriptions()
        assert at_vendor["Schedule"] and at_vendor["Status"] == 13  # PharmacyVerified
        watch.assert_clean(page)
    finally:
        sandbox.stop()
