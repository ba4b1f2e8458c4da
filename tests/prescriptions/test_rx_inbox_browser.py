"""In Chromium: a pharmacy asks for a renewal through the sandbox's control API; the
prescriber opens the Rx inbox from the top bar's count, approves with refills, signs with a
code from the authenticator app, and the sandbox shows the approval once the worker has
delivered it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.integrations.dosespot.helpers import SandboxServer
from tests.prescriptions.dosespot_support import enable_dosespot
from tests.prescriptions.rx_inbox_helpers import (
    a_sent_prescription,
    requests_stored,
    sandbox_request,
)
from tests.prescriptions.signing_helpers import a_patient, work_until
from tests.support.browser import sign_in_by_cookie, totp_now


@pytest.mark.browser
def test_approve_a_renewal_from_the_inbox_and_the_sandbox_gets_it(
    app, live_server, page, watch, signed_in
):
    sandbox = SandboxServer.for_portal(live_server)
    try:
        enable_dosespot(app, sandbox)
        patient_id = a_patient(app)
        _, vendor_rx = a_sent_prescription(app, signed_in("drlee"), patient_id)
        made = sandbox.control(
            "refills", {"PrescriptionId": vendor_rx, "Details": "Patient asks for more"}
        )
        work_until(app, lambda: len(requests_stored(app)) == 1, "the renewal request")

        sign_in_by_cookie(page, app, "drlee")
        page.get_by_role("link", name=re.compile(r"^Rx inbox")).click()
        expect(page.get_by_role("heading", name=re.compile("Rx inbox"))).to_be_visible()
        page.get_by_role("link", name="Renewal request").click()
        expect(page.get_by_text("Muñoz").first).to_be_visible()  # the patient's banner
        history = page.get_by_role("region", name="The prescription's history")
        expect(history.get_by_text("lisinopril 10 MG Oral Tablet").first).to_be_visible()

        page.get_by_label("Refills to authorise").fill("2")
        page.get_by_role("button", name="Approve and sign").click()
        dialog = page.get_by_role("region", name="Sign prescription")
        expect(dialog).to_contain_text("lisinopril 10 MG Oral Tablet")
        dialog.get_by_label("Code from your authenticator app").fill(totp_now(app, "drlee"))
        with page.expect_response(lambda r: "/sign" in r.url and r.request.method == "POST"):
            dialog.get_by_role("button", name="Sign and send").click()
        expect(page.get_by_role("region", name="Signed prescription")).to_be_visible()

        work_until(
            app,
            lambda: sandbox_request(sandbox, made["RequestId"])["Status"] == "Approved",
            "the approval at the sandbox",
        )
        at_vendor = sandbox_request(sandbox, made["RequestId"])
        assert at_vendor["Answer"]["Refills"] == 2 and at_vendor["AnswerCalls"] == 1
        watch.assert_clean(page)
    finally:
        sandbox.stop()
