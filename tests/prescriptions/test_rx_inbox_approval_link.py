"""An approved pharmacy request, after the vendor: DoseSpot makes a NEW prescription at the
pharmacy from the approval and does not say which, so the portal links the prescription it
signed for the approval to the vendor's only when exactly one of the patient's prescriptions
there fits (same drug, written since by the approving clinician, at the request's pharmacy,
linked to none of ours). Real sockets: the portal as a
live server, DoseSpot's sandbox as another, webhooks and the worker's jobs between them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.integrations.models import InboxMessage, OutboxMessage
from portal.prescriptions.services import sweep
from portal.timeutil import utcnow
from portal.transaction import use_case
from tests.integrations.dosespot.helpers import connector
from tests.prescriptions.dosespot_support import (
    all_prescriptions,
    process_until,
)
from tests.prescriptions.rx_inbox_helpers import (
    a_sent_prescription,
    answer_messages,
    requests_stored,
    sandbox_request,
    sign,
)
from tests.prescriptions.signing_helpers import a_draft, a_patient, deliver, load, work_until

PHARMACY_VERIFIED = 13
OTHER_PRESCRIBER = 2002  # the sandbox's Dr. Frost: no portal user is linked to him


def approved_and_signed(app, sandbox, doctor, patient_id: int, refills: str = "2"):
    """Lisinopril sent, a pharmacy's renewal request for it, approved with ``refills`` and
    signed (the approval in the outbox, not delivered): (original id, the vendor's id of
    the original, the vendor's request id, our request's id, the approval's id)."""
    rx_id, vendor_rx = a_sent_prescription(app, doctor, patient_id)
    made = sandbox.control("refills", {"PrescriptionId": vendor_rx})
    work_until(app, lambda: len(requests_stored(app)) == 1, "the renewal request")
    [stored] = requests_stored(app)
    answer = doctor.post_form(
        f"/prescriptions/inbox/requests/{stored.id}/approve", {"refills": refills}
    )
    approval_id = int(answer.headers["Location"].rstrip("/").split("/")[-2])
    assert sign(doctor, app, approval_id).status_code == 303
    assert load(app, approval_id).state == "queued"
    return rx_id, vendor_rx, made["RequestId"], stored.id, approval_id


def patient_rows(app, patient_id: int) -> list:
    return [rx for rx in all_prescriptions(app) if rx.patient_id == patient_id]


def webhooks_done(app, sandbox) -> bool:
    """Each webhook the sandbox emitted reached the portal, which processed every one."""
    with sandbox.box.state.lock:
        emitted = list(sandbox.box.state.store.events)
        answered = all(
            any(isinstance(a["Outcome"], int) and 200 <= a["Outcome"] < 300 for a in e["Attempts"])
            for e in emitted
        )
    with app.app_context():
        waiting = db.session.scalar(
            select(func.count())
            .select_from(InboxMessage)
            .where(InboxMessage.status.in_(("received", "failed")))
        )
        db.session.remove()
    return bool(emitted) and answered and waiting == 0


def settled(app, sandbox, vendor_ids) -> bool:
    """The vendor's prescriptions are pharmacy verified and every webhook processed."""
    with sandbox.box.state.lock:
        store = sandbox.box.state.store
        verified = all(store.prescriptions[i]["Status"] == PHARMACY_VERIFIED for i in vendor_ids)
    return verified and webhooks_done(app, sandbox)


def audit_count(app, action: str) -> int:
    with app.app_context():
        count = db.session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
        )
        db.session.remove()
        return count


def due_now(app) -> None:
    with app.app_context(), use_case():
        db.session.execute(
            update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def test_an_approval_is_linked_to_the_vendors_new_prescription_and_follows_its_statuses(
    app, sandbox, signed_in
):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    rx_id, vendor_rx, request_id, _, approval_id = approved_and_signed(
        app, sandbox, doctor, patient_id
    )
    assert deliver(app).delivered == 1

    at_vendor = sandbox_request(sandbox, request_id)
    new_rx = sandbox.box.state.store.prescriptions[at_vendor["NewPrescriptionId"]]
    original = sandbox.box.state.store.prescriptions[vendor_rx]
    # The vendor's new prescription: the original's drug, directions, quantity and pharmacy,
    # the approval's refills, and none of our ids.
    assert new_rx["PrescriptionId"] != request_id
    assert new_rx["NonDoseSpotPrescriptionId"] is None and new_rx["Refills"] == "2"
    for same in ("DispensableDrugId", "Directions", "Quantity", "DispenseUnitId", "PharmacyId"):
        assert new_rx[same] == original[same]
    assert load(app, approval_id).vendor_id == str(new_rx["PrescriptionId"])

    # The vendor's statuses now reach the approval: pharmacy verified, then a fill.
    work_until(
        app, lambda: load(app, approval_id).state == "pharmacy_verified", "pharmacy verified"
    )
    sandbox.control(f"prescriptions/{new_rx['PrescriptionId']}/fill", {"Fill": "FullFill"})
    work_until(app, lambda: load(app, approval_id).state == "filled", "the fill")
    # One row per prescription: the vendor's new one was never recorded beside the approval.
    assert sorted(rx.id for rx in patient_rows(app, patient_id)) == [rx_id, approval_id]
    [stored] = requests_stored(app)
    assert stored.vendor_link_note is None and audit_count(app, "prescription.approval_linked")
    inbox = doctor.get("/prescriptions/inbox").get_data(as_text=True)
    assert "Approvals not linked" not in inbox


def test_two_prescriptions_that_fit_are_not_guessed_between_and_the_prescriber_is_told(
    app, sandbox, signed_in
):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    rx_id, vendor_rx, request_id, stored_id, approval_id = approved_and_signed(
        app, sandbox, doctor, patient_id
    )
    # After the approval was signed, the same drug was written for the patient in the
    # vendor's own screen (no id of ours on it): the vendor will hold two that fit.
    original = dict(sandbox.box.state.store.prescriptions[vendor_rx])
    vendor = connector(sandbox)
    vendor_patient = original["PatientId"]
    made = vendor.client.post(
        f"api/patients/{vendor_patient}/prescriptions/coded",
        2001,
        {
            "DispensableDrugId": original["DispensableDrugId"],
            "DispenseUnitId": original["DispenseUnitId"],
            "Quantity": original["Quantity"],
            "Refills": 0,
            "Directions": original["Directions"],
            "Status": 1,
            "PharmacyId": original["PharmacyId"],
        },
    )
    vendor.client.post(
        f"api/patients/{vendor_patient}/prescriptions/send", 2001, {"PrescriptionIds": [made["Id"]]}
    )
    assert deliver(app).delivered == 1
    new_rx = sandbox_request(sandbox, request_id)["NewPrescriptionId"]

    approval = load(app, approval_id)
    assert (approval.vendor_id, approval.state) == (None, "sent")
    [stored] = requests_stored(app)
    assert stored.vendor_link_note.startswith("2 prescriptions at the e-prescribing service")
    # Their webhooks come and go; the sweep re-reads: still neither is linked, and neither is
    # recorded as a prescription of its own (one of them is the approval).
    work_until(app, lambda: settled(app, sandbox, [new_rx, made["Id"]]), "the webhooks")
    with app.app_context():
        sweep()
        db.session.remove()
    assert load(app, approval_id).vendor_id is None
    assert sorted(rx.id for rx in patient_rows(app, patient_id)) == [rx_id, approval_id]
    assert audit_count(app, "prescription.approval_linked") == 0
    assert audit_count(app, "rx_request.approval_not_linked") == 1  # said once, not per read

    inbox = doctor.get("/prescriptions/inbox").get_data(as_text=True)
    assert "Approvals not linked to the pharmacy" in inbox
    assert f"/prescriptions/inbox/requests/{stored_id}" in inbox
    item = doctor.get(f"/prescriptions/inbox/requests/{stored_id}").get_data(as_text=True)
    assert "none is linked rather than guess" in item


def test_a_duplicated_delivery_links_the_approval_once(app, sandbox, signed_in):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    rx_id, _, request_id, _, approval_id = approved_and_signed(app, sandbox, doctor, patient_id)
    [message] = answer_messages(app)
    # The first try reached the vendor and its answer was lost (the worker died before
    # recording it): the vendor made the prescription and its webhooks reach the portal
    # while the approval is still queued here.
    first = connector(sandbox).deliver(message.operation, message.payload, message.idempotency_key)
    assert first["answered"] is True
    new_rx = sandbox_request(sandbox, request_id)["NewPrescriptionId"]
    process_until(app, lambda: settled(app, sandbox, [new_rx]), "its webhooks, all of them")
    # The new prescription was held back from the chart, not recorded beside the approval.
    assert sorted(rx.id for rx in patient_rows(app, patient_id)) == [rx_id, approval_id]

    # The retry: the vendor refuses a second answer, the connector finds it answered, and
    # the new prescription is found all the same.
    assert deliver(app).delivered == 1
    assert sandbox_request(sandbox, request_id)["AnswerCalls"] == 2
    linked = load(app, approval_id)
    # Its statuses come with the link (the read after approving): no webhook is left to tell.
    assert (linked.vendor_id, linked.state) == (str(new_rx), "pharmacy_verified")
    # Delivered once more (at least once: a lost outcome): still the one link.
    with app.app_context(), use_case():
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id)
            .values(status="pending", next_attempt_at=utcnow() - timedelta(seconds=1))
        )
    assert deliver(app).delivered == 1
    assert load(app, approval_id).vendor_id == str(new_rx)
    assert audit_count(app, "prescription.approval_linked") == 1
    assert sorted(rx.id for rx in patient_rows(app, patient_id)) == [rx_id, approval_id]
    # Only one prescription was made from the approval at the vendor.
    store = sandbox.box.state.store
    made = [r for r in store.refill_requests.values() if r.get("NewPrescriptionId")]
    assert len(made) == 1


def test_an_approval_made_while_the_vendor_was_down_is_linked_once_it_goes(app, sandbox, signed_in):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    _, _, request_id, _, approval_id = approved_and_signed(app, sandbox, doctor, patient_id)
    sandbox.faults(down=True)
    assert deliver(app).delivered == 0
    assert sandbox_request(sandbox, request_id)["Status"] == "Pending"
    assert load(app, approval_id).state == "queued"
    sandbox.faults(down=False)
    due_now(app)
    assert deliver(app).delivered == 1
    new_rx = sandbox_request(sandbox, request_id)["NewPrescriptionId"]
    assert load(app, approval_id).vendor_id == str(new_rx)
    work_until(
        app, lambda: load(app, approval_id).state == "pharmacy_verified", "pharmacy verified"
    )


def test_an_approval_not_linked_at_delivery_is_linked_by_the_sweep(app, sandbox, signed_in):
    """No patient to read by (a message queued before approvals carried it) and every webhook
    lost: the delivery links nothing and says so; the sweep's read makes the link."""
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    _, _, request_id, stored_id, approval_id = approved_and_signed(app, sandbox, doctor, patient_id)
    with app.app_context(), use_case():
        message = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.prescription_id == approval_id)
        ).one()
        message.payload = {k: v for k, v in message.payload.items() if k != "dosespot_patient_id"}
    sandbox.faults(webhook_drop=True)
    assert deliver(app).delivered == 1
    assert load(app, approval_id).vendor_id is None
    [stored] = requests_stored(app)
    assert "could not be read after the approval" in stored.vendor_link_note
    page = doctor.get(f"/prescriptions/inbox/requests/{stored_id}").get_data(as_text=True)
    assert "could not be read after the approval" in page

    with app.app_context():
        sweep()
        db.session.remove()
    new_rx = sandbox_request(sandbox, request_id)["NewPrescriptionId"]
    approval = load(app, approval_id)
    assert approval.vendor_id == str(new_rx)
    assert requests_stored(app)[0].vendor_link_note is None


def written_at_the_vendor(sandbox, vendor_rx: int, clinician: int, pharmacy: int) -> int:
    """The same drug as the vendor's ``vendor_rx``, written and sent for its patient in the
    vendor's own screen by ``clinician`` to ``pharmacy`` (no id of ours on it)."""
    original = dict(sandbox.box.state.store.prescriptions[vendor_rx])
    vendor = connector(sandbox)
    path = f"api/patients/{original['PatientId']}/prescriptions"
    made = vendor.client.post(
        f"{path}/coded",
        clinician,
        {
            "DispensableDrugId": original["DispensableDrugId"],
            "DispenseUnitId": original["DispenseUnitId"],
            "Quantity": original["Quantity"],
            "Refills": 0,
            "Directions": original["Directions"],
            "Status": 1,
            "PharmacyId": pharmacy,
        },
    )
    vendor.client.post(f"{path}/send", clinician, {"PrescriptionIds": [made["Id"]]})
    return made["Id"]


def test_another_prescribers_prescription_is_not_taken_for_the_approvals(
    app, sandbox, signed_in, monkeypatch
):
    """The vendor does not list the approval's own prescription yet, and another prescriber
    wrote the same drug for the patient since, at the same pharmacy: it is the only one of
    the same drug written since, yet it is not the approval's (not linked), and it is
    recorded as the prescription it is."""
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    rx_id, vendor_rx, request_id, stored_id, approval_id = approved_and_signed(
        app, sandbox, doctor, patient_id
    )
    pharmacy = sandbox.box.state.store.prescriptions[vendor_rx]["PharmacyId"]
    theirs = written_at_the_vendor(sandbox, vendor_rx, OTHER_PRESCRIBER, pharmacy)
    # The vendor takes the approval but lists no prescription for it yet.
    monkeypatch.setattr(
        sandbox.box.lifecycle, "approve_request", lambda request, clinician, refills: None
    )
    assert deliver(app).delivered == 1
    assert sandbox_request(sandbox, request_id)["Status"] == "Approved"

    approval = load(app, approval_id)
    assert (approval.vendor_id, approval.state) == (None, "sent")
    [stored] = requests_stored(app)
    assert stored.vendor_link_note.startswith("The e-prescribing service has not shown")
    assert audit_count(app, "prescription.approval_linked") == 0
    # Dr. Frost's prescription is his own: its webhooks record it beside the two of ours.
    work_until(app, lambda: settled(app, sandbox, [theirs]), "its webhooks")
    rows = {rx.vendor_id: rx.id for rx in patient_rows(app, patient_id)}
    assert str(theirs) in rows and rows[str(theirs)] not in (rx_id, approval_id)
    assert load(app, approval_id).vendor_id is None
    item = doctor.get(f"/prescriptions/inbox/requests/{stored_id}").get_data(as_text=True)
    assert "has not shown the prescription this approval made yet" in item


def test_two_approvals_of_one_drug_to_two_pharmacies_are_each_linked_to_their_own(
    app, sandbox, signed_in
):
    """The patient's lisinopril at two pharmacies, each asks for a renewal and both are
    approved; both approvals reach the vendor before either outcome is recorded (the first
    tries' answers were lost), so each retry's read holds both new prescriptions, the same
    drug written since by the same prescriber: the pharmacy tells them apart."""
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    _, main_street = a_sent_prescription(app, doctor, patient_id)
    elm_id = a_draft(
        app, patient_id, pharmacy_id="3002", pharmacy_name="Sandbox Pharmacy Elm Avenue"
    )
    assert sign(doctor, app, elm_id).status_code == 303
    assert deliver(app).delivered == 1
    elm_avenue = int(load(app, elm_id).vendor_id)
    for vendor_rx in (main_street, elm_avenue):
        sandbox.control("refills", {"PrescriptionId": vendor_rx})
    work_until(app, lambda: len(requests_stored(app)) == 2, "the two renewal requests")
    approvals = {}
    for stored in requests_stored(app):
        answer = doctor.post_form(
            f"/prescriptions/inbox/requests/{stored.id}/approve", {"refills": "1"}
        )
        approval_id = int(answer.headers["Location"].rstrip("/").split("/")[-2])
        assert sign(doctor, app, approval_id).status_code == 303
        approvals[stored.pharmacy_id] = (int(stored.vendor_request_id), approval_id)
    assert sorted(approvals) == ["3001", "3002"]

    # Both first tries reach the vendor; their outcomes are lost.
    for message in answer_messages(app):
        first = connector(sandbox).deliver(
            message.operation, message.payload, message.idempotency_key
        )
        assert first["answered"] is True
    made = {
        pharmacy: sandbox_request(sandbox, request_id)["NewPrescriptionId"]
        for pharmacy, (request_id, _) in approvals.items()
    }
    process_until(app, lambda: settled(app, sandbox, list(made.values())), "their webhooks")

    # The retries find both requests answered and read both new prescriptions.
    assert deliver(app).delivered == 2
    for pharmacy, (request_id, approval_id) in approvals.items():
        assert sandbox_request(sandbox, request_id)["AnswerCalls"] == 2
        assert load(app, approval_id).vendor_id == str(made[pharmacy])
    assert audit_count(app, "prescription.approval_linked") == 2
    assert all(stored.vendor_link_note is None for stored in requests_stored(app))
    # Neither new prescription was recorded beside the approvals.
    assert len(patient_rows(app, patient_id)) == 4
