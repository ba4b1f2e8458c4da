"""Ordering labs through the real HTTP stack and database: a draft from a visit, the catalog
search, tests, details and their refusals beside the fields, signing (the send in the outbox
in the same transaction, once however often it is clicked), who may see and do what, and
cancelling."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from portal.clinic.clock import clinic_today
from portal.extensions import db
from portal.labs.models import LabOrder
from tests.labs.ordering.helpers import (
    XSS,
    a_patient,
    add,
    details,
    field_error,
    load,
    outbox_of,
    sign,
    start,
)
from tests.support.audit import audit_events


def test_order_from_a_visit_search_add_sign_and_the_send_is_queued(
    app, signed_in, make_encounter, chart, lab
):
    encounter_id = make_encounter()
    patient_id = chart.patients[0]
    with app.app_context():
        from portal.charting.models import Problem

        db.session.add(
            Problem(patient_id=patient_id, icd10_code="E78.5", description="Hyperlipidemia")
        )
        db.session.commit()
    doctor = signed_in("drlee")
    page = doctor.get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    assert "Lab orders of this visit" in page and "Order labs" in page

    order_id = start(doctor, patient_id, encounter_id)
    draft = doctor.get(f"/labs/orders/{order_id}").get_data(as_text=True)
    assert "Find a test or panel" in draft and "Test Lab" in draft  # the enabled lab offered
    found = doctor.htmx_post(f"/labs/orders/{order_id}/tests/search", {"test_query": "metabolic"})
    text = found.get_data(as_text=True)
    assert found.status_code == 200 and "Comprehensive metabolic panel (CMP)" in text
    assert "<html" not in text  # a fragment for htmx
    add(doctor, order_id, "24323-8", "24331-1", "24331-1")  # the second lipid panel: no change
    draft = doctor.get(f"/labs/orders/{order_id}").get_data(as_text=True)
    assert "Usually taken fasting: Comprehensive metabolic panel (CMP), Lipid panel" in draft

    response = sign(
        doctor, order_id, diagnoses="E78.5", connector="testlab", fasting="y", note="Call if K > 6"
    )
    assert response.status_code == 303
    order = load(app, order_id)
    assert order.status == "signed" and order.signed_at is not None
    assert (order.encounter_id, order.connector, order.fasting, order.diagnoses) == (
        encounter_id,
        "testlab",
        True,
        "E78.5",
    )
    assert order.placer_order_number == f"L{order_id:08d}"
    [message] = outbox_of(app, order_id)
    assert message.operation == "send_lab_order" and message.payload == {"order_id": order_id}
    assert message.idempotency_key == f"testlab:send_lab_order:order-{order_id}"
    assert message.patient_id == patient_id and message.status == "pending"
    [signed] = audit_events(app, "lab_order.sign")
    assert signed.patient_id == patient_id and "tests=2" in signed.detail
    visit = doctor.get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    assert order.placer_order_number in visit and 'data-state="signed"' in visit
    listing = doctor.get(f"/labs/patients/{patient_id}/orders").get_data(as_text=True)
    assert order.placer_order_number in listing and "Lipid panel" in listing


def test_refusals_sit_beside_their_fields_and_change_nothing(app, signed_in, chart, lab):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    order_id = start(doctor, patient_id)

    no_tests = sign(doctor, order_id)
    assert no_tests.status_code == 422
    assert "Add at least one test" in field_error(no_tests.get_data(as_text=True), "test_query")

    add(doctor, order_id, "4548-4")
    with app.app_context():
        yesterday = (clinic_today() - timedelta(days=1)).isoformat()
    past = sign(doctor, order_id, collection_date=yesterday, note="kept as typed")
    html = past.get_data(as_text=True)
    assert past.status_code == 422
    assert "cannot be in the past" in field_error(html, "collection_date")
    assert "kept as typed" in html  # what was typed stays

    not_a_problem = sign(doctor, order_id, diagnoses="Z99.89")
    assert not_a_problem.status_code == 422
    assert "active problems" in not_a_problem.get_data(as_text=True)

    too_long = sign(doctor, order_id, note="x" * 501)
    assert too_long.status_code == 422
    assert "At most 500" in field_error(too_long.get_data(as_text=True), "note")

    not_enabled = sign(doctor, order_id, connector="nosuchlab")
    assert not_enabled.status_code == 422
    assert "not enabled" in field_error(not_enabled.get_data(as_text=True), "connector")

    bad_date = sign(doctor, order_id, collection_date="31/02/2027")
    assert bad_date.status_code == 422 and field_error(
        bad_date.get_data(as_text=True), "collection_date"
    )

    unknown = doctor.post_form(f"/labs/orders/{order_id}/tests", {"loinc": "99999-9"})
    assert unknown.status_code == 422
    assert "from the catalog" in field_error(unknown.get_data(as_text=True), "test_query")

    order = load(app, order_id)
    assert order.status == "draft" and order.note is None and order.collection_date is None
    assert outbox_of(app, order_id) == []
    assert audit_events(app, "lab_order.sign") == []


def test_signing_twice_signs_and_queues_once(app, signed_in, chart, lab):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    order_id = start(doctor, patient_id)
    add(doctor, order_id, "4548-4")
    answers = []

    def click():
        answers.append(sign(doctor, order_id, connector="testlab").status_code)

    clicks = [threading.Thread(target=click) for _ in range(3)]
    for thread in clicks:
        thread.start()
    for thread in clicks:
        thread.join()
    again = sign(doctor, order_id, connector="testlab")
    assert sorted(answers) == [303, 303, 303] and again.status_code == 303
    assert len(outbox_of(app, order_id)) == 1
    assert len(audit_events(app, "lab_order.sign")) == 1


def test_without_a_lab_the_order_is_signed_for_printing(app, signed_in, chart):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    order_id = start(doctor, patient_id)
    draft = doctor.get(f"/labs/orders/{order_id}").get_data(as_text=True)
    assert "No lab connector is enabled" in draft
    add(doctor, order_id, "4548-4")
    assert sign(doctor, order_id).status_code == 303
    order = load(app, order_id)
    assert order.status == "signed" and order.connector is None
    assert outbox_of(app, order_id) == []
    page = doctor.get(f"/labs/orders/{order_id}").get_data(as_text=True)
    assert "Requisition (PDF)" in page


def test_a_draft_is_its_prescribers_alone_and_ids_are_checked(
    app, signed_in, chart, make_encounter
):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    order_id = start(doctor, patient_id)
    other = signed_in("drpatel")
    nurse = signed_in("nurse")
    assert other.get(f"/labs/orders/{order_id}").status_code == 404
    assert other.post_form(f"/labs/orders/{order_id}/tests", {"loinc": "4548-4"}).status_code == 404
    assert other.post_form(f"/labs/orders/{order_id}", details(action="sign")).status_code == 404
    assert other.post_form(f"/labs/orders/{order_id}/cancel").status_code == 404
    assert nurse.get(f"/labs/orders/{order_id}").status_code == 404
    assert nurse.post_form(f"/labs/orders/{order_id}", details(action="sign")).status_code == 403
    # Another patient's visit cannot carry this patient's order.
    other_visit = make_encounter(patient=1)
    refused = doctor.post_form(
        f"/labs/patients/{patient_id}/orders", {"encounter_id": str(other_visit)}
    )
    assert refused.status_code == 404
    assert doctor.post_form("/labs/patients/999999/orders").status_code == 404
    assert doctor.get("/labs/orders/999999").status_code == 404
    assert doctor.get("/labs/orders/999999/requisition.pdf").status_code == 404
    # Signed, the order is the chart's: the nurse sees it and its requisition.
    add(doctor, order_id, "4548-4")
    sign(doctor, order_id)
    assert nurse.get(f"/labs/orders/{order_id}").status_code == 200
    assert nurse.get(f"/labs/orders/{order_id}/requisition.pdf").status_code == 200
    views = audit_events(app, "lab_order.view")
    assert views and all(event.patient_id == patient_id for event in views)


def test_the_note_to_the_lab_is_inert_on_the_pages(app, signed_in, chart):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    order_id = start(doctor, patient_id)
    add(doctor, order_id, "4548-4")
    sign(doctor, order_id, note=XSS)
    for path in (f"/labs/orders/{order_id}", f"/labs/patients/{patient_id}/orders"):
        html = doctor.get(path).get_data(as_text=True)
        assert XSS not in html
    html = doctor.get(f"/labs/orders/{order_id}").get_data(as_text=True)
    assert "&lt;script&gt;" in html
    # Typed into the search, it comes back escaped too.
    other = start(doctor, patient_id)
    found = doctor.htmx_post(f"/labs/orders/{other}/tests/search", {"test_query": XSS[:60]})
    assert XSS[:20] not in found.get_data(as_text=True)


def test_cancel_before_sending_withholds_the_send(app, signed_in, chart, lab):
    from tests.labs.ordering.helpers import deliver

    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    order_id = start(doctor, patient_id)
    add(doctor, order_id, "4548-4")
    sign(doctor, order_id, connector="testlab")
    assert doctor.post_form(f"/labs/orders/{order_id}/cancel").status_code == 303
    assert load(app, order_id).status == "cancelled"
    run = deliver(app)
    assert run.withheld == 1 and lab.received == []
    [send] = outbox_of(app, order_id)
    assert send.status == "cancelled"
    [event] = audit_events(app, "lab_order.cancel")
    assert "cancel_sent=no" in event.detail


def test_a_draft_is_discarded_and_a_resulted_order_cannot_be_cancelled(app, signed_in, chart):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    order_id = start(doctor, patient_id)
    assert doctor.post_form(f"/labs/orders/{order_id}/cancel").status_code == 303
    assert load(app, order_id).status == "cancelled"
    resulted = start(doctor, patient_id)
    add(doctor, resulted, "4548-4")
    sign(doctor, resulted)
    with app.app_context():
        db.session.scalar(select(LabOrder).where(LabOrder.id == resulted)).status = "resulted"
        db.session.commit()
    refused = doctor.post_form(f"/labs/orders/{resulted}/cancel")
    assert refused.status_code == 303
    assert load(app, resulted).status == "resulted"
    page = doctor.get(f"/labs/orders/{resulted}").get_data(as_text=True)
    assert "cannot be cancelled" in page and "Cancel order" not in page


def test_the_chart_offers_ordering_to_prescribers_and_the_list_to_nurses(app, signed_in, chart):
    patient_id = a_patient(app)
    doctor = signed_in("drlee").get(f"/chart/patients/{patient_id}").get_data(as_text=True)
    assert f'action="/labs/patients/{patient_id}/orders"' in doctor and "Order labs" in doctor
    nurse = signed_in("nurse").get(f"/chart/patients/{patient_id}").get_data(as_text=True)
    assert "Order labs" not in nurse and f'href="/labs/patients/{patient_id}/orders"' in nurse
    assert signed_in("frontdesk").get(f"/labs/patients/{patient_id}/orders").status_code == 403
    listing = signed_in("nurse").get(f"/labs/patients/{patient_id}/orders")
    assert listing.status_code == 200 and "No lab orders." in listing.get_data(as_text=True)
    [event] = audit_events(app, "lab_order.list")
    assert event.patient_id == patient_id and event.username == "nurse"


def test_an_order_without_results_past_its_turnaround_is_overdue(app, signed_in, chart):
    from portal.labs import states
    from portal.timeutil import utcnow

    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    order_id = start(doctor, patient_id)
    add(doctor, order_id, "4548-4")  # HbA1c: a day
    sign(doctor, order_id)
    assert 'data-state="overdue"' not in doctor.get(f"/labs/orders/{order_id}").get_data(
        as_text=True
    )
    with app.app_context():
        order = db.session.get(LabOrder, order_id)
        order.signed_at = utcnow() - timedelta(days=2)
        db.session.commit()
    for path in (f"/labs/orders/{order_id}", f"/labs/patients/{patient_id}/orders"):
        assert 'data-state="overdue"' in doctor.get(path).get_data(as_text=True)
    now = utcnow()
    signed = now - timedelta(days=2)
    assert states.is_overdue("acknowledged", signed, ["4548-4"], now)
    assert not states.is_overdue("resulted", signed, ["4548-4"], now)
    assert not states.is_overdue("acknowledged", now - timedelta(hours=5), ["4548-4"], now)


def test_a_save_after_signing_changes_nothing_and_says_so(app, signed_in, chart):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    order_id = start(doctor, patient_id)
    add(doctor, order_id, "4548-4")
    sign(doctor, order_id, note="first")
    late = doctor.post_form(f"/labs/orders/{order_id}", details(action="save", note="later"))
    assert late.status_code == 303
    assert load(app, order_id).note == "first"
    page = doctor.get(f"/labs/orders/{order_id}").get_data(as_text=True)
    assert "can no longer change" in page
    late_add = doctor.post_form(f"/labs/orders/{order_id}/tests", {"loinc": "24331-1"})
    assert late_add.status_code == 409 and "can no longer change" in late_add.get_data(as_text=True)
    assert load_tests(app, order_id) == ["4548-4"]


def load_tests(app, order_id: int) -> list[str]:
    from portal.labs.models import LabOrderTest

    with app.app_context():
        return list(
            db.session.scalars(select(LabOrderTest.loinc).where(LabOrderTest.order_id == order_id))
        )


def test_the_state_machine_agrees_with_its_lists():
    from portal.labs import states
    from portal.labs.models import ORDER_STATUSES

    assert set(states.STATES) == set(ORDER_STATUSES) == set(states.TRANSITIONS)
    assert {s for s in states.STATES if states.may_move(s, states.CANCELLED)} == set(
        states.CANCELLABLE
    )
    assert not states.may_move(states.RESULTED, states.CANCELLED)
    assert not states.may_move(states.CANCELLED, states.SIGNED)
    assert states.label("partially_resulted") == "Partially resulted"
    assert states.tone(states.ERROR) == "danger"
