"""E-prescribing end to end, over real sockets: the portal (live server) with DoseSpot enabled
against the sandbox, the prescriber's launch (patient synced, fresh SSO URL, framed), the
prescription written and sent in the sandbox's screen, its webhooks into the portal's inbox,
and the chart's write-back (prescriptions list and medication list, each once), repaired by
the sweep when webhooks are lost."""

from __future__ import annotations

import html
import logging
import re
import time
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select, update

from portal.audit.models import AuditEvent
from portal.charting.models import Medication
from portal.extensions import db
from portal.integrations import outbox
from portal.integrations.delivery import deliver_due
from portal.integrations.models import ExternalId, InboxMessage, OutboxMessage
from portal.patients.models import Patient
from portal.prescriptions.models import Prescription
from portal.prescriptions.services import patient_snapshot, sweep
from portal.timeutil import utcnow
from portal.transaction import use_case
from tests.integrations.dosespot.helpers import (
    CLINIC_KEY,
    PRESCRIBER,
    SUBSCRIPTION_KEY,
    WEBHOOK_SECRET,
    SandboxServer,
    prescription,
)
from tests.prescriptions.dosespot_support import (
    DEADLINE_SECONDS,
    IFRAME,
    all_prescriptions,
    enable_dosespot,
    launch,
    process_until,
)
from tests.support.clients import actor_of
from tests.support.factories import patient_row


@pytest.fixture
def sandbox(live_server):
    server = SandboxServer.for_portal(live_server)
    yield server
    server.stop()


@pytest.fixture
def dosespot(app, sandbox):
    """DoseSpot enabled (its check passed against the sandbox), Dr. Lee linked to 2001."""
    return enable_dosespot(app, sandbox)


def a_patient(app, given: str = "Ana", **columns) -> int:
    values = {
        "address_line1": "12 Elm Street",
        "city": "Springfield",
        "state": "MA",
        "postal_code": "01101",
        "phone_mobile": "+14135550142",
        **columns,
    }
    with app.app_context(), use_case():
        patient = patient_row(given, "Muñoz", date(1980, 2, 3), **values)
        db.session.add(patient)
        db.session.flush()
        return patient.id


def sign_and_send(launch_url: str, directions: str) -> None:
    """What the prescriber does in the framed screen: pick the drug, sign and send."""
    browser = requests.Session()
    screen = browser.get(launch_url, timeout=30)
    assert screen.status_code == 200 and "Prescribe for Ana" in screen.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', screen.text).group(1)
    sent = browser.post(
        screen.url,
        data={
            "csrf": csrf,
            "DispensableDrugId": "5001",  # lisinopril 10 MG Oral Tablet
            "Quantity": "30",
            "DispenseUnitId": "26",
            "DaysSupply": "30",
            "Refills": "2",
            "PharmacyId": "3001",
            "Directions": directions,
            "action": "send",
        },
        timeout=30,
    )
    assert sent.status_code == 200 and "sent." in sent.text, sent.text[-2000:]


def medications(app, patient_id: int) -> list[Medication]:
    with app.app_context():
        rows = list(
            db.session.scalars(select(Medication).where(Medication.patient_id == patient_id))
        )
        db.session.expunge_all()
        return rows


def test_the_prescriber_launches_sends_and_sees_it_in_the_chart(app, dosespot, signed_in):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    page = launch(doctor, patient_id)
    csp = page.headers["Content-Security-Policy"]
    assert f"frame-src 'self' {dosespot.url};" in csp
    launch_url = html.unescape(IFRAME.search(page.get_data(as_text=True)).group(1))
    query = parse_qs(urlsplit(launch_url).query)
    [vendor_patient] = dosespot.patients()
    assert query["PatientId"] == [str(vendor_patient["PatientId"])]
    assert query["SingleSignOnUserId"] == [str(PRESCRIBER)]
    assert vendor_patient["NonDoseSpotMedicalRecordNumber"]  # our MRN, not a name, links them
    # A second launch makes a fresh URL and updates the same vendor patient.
    again = IFRAME.search(launch(doctor, patient_id).get_data(as_text=True)).group(1)
    assert html.unescape(again) != launch_url and len(dosespot.patients()) == 1
    # The URL is in no audit detail (nor anywhere else we keep).
    with app.app_context():
        launches = db.session.scalars(
            select(AuditEvent).filter_by(action="eprescribing.launched")
        ).all()
        assert [(e.patient_id, e.detail) for e in launches] == [(patient_id, "dosespot")] * 2

    sign_and_send(launch_url, "Take 1 tablet by mouth once daily")
    process_until(
        app,
        lambda: [rx.status for rx in all_prescriptions(app)] == ["PharmacyVerified"],
        "the prescription to reach PharmacyVerified",
    )
    [rx] = all_prescriptions(app)
    assert (rx.patient_id, rx.drug, rx.rxcui) == (
        patient_id,
        "lisinopril 10 MG Oral Tablet",
        "314076",
    )
    assert (rx.quantity, rx.refills, rx.days_supply, rx.fhir_status) == ("30", "2", 30, "active")
    assert rx.prescriber_id == actor_of_id(app, "drlee")
    [medication] = medications(app, patient_id)
    assert (medication.drug, medication.source, medication.id) == (
        rx.drug,
        "prescribed_here",
        rx.medication_id,
    )
    listed = doctor.get(f"/patients/{patient_id}/prescriptions").get_data(as_text=True)
    assert "lisinopril 10 MG Oral Tablet" in listed and "Pharmacy verified" in listed

    # Every status webhook (Sending, eRxSent, PharmacyVerified) is processed, and all of
    # them lead to the one prescription and the one list entry.
    def all_processed() -> bool:
        statuses = db.session.scalars(select(InboxMessage.status)).all()
        return len(statuses) >= 3 and set(statuses) == {"processed"}

    process_until(app, all_processed, "every webhook to be processed")
    assert len(all_prescriptions(app)) == 1 and len(medications(app, patient_id)) == 1


def actor_of_id(app, username: str) -> int:
    with app.app_context():
        return actor_of(username).id


def test_lost_webhooks_are_repaired_by_the_sweep(app, dosespot, signed_in):
    patient_id = a_patient(app)
    dosespot.faults(webhook_drop=True)
    page = launch(signed_in("drlee"), patient_id)
    sign_and_send(
        html.unescape(IFRAME.search(page.get_data(as_text=True)).group(1)), "Take 1 daily"
    )
    deadline = time.monotonic() + DEADLINE_SECONDS
    while dosespot.prescriptions()[0]["Status"] != 13:  # PharmacyVerified at the vendor
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert all_prescriptions(app) == []  # nothing arrived
    with app.app_context():
        assert sweep() == "e-prescribing sweep: 1 prescriptions updated"
        assert sweep() is None  # nothing new: nothing written twice
    [rx] = all_prescriptions(app)
    assert rx.status == "PharmacyVerified" and len(medications(app, patient_id)) == 1


def test_a_patient_the_vendor_would_refuse_gets_the_reasons_and_nothing_is_sent(
    app, dosespot, signed_in
):
    patient_id = a_patient(app, address_line1=None, phone_mobile=None)
    page = launch(signed_in("drlee"), patient_id).get_data(as_text=True)
    assert "Before prescribing electronically" in page and "<iframe" not in page
    assert "address" in page.lower() and "phone" in page.lower()
    assert dosespot.patients() == []


def test_without_a_linked_prescriber_account_the_reason_is_shown(app, dosespot, signed_in):
    with app.app_context(), use_case():
        db.session.query(ExternalId).delete()
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    answer = doctor.get(f"/patients/{patient_id}/eprescribe")
    assert answer.status_code == 303
    chart = doctor.get(answer.location)
    assert "not linked to a DoseSpot e-prescribing prescriber" in chart.get_data(as_text=True)


def test_a_vendor_copy_gone_missing_is_found_or_made_again(app, dosespot, signed_in):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    launch(doctor, patient_id)
    dosespot.control("reset")  # the vendor lost the patient we linked
    page = launch(doctor, patient_id).get_data(as_text=True)
    [vendor_patient] = dosespot.patients()
    assert f"PatientId={vendor_patient['PatientId']}" in html.unescape(page)
    with app.app_context():
        assert db.session.scalar(
            select(ExternalId.external_id).where(ExternalId.kind == "patient")
        ) == str(vendor_patient["PatientId"])


def test_duplicated_and_reordered_webhooks_end_in_one_prescription(app, dosespot, signed_in):
    patient_id = a_patient(app)
    dosespot.faults(webhook_duplicate=True, webhook_reorder=True)
    page = launch(signed_in("drlee"), patient_id)
    sign_and_send(html.unescape(IFRAME.search(page.get_data(as_text=True)).group(1)), "Daily")
    deadline = time.monotonic() + DEADLINE_SECONDS
    while dosespot.prescriptions()[0]["Status"] != 13:  # PharmacyVerified at the vendor
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # The sandbox holds each event until the next one has gone: the last waits for this.
    dosespot.faults(webhook_reorder=False)

    def settled() -> bool:
        rows = db.session.scalars(select(Prescription.status)).all()
        inbox = db.session.scalars(select(InboxMessage.status)).all()
        return rows == ["PharmacyVerified"] and set(inbox) == {"processed"}

    process_until(app, settled, "the duplicated, reordered events to settle")
    assert len(medications(app, patient_id)) == 1


def test_a_send_waits_while_the_vendor_is_down_and_goes_once_when_back(app, dosespot):
    patient_id = a_patient(app)
    with app.app_context():
        patient = db.session.get(Patient, patient_id)
        snapshot = patient_snapshot(patient)
        db.session.remove()
    payload = {
        "clinician_id": PRESCRIBER,
        "dosespot_patient_id": None,
        "patient": snapshot,
        "prescription": prescription(),
    }
    with app.app_context(), use_case():
        message_id = outbox.enqueue(
            "dosespot", "send_prescription", payload, idempotency_key="rx-77", patient_id=patient_id
        ).id
    dosespot.faults(down=True)
    with app.app_context():
        assert deliver_due(name="test").retrying == 1
        waiting = db.session.get(OutboxMessage, message_id)
        assert waiting.status == "pending" and "503" in (waiting.last_error or "")
        db.session.remove()
    assert dosespot.prescriptions() == []
    dosespot.faults(down=False)
    with app.app_context():
        db.session.execute(
            update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        assert deliver_due(name="test").delivered == 1
        delivered = db.session.get(OutboxMessage, message_id)
        assert delivered.result["sent"] is True
        db.session.remove()
    [sent] = dosespot.prescriptions()
    assert sent["NonDoseSpotPrescriptionId"] == "rx-77"


def test_a_prescriber_may_open_a_message_about_the_patient_and_it_is_audited(
    app, dosespot, signed_in
):
    patient_id = a_patient(app)
    other_id = a_patient(app, given="Otto")
    with app.app_context(), use_case():
        sent = outbox.enqueue(
            "dosespot", "send_prescription", {"note": "for Ana"}, patient_id=patient_id
        ).id
    doctor = signed_in("drlee")
    listing = doctor.get(f"/patients/{patient_id}/eprescribing-messages")
    assert listing.status_code == 200 and "send_prescription" in listing.get_data(as_text=True)
    assert "for Ana" not in listing.get_data(as_text=True)  # the list shows no content
    shown = doctor.get(f"/patients/{patient_id}/eprescribing-messages/sent/{sent}")
    assert shown.status_code == 200 and "for Ana" in shown.get_data(as_text=True)
    # Through another patient's page, the message does not exist.
    assert doctor.get(f"/patients/{other_id}/eprescribing-messages/sent/{sent}").status_code == 404
    with app.app_context():
        [opened] = db.session.scalars(
            select(AuditEvent).filter_by(action="integrations.payload_viewed")
        ).all()
        assert (opened.patient_id, opened.object_id, opened.username) == (
            patient_id,
            str(sent),
            "drlee",
        )


def test_no_secret_or_launch_url_reaches_a_log_line_or_an_audit_detail(
    app, sandbox, signed_in, caplog
):
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's requests included
    enable_dosespot(app, sandbox)  # enabling runs the connection check with the keys
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    page = launch(doctor, patient_id).get_data(as_text=True)
    launch_url = html.unescape(IFRAME.search(page).group(1))
    code = parse_qs(urlsplit(launch_url).query)["SingleSignOnCode"][0]
    # The test plays the prescriber's browser here; what its own HTTP client logs (the launch
    # URL it opens) is the browser's, not the portal's, so it is kept out of the capture.
    browser_log = logging.getLogger("urllib3")
    level = browser_log.level
    browser_log.setLevel(logging.WARNING)
    try:
        sign_and_send(launch_url, "Take 1 daily")
    finally:
        browser_log.setLevel(level)
    process_until(app, lambda: bool(all_prescriptions(app)), "the write-back")
    with app.app_context():
        details = " ".join(e.detail or "" for e in db.session.scalars(select(AuditEvent)))
    assert "POST /webapi/v2/connect/token" in caplog.text  # the vendor calls were logged
    for secret in (CLINIC_KEY, SUBSCRIPTION_KEY, WEBHOOK_SECRET, code, launch_url):
        assert secret not in caplog.text
        assert secret not in details
    for page_shown in (
        signed_in("admin").get("/admin/integrations/dosespot").get_data(as_text=True),
    ):
        assert CLINIC_KEY not in page_shown and WEBHOOK_SECRET not in page_shown
