"""The prescriber's Rx inbox over real sockets: the portal (live server) with DoseSpot enabled
against the sandbox. A pharmacy's request made through the sandbox's control API reaches the
portal (the counts webhook, or the poll), once; it is approved by signing a prescription made
from the original (the same checks and factors) or denied with a reason; the answer reaches
the sandbox exactly once, through the outbox, a vendor that is down included."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from portal.extensions import db
from portal.integrations.models import ExternalId, OutboxMessage
from portal.patients.models import Patient
from portal.prescriptions.compose.services import renewal_draft
from portal.prescriptions.inbox.pull import poll
from portal.prescriptions.models import Prescription, RxRequest
from portal.prescriptions.services import refresh_patient
from portal.timeutil import utcnow
from portal.transaction import use_case
from tests.admin.epcs_helpers import grant_drlee
from tests.integrations.dosespot.helpers import connector, snapshot
from tests.integrations.dosespot.helpers import prescription as vendor_prescription
from tests.prescriptions.dosespot_support import register_epcs_credential
from tests.prescriptions.rx_inbox_helpers import (
    a_sent_prescription,
    answer_messages,
    requests_stored,
    sandbox_request,
    sign,
)
from tests.prescriptions.signing_helpers import (
    OXYCODONE,
    a_draft,
    a_patient,
    deliver,
    events,
    load,
    work_until,
)
from tests.support.clients import actor_of
from tests.support.database import PASSWORD

XSS = "<script>alert('rx')</script>"


def run_poll(app) -> None:
    with app.app_context():
        poll()
        db.session.remove()


def due_now(app) -> None:
    """Let the outbox's back-off pass (a retry is due at once)."""
    with app.app_context(), use_case():
        db.session.execute(
            update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def test_a_renewal_request_is_one_item_approved_by_signing_and_reaches_the_sandbox_once(
    app, sandbox, signed_in
):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    rx_id, vendor_rx = a_sent_prescription(app, doctor, patient_id)
    made = sandbox.control("refills", {"PrescriptionId": vendor_rx, "Details": XSS})

    # The counts webhook makes the worker pull it; the poll and a replayed event find it known.
    work_until(app, lambda: len(requests_stored(app)) == 1, "the renewal request")
    run_poll(app)
    run_poll(app)
    [counts] = [
        e
        for e in sandbox.box.state.store.events
        if e["EventType"] == "PrescriberNotificationCounts"
    ]
    sandbox.control(f"events/{counts['EventId']}/replay")  # the same event, sent again
    work_until(app, lambda: len(counts["Attempts"]) >= 2, "the replayed event")
    [stored] = requests_stored(app)
    assert stored.vendor_request_id == str(made["RequestId"])
    assert (stored.kind, stored.state, stored.patient_id) == ("renewal", "pending", patient_id)
    with app.app_context():
        drlee = actor_of("drlee").id
    assert stored.prescription_id == rx_id and stored.prescriber_id == drlee
    assert events(app, "rx_request.received")

    bar = doctor.get("/eprescribe/count").get_data(as_text=True)
    assert "Rx inbox" in bar and 'aria-label="1 in the Rx inbox"' in bar
    inbox = doctor.get("/prescriptions/inbox").get_data(as_text=True)
    assert "Renewal request" in inbox and "Muñoz, Ana" in inbox
    item = doctor.get(f"/prescriptions/inbox/requests/{stored.id}")
    page = item.get_data(as_text=True)
    assert item.status_code == 200
    assert XSS not in page and "&lt;script&gt;" in page
    assert "The prescription&#39;s history" in page or "The prescription's history" in page
    assert "lisinopril 10 MG Oral Tablet" in page and "Approve and sign" in page

    # Approve with 3 refills: a draft from the original, then the signing dialog.
    url = f"/prescriptions/inbox/requests/{stored.id}/approve"
    first = doctor.post_form(url, {"refills": "3", "comment": "ok"})
    assert first.status_code == 303 and "/sign" in first.headers["Location"]
    again = doctor.post_form(url, {"refills": "3", "comment": "ok"})
    assert again.headers["Location"] == first.headers["Location"]  # the same draft
    draft_id = int(first.headers["Location"].rstrip("/").split("/")[-2])
    draft = load(app, draft_id)
    assert (draft.state, draft.refills, draft.drug) == (
        "draft",
        "3",
        "lisinopril 10 MG Oral Tablet",
    )

    # The same signing: without a fresh code, refused, and nothing in the outbox.
    refused = doctor.post_form(
        f"/prescriptions/{draft_id}/sign", {"version": str(draft.version), "totp_code": ""}
    )
    assert refused.status_code == 422 and answer_messages(app) == []
    assert sign(doctor, app, draft_id).status_code == 303
    assert sign(doctor, app, draft_id).status_code == 303  # a double click acts once
    [message] = answer_messages(app)
    assert message.operation == "approve_renewal" and message.prescription_id == draft_id
    assert message.payload["refills"] == 3 and message.payload["request_id"] == made["RequestId"]
    signed = load(app, draft_id)
    assert signed.state == "queued" and signed.digest and signed.signed_by_id
    [stored] = requests_stored(app)
    assert (stored.state, stored.response_prescription_id) == ("approved", draft_id)

    # The vendor is down: the approval is retried later, nothing reaches the pharmacy.
    sandbox.faults(down=True)
    run = deliver(app)
    assert run.delivered == 0
    assert sandbox_request(sandbox, made["RequestId"])["Status"] == "Pending"
    sandbox.faults(down=False)
    due_now(app)
    assert deliver(app).delivered == 1
    at_vendor = sandbox_request(sandbox, made["RequestId"])
    assert at_vendor["Status"] == "Approved" and at_vendor["AnswerCalls"] == 1
    assert at_vendor["Answer"] == {"Refills": 3, "Comment": "ok"}
    assert load(app, draft_id).state == "sent"
    [stored] = requests_stored(app)
    assert stored.vendor_answer == "delivered"
    # A signed approval is immutable like any signed prescription.
    with app.app_context(), pytest.raises(Exception), use_case():  # noqa: B017
        db.session.execute(
            update(Prescription).where(Prescription.id == draft_id).values(refills="9")
        )
    # Answered: the inbox no longer lists it.
    assert "Renewal request" not in doctor.get("/prescriptions/inbox").get_data(as_text=True)


def test_change_requests_of_each_type_and_a_denial_sent_once(app, sandbox, signed_in):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    _, vendor_rx = a_sent_prescription(app, doctor, patient_id)
    kinds = {
        "GenericSubstitution": "Generic substitution",
        "TherapeuticInterchange": "Therapeutic substitution",
        "PriorAuthorizationRequired": "Prior authorisation",
        "ScriptClarification": "Clarification",
    }
    made = [
        sandbox.control("rxchanges", {"PrescriptionId": vendor_rx, "RxChangeType": kind})
        for kind in kinds
    ]
    work_until(app, lambda: len(requests_stored(app)) == 4, "the change requests")
    inbox = doctor.get("/prescriptions/inbox").get_data(as_text=True)
    for words in kinds.values():
        assert f"Change request: {words}" in inbox

    target = next(r for r in requests_stored(app) if r.change_type == "prior_authorization")
    url = f"/prescriptions/inbox/requests/{target.id}/deny"
    missing = doctor.post_form(url, {"reason": "other", "note": ""})
    assert missing.status_code == 422 and "Say why in the note." in missing.get_data(as_text=True)
    form = {"reason": "needs_appointment", "note": XSS}
    assert doctor.post_form(url, form).status_code == 303
    assert doctor.post_form(url, form).status_code == 303  # a double click acts once
    [message] = answer_messages(app)
    assert message.operation == "deny_change"
    page = doctor.get(f"/prescriptions/inbox/requests/{target.id}").get_data(as_text=True)
    assert XSS not in page and "Patient needs an appointment" in page
    assert deliver(app).delivered == 1
    request_id = int(target.vendor_request_id)
    at_vendor = sandbox_request(sandbox, request_id)
    assert at_vendor["Status"] == "Denied" and at_vendor["AnswerCalls"] == 1
    assert at_vendor["Answer"] == {"DenialReason": "needs_appointment", "Note": XSS}
    assert events(app, "rx_request.denied") and events(app, "rx_request.answer_delivered")
    # The other three still wait; the poll closes none of them.
    run_poll(app)
    assert sorted(r.state for r in requests_stored(app)) == ["denied", *["pending"] * 3]
    assert {m["RequestId"] for m in made} >= {request_id}


def test_an_answer_whose_reply_was_lost_is_not_sent_twice(app, sandbox, signed_in):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    _, vendor_rx = a_sent_prescription(app, doctor, patient_id)
    made = sandbox.control("refills", {"PrescriptionId": vendor_rx})
    vendor = connector(sandbox)
    payload = {"clinician_id": 2001, "request_id": made["RequestId"], "refills": 1}
    assert vendor.deliver("approve_renewal", payload, "k")["answered"] is True
    # The worker retries (its first answer lost on the way back): taken as done.
    assert vendor.deliver("approve_renewal", payload, "k")["answered"] is False
    at_vendor = sandbox_request(sandbox, made["RequestId"])
    assert at_vendor["Status"] == "Approved" and at_vendor["Answer"]["Refills"] == 1


def test_a_request_the_portal_cannot_match_is_still_shown_and_can_be_denied(
    app, sandbox, signed_in
):
    doctor = signed_in("drlee")
    vendor = connector(sandbox)
    patient = vendor.sync_patient(2001, snapshot())
    sent = vendor.deliver(
        "send_prescription",
        {
            "clinician_id": 2001,
            "dosespot_patient_id": patient,
            "prescription": vendor_prescription(),
        },
        "elsewhere-1",
    )
    sandbox.faults(webhook_drop=True)  # no event: the poll finds it
    sandbox.control("refills", {"PrescriptionId": sent["dosespot_prescription_id"]})
    run_poll(app)
    [stored] = requests_stored(app)
    assert stored.patient_id is None and stored.prescription_id is None
    inbox = doctor.get("/prescriptions/inbox").get_data(as_text=True)
    assert "Patient not matched" in inbox
    page = doctor.get(f"/prescriptions/inbox/requests/{stored.id}").get_data(as_text=True)
    assert "could not match" in page and "Approve and sign" not in page
    refused = doctor.post_form(
        f"/prescriptions/inbox/requests/{stored.id}/approve", {"refills": "1"}
    )
    assert refused.status_code == 422
    answer = doctor.post_form(
        f"/prescriptions/inbox/requests/{stored.id}/deny", {"reason": "patient_unknown"}
    )
    assert answer.status_code == 303
    assert deliver(app).delivered == 1


def test_a_request_answered_elsewhere_is_closed(app, sandbox, signed_in):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    _, vendor_rx = a_sent_prescription(app, doctor, patient_id)
    made = sandbox.control("refills", {"PrescriptionId": vendor_rx})
    work_until(app, lambda: len(requests_stored(app)) == 1, "the request")
    connector(sandbox).deliver(
        "deny_renewal", {"clinician_id": 2001, "request_id": made["RequestId"]}, "x"
    )
    run_poll(app)
    [stored] = requests_stored(app)
    assert stored.state == "closed"


def test_who_may_see_and_answer(app, sandbox, signed_in, chart):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    _, vendor_rx = a_sent_prescription(app, doctor, patient_id)
    sandbox.control("refills", {"PrescriptionId": vendor_rx})
    work_until(app, lambda: len(requests_stored(app)) == 1, "the request")
    [stored] = requests_stored(app)
    front = signed_in("front_desk")
    assert front.get("/prescriptions/inbox").status_code == 403
    assert front.get(f"/prescriptions/inbox/requests/{stored.id}").status_code == 403
    other = signed_in("drpatel")
    assert other.get(f"/prescriptions/inbox/requests/{stored.id}").status_code == 404
    denied = other.post_form(
        f"/prescriptions/inbox/requests/{stored.id}/deny", {"reason": "patient_unknown"}
    )
    assert denied.status_code == 404
    assert "Renewal request" not in other.get("/prescriptions/inbox").get_data(as_text=True)
    assert requests_stored(app)[0].state == "pending" and answer_messages(app) == []


def test_transmission_errors_and_cancel_responses_wait_until_acknowledged(app, signed_in):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    failed = a_draft(app, patient_id)
    cancelled = a_draft(app, patient_id)
    with app.app_context(), use_case():
        db.session.execute(
            update(Prescription)
            .where(Prescription.id == failed)
            .values(state="error", transmission_error=XSS)
        )
        db.session.execute(
            update(Prescription).where(Prescription.id == cancelled).values(state="cancelled")
        )
    inbox = doctor.get("/prescriptions/inbox").get_data(as_text=True)
    assert "Send again, choose another pharmacy or print" in inbox
    assert 'data-state="cancelled"' in inbox
    page = doctor.get(f"/prescriptions/inbox/prescriptions/{failed}").get_data(as_text=True)
    assert XSS not in page and "&lt;script&gt;" in page and "Muñoz" in page
    assert "/prescriptions/transmission-errors" in page
    ack = f"/prescriptions/inbox/prescriptions/{cancelled}/acknowledge"
    assert doctor.post_form(ack).status_code == 303
    assert doctor.post_form(ack).status_code == 303  # twice: one acknowledgement
    assert len(events(app, "rx_inbox.acknowledged")) == 1
    inbox = doctor.get("/prescriptions/inbox").get_data(as_text=True)
    assert 'data-state="cancelled"' not in inbox
    bar = doctor.get("/eprescribe/count").get_data(as_text=True)
    assert 'aria-label="1 in the Rx inbox"' in bar


def test_a_renewal_of_a_prescription_written_in_the_vendors_screen_is_finished_first(
    app, sandbox, signed_in
):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    vendor = connector(sandbox)
    vendor_patient = vendor.sync_patient(2001, snapshot())
    sent = vendor.deliver(
        "send_prescription",
        {
            "clinician_id": 2001,
            "dosespot_patient_id": vendor_patient,
            "prescription": vendor_prescription(),
        },
        "vendor-screen-1",
    )
    with app.app_context():
        with use_case():
            db.session.add(
                ExternalId(
                    connector="dosespot",
                    kind="patient",
                    local_id=patient_id,
                    external_id=str(vendor_patient),
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
        refresh_patient("dosespot", vendor, patient_id)  # the write-back, as a webhook would
        db.session.remove()
    sandbox.control("refills", {"PrescriptionId": sent["dosespot_prescription_id"]})
    work_until(app, lambda: len(requests_stored(app)) == 1, "the request")
    [stored] = requests_stored(app)
    assert stored.patient_id == patient_id and stored.prescription_id is not None
    answer = doctor.post_form(
        f"/prescriptions/inbox/requests/{stored.id}/approve", {"refills": "1"}
    )
    assert answer.status_code == 303
    assert "/sign" not in answer.headers["Location"]  # the composing page, to finish it
    draft_id = int(answer.headers["Location"].rstrip("/").split("/")[-1])
    assert load(app, draft_id).state == "draft" and load(app, draft_id).refills == "1"


def test_two_clicks_at_once_make_one_approval_draft_and_one_denial(app, sandbox, signed_in):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    _, vendor_rx = a_sent_prescription(app, doctor, patient_id)
    for _ in range(2):
        sandbox.control("refills", {"PrescriptionId": vendor_rx})
    work_until(app, lambda: len(requests_stored(app)) == 2, "the requests")
    approve, deny = requests_stored(app)
    clicks = [signed_in("drlee") for _ in range(4)]  # two tabs a request, clicked at once
    answers: list = []

    def click(client, url, form):
        answers.append(client.post_form(url, form))

    threads = [
        threading.Thread(
            target=click,
            args=(c, f"/prescriptions/inbox/requests/{approve.id}/approve", {"refills": "1"}),
        )
        for c in clicks[:2]
    ] + [
        threading.Thread(
            target=click,
            args=(
                c,
                f"/prescriptions/inbox/requests/{deny.id}/deny",
                {"reason": "other", "note": "x"},
            ),
        )
        for c in clicks[2:]
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(a.status_code for a in answers) == [303, 303, 303, 303]
    with app.app_context():
        drafts = db.session.scalar(
            select(func.count()).select_from(Prescription).where(Prescription.state == "draft")
        )
        db.session.remove()
    assert drafts == 1
    assert [m.operation for m in answer_messages(app)] == ["deny_renewal"]
    assert len(events(app, "rx_request.denied")) == 1


def test_an_approval_the_vendor_refuses_is_a_transmission_error_and_send_again_works(
    app, sandbox, signed_in
):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    _, vendor_rx = a_sent_prescription(app, doctor, patient_id)
    made = sandbox.control(
        "rxchanges", {"PrescriptionId": vendor_rx, "RxChangeType": "PriorAuthorizationRequired"}
    )
    work_until(app, lambda: len(requests_stored(app)) == 1, "the change request")
    [stored] = requests_stored(app)
    first = doctor.post_form(f"/prescriptions/inbox/requests/{stored.id}/approve", {"refills": "0"})
    draft_id = int(first.headers["Location"].rstrip("/").split("/")[-2])
    assert sign(doctor, app, draft_id).status_code == 303
    sandbox.faults(result_error=True)  # the vendor answers ResultCode ERROR
    assert deliver(app).failed == 1
    rx = load(app, draft_id)
    assert rx.state == "error" and "could not be delivered" in rx.transmission_error
    assert requests_stored(app)[0].vendor_answer == "failed"
    inbox = doctor.get("/prescriptions/inbox").get_data(as_text=True)
    assert f"/prescriptions/inbox/prescriptions/{draft_id}" in inbox
    assert sandbox_request(sandbox, made["RequestId"])["Status"] == "Pending"

    sandbox.faults(result_error=False)
    assert doctor.post_form(f"/prescriptions/{draft_id}/retry").status_code == 303
    assert deliver(app).delivered == 1
    [message] = answer_messages(app)  # the same message, sent again
    assert message.operation == "approve_change" and message.status == "delivered"
    at_vendor = sandbox_request(sandbox, made["RequestId"])
    # The refused try never reached the request (the fault answers first): one answer.
    assert at_vendor["Status"] == "Approved" and at_vendor["AnswerCalls"] == 1
    assert load(app, draft_id).state == "sent"
    assert requests_stored(app)[0].vendor_answer == "delivered"


def test_a_discarded_approval_draft_leaves_the_request_pending(app, sandbox, signed_in):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    _, vendor_rx = a_sent_prescription(app, doctor, patient_id)
    sandbox.control("refills", {"PrescriptionId": vendor_rx})
    work_until(app, lambda: len(requests_stored(app)) == 1, "the request")
    [stored] = requests_stored(app)
    url = f"/prescriptions/inbox/requests/{stored.id}/approve"
    first = doctor.post_form(url, {"refills": "2"})
    draft_id = int(first.headers["Location"].rstrip("/").split("/")[-2])
    assert doctor.post_form(f"/prescriptions/{draft_id}/discard").status_code in (200, 303)
    assert load(app, draft_id) is None
    [stored] = requests_stored(app)
    assert (stored.state, stored.response_prescription_id) == ("pending", None)
    again = doctor.post_form(url, {"refills": "2"})
    assert again.status_code == 303  # a new draft (SQLite may give it the discarded one's id)
    new_id = int(again.headers["Location"].rstrip("/").split("/")[-2])
    assert load(app, new_id).state == "draft" and requests_stored(app)[0].response_prescription_id


def _approval_draft(app, sandbox, doctor, patient_id: int, kind="refills", **body) -> tuple:
    rx_id, vendor_rx = a_sent_prescription(app, doctor, patient_id)
    sandbox.control(kind, {"PrescriptionId": vendor_rx, **body})
    work_until(app, lambda: len(requests_stored(app)) == 1, "the request")
    [stored] = requests_stored(app)
    return rx_id, stored


def test_an_approval_draft_is_frozen_but_for_the_refills(app, sandbox, signed_in):
    """The vendor approves the request and the pharmacy fills the original: the portal
    refuses any change of the drug, quantity or pharmacy on the approval's draft, says so on
    the compose and signing pages, and the signing checks it again."""
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    _, stored = _approval_draft(app, sandbox, doctor, patient_id)
    first = doctor.post_form(f"/prescriptions/inbox/requests/{stored.id}/approve", {"refills": "2"})
    draft_id = int(first.headers["Location"].rstrip("/").split("/")[-2])
    note = "only the refills (and your comment) can be changed here"
    assert note in doctor.get(f"/prescriptions/{draft_id}/sign").get_data(as_text=True)
    assert note in doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)

    before = load(app, draft_id)
    more = doctor.htmx_post(
        f"/prescriptions/{draft_id}/draft",
        {"version": str(before.version), "rx-quantity": "90", "rx-dispense_unit": "tablet"},
    )
    assert more.status_code == 422 and note in more.get_data(as_text=True)
    other = doctor.post_form(
        f"/prescriptions/{draft_id}/pharmacy", {"pharmacy_id": "3002", "pharmacy_label": "X"}
    )
    assert other.status_code == 303
    after = load(app, draft_id)
    assert (after.quantity, after.pharmacy_id, after.version) == (
        before.quantity,
        before.pharmacy_id,
        before.version,
    )
    # Whatever path changed it, the signing finds it is no longer the original: refused.
    with app.app_context(), use_case():
        db.session.execute(
            update(Prescription).where(Prescription.id == draft_id).values(quantity="90")
        )
    refused = sign(doctor, app, draft_id)
    assert refused.status_code == 422
    assert "the quantity no longer match" in refused.get_data(as_text=True)
    assert answer_messages(app) == [] and load(app, draft_id).state == "draft"
    with app.app_context(), use_case():
        db.session.execute(
            update(Prescription).where(Prescription.id == draft_id).values(quantity="30")
        )
    assert sign(doctor, app, draft_id).status_code == 303
    [message] = answer_messages(app)
    assert message.payload["refills"] == 2


def test_a_substitution_change_request_can_only_be_denied_here(app, sandbox, signed_in):
    """A therapeutic substitution proposes another drug the request does not describe: the
    portal will not make (or sign) an approval of the original drug for it."""
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    _, stored = _approval_draft(
        app, sandbox, doctor, patient_id, "rxchanges", RxChangeType="TherapeuticInterchange"
    )
    page = doctor.get(f"/prescriptions/inbox/requests/{stored.id}").get_data(as_text=True)
    assert "Approve and sign" not in page and "e-prescribing service&#39;s own screen" in page
    url = f"/prescriptions/inbox/requests/{stored.id}/approve"
    refused = doctor.post_form(url, {"refills": "1"})
    assert refused.status_code == 422 and "proposes a different drug" in refused.get_data(
        as_text=True
    )
    [stored] = requests_stored(app)
    assert (stored.state, stored.response_prescription_id) == ("pending", None)
    # An approval draft made before this rule (or by any path) is refused at signing too.
    with app.app_context(), use_case():
        draft = renewal_draft(
            actor_of("drlee"),
            db.session.get(Patient, patient_id),
            db.session.get(Prescription, stored.prescription_id),
        )
        db.session.execute(
            update(RxRequest)
            .where(RxRequest.id == stored.id)
            .values(response_prescription_id=draft.id)
        )
        draft_id = draft.id
    refused = sign(doctor, app, draft_id)
    assert refused.status_code == 422 and "proposes a different drug" in refused.get_data(
        as_text=True
    )
    assert answer_messages(app) == []
    assert (
        doctor.post_form(
            f"/prescriptions/inbox/requests/{stored.id}/deny", {"reason": "medication_changed"}
        ).status_code
        == 303
    )
    assert [m.operation for m in answer_messages(app)] == ["deny_change"]


def test_a_controlled_substance_renewal_is_not_approved_here_but_offers_a_new_prescription(
    app, sandbox, signed_in
):
    """The vendor's approval carries no EPCS signature: a schedule II-V request is denied,
    or answered by a new prescription that goes through the EPCS send."""
    grant_drlee(app)
    register_epcs_credential(app)
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    rx_id = a_draft(app, patient_id, drug=OXYCODONE, pharmacy_id="3001")
    assert sign(doctor, app, rx_id, password=PASSWORD).status_code == 303
    assert deliver(app).delivered == 1
    vendor_rx = int(load(app, rx_id).vendor_id)
    sandbox.control("refills", {"PrescriptionId": vendor_rx})
    work_until(app, lambda: len(requests_stored(app)) == 1, "the request")
    [stored] = requests_stored(app)
    page = doctor.get(f"/prescriptions/inbox/requests/{stored.id}").get_data(as_text=True)
    assert "Approve and sign" not in page and "Write a new prescription" in page
    assert "controlled substance (schedule II-V) is not approved" in page
    refused = doctor.post_form(
        f"/prescriptions/inbox/requests/{stored.id}/approve", {"refills": "0"}
    )
    assert refused.status_code == 422
    assert "EPCS signature" in refused.get_data(as_text=True)
    [stored] = requests_stored(app)
    assert (stored.state, stored.response_prescription_id) == ("pending", None)
    assert answer_messages(app) == []
    # "Write a new prescription": an ordinary draft of the same drug, sent by the EPCS send.
    new = doctor.post_form(f"/prescriptions/{rx_id}/renew")
    assert new.status_code == 303
    new_id = int(new.headers["Location"].rstrip("/").split("/")[-1])
    assert load(app, new_id).schedule == 2
