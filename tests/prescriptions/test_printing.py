"""Printing a signed prescription: only after a failed transmission or without e-prescribing,
by its signer; the printout holds every required element and says why it is on paper; a
printed prescription is never transmitted (its sends withdrawn, and withheld by the worker
whatever put them in the outbox); reprints are copies; everything is audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from portal.actors import integration
from portal.audit.models import AuditEvent
from portal.auth.models import User
from portal.extensions import db
from portal.integrations import outbox
from portal.integrations.delivery import deliver_due
from portal.patients.models import Patient
from portal.prescriptions import states
from portal.prescriptions.services import _write_back
from portal.timeutil import utcnow
from portal.transaction import Refused, use_case
from tests.prescriptions.printing_helpers import (
    DEA_NUMBER,
    dosespot_against_sandbox,
    give_dea_number,
    message_statuses,
    patient_with_address,
    pdf_text,
    portal_rx,
    rx_row,
    send_message,
)
from tests.support.clients import actor_of


@pytest.fixture
def dosespot(app, live_server):
    server = dosespot_against_sandbox(app, live_server)
    yield server
    server.stop()


def _print(doctor, rx_id: int, patient_id: int):
    return doctor.post_form(
        f"/prescriptions/{rx_id}/print", {"next": f"/patients/{patient_id}/prescriptions"}
    )


def _refused_with(doctor, response, patient_id: int, words: str) -> None:
    assert response.status_code == 303
    assert response.location.endswith(f"/patients/{patient_id}/prescriptions")
    page = doctor.get(response.location).get_data(as_text=True)
    assert words in page


def _actions(app, action: str) -> list[str]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(AuditEvent.detail).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )


def test_a_draft_is_not_printed(app, chart, signed_in):
    patient_id = patient_with_address(app)
    rx_id = portal_rx(app, patient_id, chart.drlee, signed=False)
    doctor = signed_in("drlee")
    answer = _print(doctor, rx_id, patient_id)
    _refused_with(doctor, answer, patient_id, "Only a signed prescription can be printed")
    assert rx_row(app, rx_id).printed_at is None


def test_a_sent_prescription_is_not_printed(app, chart, signed_in):
    patient_id = patient_with_address(app)
    rx_id = portal_rx(
        app, patient_id, chart.drlee, state=states.SENT, connector="dosespot", vendor_id="77"
    )
    doctor = signed_in("drlee")
    _refused_with(doctor, _print(doctor, rx_id, patient_id), patient_id, "cannot be printed")
    assert rx_row(app, rx_id).state == states.SENT


def test_a_signed_prescription_is_not_printed_while_e_prescribing_is_on(
    app, chart, signed_in, dosespot
):
    patient_id = patient_with_address(app)
    rx_id = portal_rx(app, patient_id, chart.drlee, state=states.SIGNED)
    doctor = signed_in("drlee")
    answer = _print(doctor, rx_id, patient_id)
    _refused_with(doctor, answer, patient_id, "E-prescribing is switched on")
    assert rx_row(app, rx_id).printed_at is None


def test_without_a_connector_a_signed_prescription_prints_then_reprints_as_copies(
    app, chart, signed_in
):
    patient_id = patient_with_address(app)
    rx_id = portal_rx(app, patient_id, chart.drlee)
    doctor = signed_in("drlee")
    answer = _print(doctor, rx_id, patient_id)
    assert answer.status_code == 303 and answer.location.endswith(f"/prescriptions/{rx_id}/pdf")
    row = rx_row(app, rx_id)
    assert (row.state, row.print_reason) == (states.PRINTED, "No e-prescribing connector")
    assert row.printed_at is not None and row.fhir_status == "active"

    original = doctor.get(answer.location)
    assert original.status_code == 200 and original.mimetype == "application/pdf"
    assert original.headers["Cache-Control"] == "no-store"
    assert f'filename="prescription-{rx_id}.pdf"' in original.headers["Content-Disposition"]
    text = pdf_text(original.data)
    assert "COPY" not in text
    assert (
        "This prescription was printed because no e-prescribing connector; it has not been "
        "and will not be sent electronically." in " ".join(text.split())
    )
    copy = pdf_text(doctor.get(answer.location).data)
    assert "COPY" in copy
    # The same content, marked: every line of the original is in the copy.
    assert all(line in copy for line in text.splitlines() if line.strip())

    # Printing again is refused: one original.
    again = _print(doctor, rx_id, patient_id)
    _refused_with(doctor, again, patient_id, "already printed")
    assert _actions(app, "prescription.printed") == ["no connector; 0 outbox sends withdrawn"]
    assert _actions(app, "prescription.print_viewed") == ["original"]
    assert _actions(app, "prescription.reprinted") == ["copy"]


def test_after_a_failed_transmission_it_prints_and_its_send_is_withdrawn(app, chart, signed_in):
    patient_id = patient_with_address(app)
    rx_id = portal_rx(
        app,
        patient_id,
        chart.drlee,
        state=states.ERROR,
        transmission_error="The pharmacy does not accept electronic prescriptions.",
        pharmacy_name="Sandbox Pharmacy Main Street",
    )
    message_id = send_message(app, rx_id, patient_id, status="failed")
    doctor = signed_in("drlee")
    answer = _print(doctor, rx_id, patient_id)
    assert answer.status_code == 303
    row = rx_row(app, rx_id)
    assert row.state == states.PRINTED
    assert row.print_reason == (
        "Transmission failed: The pharmacy does not accept electronic prescriptions."
    )
    assert message_statuses(app, rx_id) == ["cancelled"]
    # An administrator's replay cannot send it any more.
    with app.app_context(), pytest.raises(Refused):
        outbox.replay(actor_of("admin"), message_id)
    text = " ".join(pdf_text(doctor.get(answer.location).data).split())
    # 21 CFR 1311.170(f): it was sent, to that pharmacy, and the transmission failed.
    assert (
        "This prescription was sent electronically to Sandbox Pharmacy Main Street and the "
        "transmission failed (The pharmacy does not accept electronic prescriptions); it will "
        "not be sent electronically again." in text
    )
    assert "has not been" not in text
    assert _actions(app, "prescription.printed") == [
        "transmission failed; 1 outbox sends withdrawn"
    ]


def test_printing_waits_while_a_send_is_being_delivered(app, chart, signed_in):
    patient_id = patient_with_address(app)
    rx_id = portal_rx(app, patient_id, chart.drlee, state=states.ERROR)
    send_message(app, rx_id, patient_id, status="in_flight")
    doctor = signed_in("drlee")
    answer = _print(doctor, rx_id, patient_id)
    _refused_with(doctor, answer, patient_id, "being sent to the pharmacy right now")
    assert rx_row(app, rx_id).printed_at is None
    assert message_statuses(app, rx_id) == ["in_flight"]


def test_the_pdf_holds_every_required_element(app, chart, signed_in):
    patient_id = patient_with_address(app, "Zoë", "Ng")
    rx_id = portal_rx(
        app,
        patient_id,
        chart.drlee,
        substitution_allowed=False,
        pharmacist_note="Patient prefers blister packs",
        diagnoses='[{"code": "I10", "description": "Essential (primary) hypertension"}]',
    )
    with app.app_context():
        db.session.execute(update(User).where(User.username == "drlee").values(npi="1987654328"))
        db.session.commit()
    doctor = signed_in("drlee")
    text = " ".join(pdf_text(doctor.get(_print(doctor, rx_id, patient_id).location).data).split())
    for element in (
        "Riverside Family Practice",  # the clinic
        "100 Main Street",
        "+14135550100",
        "Prescriber",
        "NPI 1987654328",  # from the prescriber's account
        "Patient Zoë Ng",
        "Date of birth 1980-02-03",
        "12 Elm Street",
        "Springfield, MA 01101",
        "Drug lisinopril 10 MG Oral Tablet",
        "Strength 10 MG",
        "Oral Tablet",
        "Quantity 30 tablet",
        "Directions Take 1 tablet by mouth once daily",
        "Refills 2",
        "Dispense as written",
        "Date written 2026-12-06",
        "I10 Essential (primary) hypertension",
        "Note to pharmacist Patient prefers blister packs",
        "Signature of",
        "will not be sent electronically",
    ):
        assert element in text, element
    assert "DEA" not in text  # not a controlled substance: no DEA number printed


def test_a_controlled_prescription_prints_the_dea_number_and_the_quantity_in_words(
    app, chart, signed_in
):
    give_dea_number(app, chart.drlee)
    patient_id = patient_with_address(app)
    rx_id = portal_rx(
        app,
        patient_id,
        chart.drlee,
        drug="oxycodone hydrochloride 5 MG Oral Tablet",
        rxcui="1049621",
        strength="5 MG",
        schedule=2,
        quantity="12",
        refills="0",
        directions="Take 1 tablet by mouth every 6 hours as needed for pain for 3 days",
    )
    doctor = signed_in("drlee")
    text = " ".join(pdf_text(doctor.get(_print(doctor, rx_id, patient_id).location).data).split())
    assert f"DEA number {DEA_NUMBER}" in text  # in full on paper
    assert "DEA schedule II" in text
    assert "Quantity twelve (12) tablet" in text
    assert "Refills 0" in text


def test_a_queued_send_of_a_printed_prescription_is_never_delivered(
    app, chart, signed_in, dosespot
):
    """Whatever puts a send of a printed prescription in the outbox (a bug, a replay racing
    the print), the worker withholds it: nothing reaches the vendor."""
    patient_id = patient_with_address(app)
    rx_id = portal_rx(app, patient_id, chart.drlee, state=states.ERROR)
    doctor = signed_in("drlee")
    assert _print(doctor, rx_id, patient_id).status_code == 303
    send_message(app, rx_id, patient_id, status="pending")
    with app.app_context():
        run = deliver_due(seconds=5.0)
        db.session.remove()
    assert (run.withheld, run.delivered, run.failed) == (1, 0, 0)
    assert message_statuses(app, rx_id) == ["cancelled"]
    assert dosespot.patients() == []  # the vendor never heard of it
    assert rx_row(app, rx_id).vendor_id is None


def test_a_pending_retry_is_withdrawn_by_printing_and_never_delivered(
    app, chart, signed_in, dosespot
):
    patient_id = patient_with_address(app)
    rx_id = portal_rx(app, patient_id, chart.drlee, state=states.ERROR)
    send_message(app, rx_id, patient_id, status="pending")
    doctor = signed_in("drlee")
    assert _print(doctor, rx_id, patient_id).status_code == 303
    with app.app_context():
        run = deliver_due(seconds=5.0)
        db.session.remove()
    assert run.handled == 0 and run.withheld == 0  # nothing left to claim
    assert message_statuses(app, rx_id) == ["cancelled"]
    assert dosespot.patients() == []


def test_only_the_signer_prints_and_unknown_ids_are_not_found(app, chart, signed_in):
    patient_id = patient_with_address(app)
    rx_id = portal_rx(app, patient_id, chart.drlee)
    other = signed_in("drpatel")
    assert _print(other, rx_id, patient_id).status_code == 404
    assert other.get(f"/prescriptions/{rx_id}/pdf").status_code == 404
    assert _print(other, rx_id + 1000, patient_id).status_code == 404
    nurse = signed_in("nurse")
    assert _print(nurse, rx_id, patient_id).status_code == 403
    assert rx_row(app, rx_id).printed_at is None
    # Not printed yet: no PDF to serve, even to its signer.
    doctor = signed_in("drlee")
    assert doctor.get(f"/prescriptions/{rx_id}/pdf").status_code == 303


def test_the_print_route_needs_the_csrf_token(app, chart, signed_in):
    patient_id = patient_with_address(app)
    rx_id = portal_rx(app, patient_id, chart.drlee)
    doctor = signed_in("drlee")
    assert doctor.post(f"/prescriptions/{rx_id}/print").status_code == 400
    assert rx_row(app, rx_id).printed_at is None


def test_markup_in_directions_and_the_note_is_inert_on_the_page_and_literal_in_the_pdf(
    app, chart, signed_in
):
    patient_id = patient_with_address(app)
    directions = '<script>alert("rx")</script> Take 1 tablet'
    note = "<img src=x onerror=alert(1)> call first"
    rx_id = portal_rx(app, patient_id, chart.drlee, directions=directions, pharmacist_note=note)
    doctor = signed_in("drlee")
    page = doctor.get(f"/patients/{patient_id}/prescriptions").get_data(as_text=True)
    assert "<script>alert" not in page and "&lt;script&gt;alert(" in page
    text = " ".join(pdf_text(doctor.get(_print(doctor, rx_id, patient_id).location).data).split())
    assert directions in text and note in text


def test_the_vendors_read_leaves_a_printed_prescription_printed(app, chart):
    """A prescription printed after its transmission failed at the vendor: the vendor still
    reports it in error, and its next read (webhook or sweep) must not undo "printed"."""
    patient_id = patient_with_address(app)
    rx_id = portal_rx(
        app,
        patient_id,
        chart.drlee,
        state=states.PRINTED,
        connector="dosespot",
        vendor_id="4242",
        printed_at=utcnow(),
        print_reason="Transmission failed: the pharmacy is offline",
    )
    item = {
        "vendor_id": "4242",
        "drug": "lisinopril 10 MG Oral Tablet",
        "status": "Error",
        "medication_status": "Active",
        "fhir_status": "active",
    }
    with app.app_context(), use_case():
        patient = db.session.get(Patient, patient_id)
        _write_back(integration("dosespot"), "dosespot", patient, item)
    row = rx_row(app, rx_id)
    assert (row.state, row.status) == (states.PRINTED, "Error")


def test_a_retry_after_printing_is_refused_and_leaves_it_printed(app, chart, signed_in):
    patient_id = patient_with_address(app)
    rx_id = portal_rx(app, patient_id, chart.drlee, state=states.ERROR)
    message_id = send_message(app, rx_id, patient_id, status="failed")
    doctor = signed_in("drlee")
    assert _print(doctor, rx_id, patient_id).status_code == 303
    retried = doctor.post_form(f"/prescriptions/{rx_id}/retry", {})
    assert retried.status_code == 409
    row = rx_row(app, rx_id)
    assert (row.state, row.printed_at is not None) == (states.PRINTED, True)
    assert message_statuses(app, rx_id) == ["cancelled"]
    # The outbox's requeue is one conditional UPDATE: a status read before the print
    # (stale in memory) does not let it write over the withdrawn send.
    with app.app_context(), use_case():
        message = db.session.get(outbox.OutboxMessage, message_id)
        set_committed_value(message, "status", "failed")  # what an earlier read saw
        with pytest.raises(Refused):
            outbox.requeue(message)
    assert message_statuses(app, rx_id) == ["cancelled"]
