"""A signed prescription on its way, over real sockets: the portal (live server) with DoseSpot
enabled against the sandbox; signing queues the send, the worker delivers it (sent, with the
vendor's id), webhooks move it to pharmacy verified; a pharmacy that fails transmission and
a vendor that refuses the send end in "error" with the reason, and "Send again" works."""

from __future__ import annotations

from portal.integrations import outbox
from portal.prescriptions.signing import services as signing
from portal.transaction import use_case
from tests.integrations.dosespot.helpers import PRESCRIBER
from tests.prescriptions.signing_helpers import (
    a_draft,
    a_patient,
    deliver,
    events,
    load,
    medications,
    outbox_messages,
    work_until,
)
from tests.support.clients import fresh_totp

XSS = "<script>alert(1)</script>"


def sign(doctor, app, rx_id: int):
    data = {"version": str(load(app, rx_id).version), "totp_code": fresh_totp(app, "drlee")}
    return doctor.post_form(f"/prescriptions/{rx_id}/sign", data)


def test_signed_queued_sent_then_pharmacy_verified(app, sandbox, signed_in):
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id, pharmacist_note=XSS)
    doctor = signed_in("drlee")
    dialog = doctor.get(f"/prescriptions/{rx_id}/sign").get_data(as_text=True)
    assert "Sign and send" in dialog and XSS not in dialog and "&lt;script&gt;" in dialog
    assert sign(doctor, app, rx_id).status_code == 303
    rx = load(app, rx_id)
    assert (rx.state, rx.fhir_status, rx.vendor_id) == ("queued", "active", None)
    [message] = outbox_messages(app, rx_id)
    assert message.idempotency_key == f"dosespot:send:rx-{rx_id}"
    assert message.operation == "send_prescription" and message.patient_id == patient_id
    payload = message.payload
    assert payload["clinician_id"] == PRESCRIBER and payload["prescription_id"] == f"rx-{rx_id}"
    assert payload["prescription"]["rxcui"] == "314076"
    assert payload["prescription"]["pharmacy_id"] == 3001
    assert payload["prescription"]["refills"] == 2
    # A second click queues nothing more.
    assert sign(doctor, app, rx_id).status_code == 303
    assert len(outbox_messages(app, rx_id)) == 1

    assert deliver(app).delivered == 1
    rx = load(app, rx_id)
    assert rx.state == "sent" and rx.connector == "dosespot" and rx.vendor_id
    [at_vendor] = sandbox.prescriptions()
    assert str(at_vendor["PrescriptionId"]) == rx.vendor_id
    assert at_vendor["NonDoseSpotPrescriptionId"] == f"rx-{rx_id}"
    assert at_vendor["DispensableDrugId"] == 5001 and at_vendor["DispenseUnitId"] == 26
    assert events(app, "prescription.transmitted")

    work_until(app, lambda: load(app, rx_id).state == "pharmacy_verified", "pharmacy verified")
    rx = load(app, rx_id)
    assert (rx.status, rx.fhir_status) == ("PharmacyVerified", "active")
    # One prescription, one medication list entry, whatever the webhooks said.
    assert len(sandbox.prescriptions()) == 1 and len(medications(app, patient_id)) == 1
    listed = doctor.get(f"/patients/{patient_id}/prescriptions").get_data(as_text=True)
    # One row for it (its drug also names the row's buttons, e.g. "Cancel lisinopril ...").
    assert ">Pharmacy verified<" in listed
    assert listed.count("<td>lisinopril 10 MG Oral Tablet") == 1
    assert XSS not in listed


def test_a_pharmacy_that_fails_transmission_ends_in_error_with_its_reason(app, sandbox, signed_in):
    patient_id = a_patient(app)
    rx_id = a_draft(
        app, patient_id, pharmacy_id="3003", pharmacy_name="Sandbox Broken Link Pharmacy"
    )
    doctor = signed_in("drlee")
    assert sign(doctor, app, rx_id).status_code == 303
    work_until(app, lambda: load(app, rx_id).state == "error", "the transmission error")
    rx = load(app, rx_id)
    assert rx.transmission_error == "Sandbox Broken Link Pharmacy did not accept the message."
    page = doctor.get("/prescriptions/transmission-errors").get_data(as_text=True)
    assert "did not accept the message" in page and "Muñoz" in page
    [viewed] = events(app, "prescription.errors_viewed")
    assert viewed.patient_id == patient_id
    # The vendor holds it in error: sending the same again would fail the same way.
    again = doctor.post_form(f"/prescriptions/{rx_id}/retry", {})
    assert again.status_code == 422
    assert "Choose another pharmacy or print it" in again.get_data(as_text=True)


def test_a_refused_send_is_an_error_in_words_and_send_again_works(app, sandbox, signed_in):
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id)
    doctor = signed_in("drlee")
    sandbox.faults(result_error=True)
    assert sign(doctor, app, rx_id).status_code == 303
    run = deliver(app)
    assert run.failed == 1
    rx = load(app, rx_id)
    assert rx.state == "error" and rx.transmission_error
    [message] = outbox_messages(app, rx_id)
    assert message.status == "failed"
    page = doctor.get("/prescriptions/transmission-errors").get_data(as_text=True)
    assert "Send again" in page
    top_bar = doctor.get("/eprescribe/count").get_data(as_text=True)
    assert "Transmission errors" in top_bar and 'aria-label="1 failed"' in top_bar

    sandbox.faults(result_error=False)
    answer = doctor.post_form(f"/prescriptions/{rx_id}/retry", {})
    assert answer.status_code == 303
    assert load(app, rx_id).state == "queued" and load(app, rx_id).transmission_error is None
    [message] = outbox_messages(app, rx_id)  # the same message, sent again
    assert message.status == "pending"
    assert events(app, "prescription.send_retried")
    assert deliver(app).delivered == 1
    assert load(app, rx_id).state == "sent"
    assert len(sandbox.prescriptions()) == 1


def test_the_outcome_handler_is_idempotent(app, sandbox, signed_in):
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id)
    assert sign(signed_in("drlee"), app, rx_id).status_code == 303
    deliver(app)
    [message] = outbox_messages(app, rx_id)
    before = load(app, rx_id)
    with app.app_context():
        outcome = outbox.Outcome(
            message.id, "dosespot", "send_prescription", "delivered", message.result, None
        )
        with use_case():
            signing.record_send_outcome(outcome)
    after = load(app, rx_id)
    assert (after.state, after.vendor_id) == (before.state, before.vendor_id)
