"""Cancelling a prescription the pharmacy holds, against the DoseSpot sandbox over real
sockets: the request (cancel requested, the outbox message, audited), its delivery through the
connector, and the pharmacy's answer coming back by webhook as cancelled or cancel denied."""

from __future__ import annotations

import html
import re

import pytest
import requests
from sqlalchemy import select

from portal.audit.models import AuditEvent
from portal.charting.lists.services import record_prescribed_medication
from portal.extensions import db
from portal.integrations.delivery import deliver_due
from portal.integrations.models import OutboxMessage
from portal.patients.models import Patient
from portal.prescriptions import states
from portal.prescriptions.models import Prescription
from portal.timeutil import utcnow
from portal.transaction import use_case
from tests.prescriptions.dosespot_support import IFRAME, all_prescriptions, launch, process_until
from tests.prescriptions.printing_helpers import (
    dosespot_against_sandbox,
    patient_with_address,
    portal_rx,
    rx_row,
)
from tests.support.clients import actor_of

REASON = {"reason": "therapy_changed", "comment": "Switched to losartan"}


@pytest.fixture
def dosespot(app, live_server):
    server = dosespot_against_sandbox(app, live_server)
    yield server
    server.stop()


def sent_through_the_vendor(app, doctor, patient_id: int, pharmacy_id: int) -> int:
    """A prescription written and sent in the vendor's screen to ``pharmacy_id``, verified by
    the pharmacy and written back into the chart; returns its id here."""
    page = launch(doctor, patient_id).get_data(as_text=True)
    launch_url = html.unescape(IFRAME.search(page).group(1))
    browser = requests.Session()
    screen = browser.get(launch_url, timeout=30)
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
            "PharmacyId": str(pharmacy_id),
            "Directions": "Take 1 tablet by mouth once daily",
            "action": "send",
        },
        timeout=30,
    )
    assert sent.status_code == 200 and "sent." in sent.text
    process_until(
        app,
        lambda: [rx.state for rx in all_prescriptions(app)] == [states.PHARMACY_VERIFIED],
        "the prescription to be verified by the pharmacy",
    )
    [rx] = all_prescriptions(app)
    return rx.id


def _cancel_messages(app) -> list[tuple[str, dict]]:
    with app.app_context():
        rows = db.session.execute(
            select(OutboxMessage.status, OutboxMessage.payload).where(
                OutboxMessage.operation == "cancel_prescription"
            )
        ).all()
        return [(status, payload) for status, payload in rows]


def _deliver(app):
    with app.app_context():
        run = deliver_due(seconds=5.0)
        db.session.remove()
    return run


def test_a_cancel_reaches_the_pharmacy_and_comes_back_cancelled(app, dosespot, signed_in):
    patient_id = patient_with_address(app)
    doctor = signed_in("drlee")
    rx_id = sent_through_the_vendor(app, doctor, patient_id, 3001)
    listed = doctor.get(f"/patients/{patient_id}/prescriptions").get_data(as_text=True)
    assert f'href="/prescriptions/{rx_id}/cancel"' in listed
    form = doctor.get(f"/prescriptions/{rx_id}/cancel")
    assert form.status_code == 200 and "Ask the pharmacy to cancel" in form.get_data(as_text=True)

    answer = doctor.post_form(f"/prescriptions/{rx_id}/cancel", REASON)
    assert answer.status_code == 303
    assert answer.location.endswith(f"/patients/{patient_id}/prescriptions")
    assert rx_row(app, rx_id).state == states.CANCEL_REQUESTED
    [(status, payload)] = _cancel_messages(app)
    assert status == "pending"
    assert payload["comment"] == "Therapy changed: Switched to losartan"
    # A second click finds the cancel asked.
    again = doctor.post_form(f"/prescriptions/{rx_id}/cancel", REASON)
    assert again.status_code == 409 and len(_cancel_messages(app)) == 1

    assert _deliver(app).delivered == 1
    process_until(
        app,
        lambda: rx_row(app, rx_id).state == states.CANCELLED,
        "the pharmacy's cancel to come back",
    )
    assert [status for status, _ in _cancel_messages(app)] == ["delivered"]
    listed = doctor.get(f"/patients/{patient_id}/prescriptions").get_data(as_text=True)
    past = listed.split('id="rx-past"', 1)[1]
    assert "Cancelled" in past and f'href="/prescriptions/{rx_id}/cancel"' not in listed
    with app.app_context():
        [detail] = db.session.scalars(
            select(AuditEvent.detail).where(AuditEvent.action == "prescription.cancel_requested")
        ).all()
    assert detail.endswith("reason therapy_changed") and "losartan" not in detail


def test_a_pharmacy_that_has_dispensed_denies_the_cancel(app, dosespot, signed_in):
    patient_id = patient_with_address(app)
    doctor = signed_in("drlee")
    rx_id = sent_through_the_vendor(app, doctor, patient_id, 3002)  # denies cancels
    assert doctor.post_form(f"/prescriptions/{rx_id}/cancel", REASON).status_code == 303
    assert _deliver(app).delivered == 1
    process_until(
        app,
        lambda: rx_row(app, rx_id).state == states.CANCEL_DENIED,
        "the pharmacy's denial to come back",
    )
    listed = doctor.get(f"/patients/{patient_id}/prescriptions").get_data(as_text=True)
    active = listed.split('id="rx-active"', 1)[1].split('id="rx-past"', 1)[0]
    # Still in force, shown so, and the prescriber may ask again.
    assert "Cancel denied" in active and f'href="/prescriptions/{rx_id}/cancel"' in active


def test_a_retried_cancel_whose_first_try_got_through_is_not_an_error(app, dosespot, signed_in):
    patient_id = patient_with_address(app)
    doctor = signed_in("drlee")
    rx_id = sent_through_the_vendor(app, doctor, patient_id, 3001)
    assert doctor.post_form(f"/prescriptions/{rx_id}/cancel", REASON).status_code == 303
    assert _deliver(app).delivered == 1
    # The worker died before recording the outcome: the same message is delivered again.
    with app.app_context(), use_case():
        message = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.operation == "cancel_prescription")
        ).one()
        message.status = "pending"
        message.next_attempt_at = utcnow()
    assert _deliver(app).delivered == 1


def test_what_the_pharmacy_does_not_hold_is_not_cancelled(app, chart, signed_in):
    patient_id = patient_with_address(app)
    draft = portal_rx(app, patient_id, chart.drlee, signed=False)
    printed = portal_rx(app, patient_id, chart.drlee, state=states.PRINTED)
    signed = portal_rx(app, patient_id, chart.drlee)
    doctor = signed_in("drlee")
    for rx_id, words in (
        (draft, "cannot be cancelled"),
        (printed, "was printed"),
        (signed, "cannot be cancelled"),
    ):
        answer = doctor.post_form(f"/prescriptions/{rx_id}/cancel", REASON)
        assert answer.status_code == 422, rx_id
        assert words in answer.get_data(as_text=True)
    assert _cancel_messages(app) == []


def test_a_cancel_needs_a_listed_reason_and_an_existing_prescription(app, chart, signed_in):
    patient_id = patient_with_address(app)
    rx_id = portal_rx(
        app, patient_id, chart.drlee, state=states.SENT, connector="dosespot", vendor_id="9"
    )
    doctor = signed_in("drlee")
    answer = doctor.post_form(f"/prescriptions/{rx_id}/cancel", {"reason": "", "comment": ""})
    assert answer.status_code == 422
    assert "Choose why the prescription is cancelled." in answer.get_data(as_text=True)
    assert rx_row(app, rx_id).state == states.SENT
    assert doctor.get(f"/prescriptions/{rx_id + 1000}/cancel").status_code == 404
    assert doctor.post_form(f"/prescriptions/{rx_id + 1000}/cancel", REASON).status_code == 404
    assert signed_in("nurse").get(f"/prescriptions/{rx_id}/cancel").status_code == 403
    # E-prescribing is off here: the pharmacy must be called instead.
    off = doctor.post_form(f"/prescriptions/{rx_id}/cancel", REASON)
    assert off.status_code == 422 and "call the pharmacy" in off.get_data(as_text=True)


def _medication_with_open_prescription(app, chart, patient_id: int) -> tuple[int, int]:
    rx_id = portal_rx(
        app, patient_id, chart.drlee, state=states.SENT, connector="dosespot", vendor_id="88"
    )
    with app.app_context(), use_case():
        patient = db.session.get(Patient, patient_id)
        medication = record_prescribed_medication(
            actor_of("drlee"),
            patient,
            {"drug": "lisinopril 10 MG Oral Tablet", "rxnorm_code": "314076"},
        )
        db.session.flush()
        db.session.get(Prescription, rx_id).medication_id = medication.id
        return medication.id, rx_id


def _stop(client, patient_id: int, medication_id: int):
    return client.post_form(
        f"/chart/patients/{patient_id}/medications/{medication_id}/stop",
        {"stop_date": "2026-12-06", "reason": "Cough", "version": "1"},
    )


def test_stopping_a_medication_offers_to_cancel_its_open_prescription(app, chart, signed_in):
    patient_id = patient_with_address(app)
    medication_id, rx_id = _medication_with_open_prescription(app, chart, patient_id)
    doctor = signed_in("drlee")
    answer = _stop(doctor, patient_id, medication_id)
    assert answer.status_code == 303, answer.get_data(as_text=True)[:1000]
    assert answer.location.endswith(f"/prescriptions/{rx_id}/cancel")
    offer = doctor.get(answer.location).get_data(as_text=True)
    assert "The pharmacy still holds a prescription" in offer
    assert "Ask the pharmacy to cancel" in offer
    assert rx_row(app, rx_id).state == states.SENT  # nothing sent until asked


def test_a_nurse_stopping_it_returns_to_the_list(app, chart, signed_in):
    patient_id = patient_with_address(app)
    medication_id, _ = _medication_with_open_prescription(app, chart, patient_id)
    answer = _stop(signed_in("nurse"), patient_id, medication_id)
    assert answer.status_code == 303
    assert answer.location.endswith(f"/chart/patients/{patient_id}/medications")
