"""The patient's preferred pharmacies: "Set as preferred" after a search keeps the pharmacy
in the portal (the primary one), puts it on the prescription, and syncs it to DoseSpot
(``POST /api/patients/{id}/pharmacies {PharmacyId, SetAsPrimary}``) through the outbox; the
compose screen offers them first and a new prescription starts with the primary one."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal.extensions import db
from portal.integrations import outbox
from portal.integrations.models import OutboxMessage
from portal.patients.models import Patient
from portal.prescriptions.models import PatientPharmacy
from portal.timeutil import utcnow
from tests.integrations.dosespot.helpers import SandboxServer
from tests.prescriptions.compose_helpers import draft_row, start_draft
from tests.prescriptions.dosespot_support import enable_dosespot
from tests.prescriptions.signing_helpers import deliver, events

MAIN_STREET = {"pharmacy_id": "3001", "pharmacy_label": "Sandbox Pharmacy Main Street"}
ELM_AVENUE = {"pharmacy_id": "3002", "pharmacy_label": "Sandbox Pharmacy Elm Avenue"}


@pytest.fixture
def vendor(app):
    server = enable_dosespot(app, SandboxServer())
    yield server
    server.stop()


def with_address(app, patient_id: int) -> int:
    with app.app_context():
        db.session.execute(
            update(Patient)
            .where(Patient.id == patient_id)
            .values(
                address_line1="12 Elm Street",
                city="Springfield",
                state="MA",
                postal_code="01101",
                phone_mobile="+14135550142",
            )
        )
        db.session.commit()
    return patient_id


def preferred(app, patient_id: int) -> list[tuple[str, bool, bool]]:
    with app.app_context():
        rows = db.session.scalars(
            select(PatientPharmacy)
            .where(PatientPharmacy.patient_id == patient_id)
            .order_by(PatientPharmacy.id)
        )
        found = [(r.pharmacy_id, r.is_primary, r.synced_at is not None) for r in rows]
        db.session.remove()
        return found


def syncs(app) -> list[OutboxMessage]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(OutboxMessage).where(OutboxMessage.operation == "add_patient_pharmacy")
            )
        )
        db.session.expunge_all()
        db.session.remove()
        return rows


def test_set_as_preferred_keeps_it_chooses_it_and_syncs_it_to_the_vendor(
    app, chart, vendor, signed_in
):
    patient_id = with_address(app, chart.patients[0])
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, patient_id)
    found = doctor.htmx_post(
        f"/prescriptions/{draft_id}/pharmacies", {"pharmacy_name": "main", "pharmacy_zip": ""}
    ).get_data(as_text=True)
    assert "Set as preferred" in found
    assert f'formaction="/prescriptions/{draft_id}/preferred-pharmacy"' in found
    answer = doctor.post_form(f"/prescriptions/{draft_id}/preferred-pharmacy", MAIN_STREET)
    assert answer.status_code == 303
    assert draft_row(app, draft_id).pharmacy_id == "3001"
    assert preferred(app, patient_id) == [("3001", True, False)]
    [event] = events(app, "patient.preferred_pharmacy_set")
    assert event.patient_id == patient_id and "3001" in event.detail
    [message] = syncs(app)
    assert message.payload["pharmacy_id"] == 3001 and message.payload["set_as_primary"]

    assert deliver(app).delivered == 1
    assert preferred(app, patient_id) == [("3001", True, True)]
    [at_vendor] = vendor.patients()
    assert at_vendor["Pharmacies"] == [3001] and at_vendor["PrimaryPharmacyId"] == 3001

    # Shown first in the picker; a new prescription starts with the primary one.
    page = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    assert 'aria-label="Preferred pharmacies"' in page
    assert page.index("Preferred pharmacies") < page.index("Find pharmacy")
    second = start_draft(doctor, patient_id)
    assert draft_row(app, second).pharmacy_id == "3001"

    # Another becomes the primary one; the first stays preferred.
    doctor.post_form(f"/prescriptions/{second}/preferred-pharmacy", ELM_AVENUE)
    assert preferred(app, patient_id) == [("3001", False, True), ("3002", True, False)]
    assert deliver(app).delivered == 1
    assert vendor.patients()[0]["PrimaryPharmacyId"] == 3002
    assert len(vendor.patients()) == 1  # the patient was found, not made twice


def test_only_the_drafts_prescriber_sets_it_and_an_unknown_draft_is_not_found(
    app, chart, vendor, signed_in
):
    patient_id = with_address(app, chart.patients[0])
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, patient_id)
    unknown = doctor.post_form(f"/prescriptions/{draft_id + 999}/preferred-pharmacy", MAIN_STREET)
    assert unknown.status_code == 404
    answer = signed_in("admin").post_form(
        f"/prescriptions/{draft_id}/preferred-pharmacy", MAIN_STREET
    )
    assert answer.status_code == 403
    assert preferred(app, patient_id) == [] and syncs(app) == []


def test_a_vendor_that_refuses_leaves_the_preference_here(app, chart, vendor, signed_in):
    patient_id = with_address(app, chart.patients[0])
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, patient_id)
    doctor.post_form(f"/prescriptions/{draft_id}/preferred-pharmacy", MAIN_STREET)
    vendor.faults(result_error=True)
    assert deliver(app).failed == 1
    assert preferred(app, patient_id) == [("3001", True, False)]  # kept, not synced


def test_the_name_kept_is_the_vendors_not_the_forms(app, chart, vendor, signed_in):
    """The label the page posts only finds the pharmacy again at the vendor: a forged one
    is not stored, and an id the vendor does not list under that name is refused."""
    patient_id = with_address(app, chart.patients[0])
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, patient_id)
    forged = {"pharmacy_id": "3001", "pharmacy_label": "Sandbox Pharmacy <b>Free pills</b>"}
    doctor.post_form(f"/prescriptions/{draft_id}/preferred-pharmacy", forged)
    assert preferred(app, patient_id) == [] and syncs(app) == []
    doctor.post_form(
        f"/prescriptions/{draft_id}/preferred-pharmacy",
        {"pharmacy_id": "3002", "pharmacy_label": "Sandbox Pharmacy Main Street"},
    )
    assert preferred(app, patient_id) == [] and syncs(app) == []  # 3002 is not Main Street
    doctor.post_form(
        f"/prescriptions/{draft_id}/preferred-pharmacy",
        {"pharmacy_id": "3001", "pharmacy_label": "Sandbox Pharmacy Main Street, whatever"},
    )
    with app.app_context():
        [row] = db.session.scalars(select(PatientPharmacy)).all()
        name = row.name
        db.session.remove()
    assert name.startswith("Sandbox Pharmacy Main Street, ") and "whatever" not in name
    assert draft_row(app, draft_id).pharmacy_name == name


def test_a_double_click_queues_one_sync_and_setting_it_again_later_syncs_again(
    app, chart, vendor, signed_in
):
    patient_id = with_address(app, chart.patients[0])
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, patient_id)
    for _ in range(2):
        answer = doctor.post_form(f"/prescriptions/{draft_id}/preferred-pharmacy", MAIN_STREET)
        assert answer.status_code == 303
    assert len(syncs(app)) == 1 and preferred(app, patient_id) == [("3001", True, False)]
    assert deliver(app).delivered == 1
    doctor.post_form(f"/prescriptions/{draft_id}/preferred-pharmacy", ELM_AVENUE)
    assert deliver(app).delivered == 1
    assert vendor.patients()[0]["PrimaryPharmacyId"] == 3002
    # Main Street again: the same (patient, pharmacy) message goes once more.
    doctor.post_form(f"/prescriptions/{draft_id}/preferred-pharmacy", MAIN_STREET)
    assert len(syncs(app)) == 2
    assert deliver(app).delivered == 1
    assert vendor.patients()[0]["PrimaryPharmacyId"] == 3001
    assert preferred(app, patient_id) == [("3001", True, True), ("3002", False, True)]


def test_two_tabs_setting_different_pharmacies_at_once_leave_one_primary(
    app, chart, vendor, signed_in
):
    patient_id = with_address(app, chart.patients[0])
    tabs = [signed_in("drlee"), signed_in("drlee")]
    drafts = [start_draft(tab, patient_id) for tab in tabs]
    answers: list = []

    def click(tab, draft_id, form):
        answers.append(tab.post_form(f"/prescriptions/{draft_id}/preferred-pharmacy", form))

    threads = [
        threading.Thread(target=click, args=(tabs[0], drafts[0], MAIN_STREET)),
        threading.Thread(target=click, args=(tabs[1], drafts[1], ELM_AVENUE)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(a.status_code for a in answers) == [303, 303]
    rows = preferred(app, patient_id)
    assert len(rows) == 2 and sum(1 for _, primary, _ in rows if primary) == 1


# --- removing one ------------------------------------------------------------------------------


def preferred_id(app, patient_id: int, pharmacy_id: str) -> int:
    with app.app_context():
        found = db.session.scalar(
            select(PatientPharmacy.id).where(
                PatientPharmacy.patient_id == patient_id,
                PatientPharmacy.pharmacy_id == pharmacy_id,
            )
        )
        db.session.remove()
        return found


def remove_url(draft_id: int, row_id: int) -> str:
    return f"/prescriptions/{draft_id}/preferred-pharmacies/{row_id}/remove"


def test_removing_one_before_its_sync_left_withdraws_the_sync_and_is_audited(
    app, chart, vendor, signed_in
):
    patient_id = with_address(app, chart.patients[0])
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, patient_id)
    doctor.post_form(f"/prescriptions/{draft_id}/preferred-pharmacy", MAIN_STREET)
    row_id = preferred_id(app, patient_id, "3001")
    page = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    assert remove_url(draft_id, row_id) in page
    assert "removed in the portal only" in page  # the help says the vendor keeps its own

    answer = doctor.post_form(remove_url(draft_id, row_id))
    assert answer.status_code == 303 and answer.location.endswith(f"/{draft_id}#pharmacy")
    assert preferred(app, patient_id) == []
    [message] = syncs(app)
    assert message.status == "cancelled"  # withdrawn: the worker never takes it
    assert deliver(app).delivered == 0 and vendor.patients() == []
    [event] = events(app, "patient.preferred_pharmacy_remove")
    assert event.patient_id == patient_id and "3001" in event.detail
    assert "portal only" in event.detail and "withdrawn" in event.detail
    page = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    assert 'aria-label="Preferred pharmacies"' not in page
    assert "no longer one of the patient&#39;s preferred pharmacies" in page
    assert draft_row(app, draft_id).pharmacy_id == "3001"  # this prescription keeps its choice
    assert draft_row(app, start_draft(doctor, patient_id)).pharmacy_id is None  # no primary now

    # Set as preferred again later: the same message goes, this time to the vendor.
    doctor.post_form(f"/prescriptions/{draft_id}/preferred-pharmacy", MAIN_STREET)
    assert deliver(app).delivered == 1
    assert vendor.patients()[0]["Pharmacies"] == [3001]


def claim_the_sync(app):
    """The worker takes the due sync (it is in flight from now on)."""
    with app.app_context():
        [claimed] = outbox.claim_due("worker-1", frozenset({"dosespot"}))
        db.session.remove()
    return claimed


def fail_it_for_a_while(app, claimed) -> str:
    """Its try fails for a while (the vendor did not answer); the retry is due now."""
    with app.app_context():
        retry = outbox.mark_failed(
            claimed, "DoseSpot did not answer in time.", permanent=False, max_attempts=5
        )
        db.session.execute(
            update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    return retry


def test_removing_one_while_its_sync_is_in_flight_keeps_the_retry_from_the_vendor(
    app, chart, vendor, signed_in
):
    """The worker has taken the sync when the pharmacy is removed (so it is not withdrawn
    then), and that try fails for a while (the vendor did not answer): the retry, due later,
    is withheld, so the vendor is never told to make a pharmacy the user removed the
    patient's primary one."""
    patient_id = with_address(app, chart.patients[0])
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, patient_id)
    doctor.post_form(f"/prescriptions/{draft_id}/preferred-pharmacy", MAIN_STREET)
    claimed = claim_the_sync(app)

    answer = doctor.post_form(remove_url(draft_id, preferred_id(app, patient_id, "3001")))
    assert answer.status_code == 303 and preferred(app, patient_id) == []
    assert [m.status for m in syncs(app)] == ["in_flight"]  # the worker's, not withdrawn
    assert fail_it_for_a_while(app, claimed) == "pending"

    run = deliver(app)
    assert (run.delivered, run.withheld) == (0, 1)
    [message] = syncs(app)
    assert message.status == "cancelled"
    assert "Removed from the patient's preferred pharmacies" in message.last_error
    assert vendor.patients() == []  # neither the patient nor the pharmacy reached it
    assert deliver(app).delivered == 0

    # Set as preferred again: the same message goes, the pharmacy being preferred again.
    doctor.post_form(f"/prescriptions/{draft_id}/preferred-pharmacy", MAIN_STREET)
    assert deliver(app).delivered == 1
    assert vendor.patients()[0]["PrimaryPharmacyId"] == 3001


def test_a_primary_sync_retried_after_another_became_primary_is_withheld(
    app, chart, vendor, signed_in
):
    """Main Street's sync fails for a while; meanwhile Elm Avenue is made the primary one and
    reaches the vendor. Main Street's retry would make it the primary one there again: it is
    withheld, and the vendor keeps the primary the user chose last."""
    patient_id = with_address(app, chart.patients[0])
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, patient_id)
    doctor.post_form(f"/prescriptions/{draft_id}/preferred-pharmacy", MAIN_STREET)
    claimed = claim_the_sync(app)
    doctor.post_form(f"/prescriptions/{draft_id}/preferred-pharmacy", ELM_AVENUE)
    assert deliver(app).delivered == 1
    assert vendor.patients()[0]["PrimaryPharmacyId"] == 3002
    assert fail_it_for_a_while(app, claimed) == "pending"

    run = deliver(app)
    assert (run.delivered, run.withheld) == (0, 1)
    assert vendor.patients()[0]["PrimaryPharmacyId"] == 3002
    assert preferred(app, patient_id) == [("3001", False, False), ("3002", True, True)]


def test_removing_one_the_vendor_has_is_local_only(app, chart, vendor, signed_in):
    """DoseSpot's contract has no call to remove a patient's pharmacy: the portal forgets it,
    the vendor keeps it, and nothing is queued."""
    patient_id = with_address(app, chart.patients[0])
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, patient_id)
    doctor.post_form(f"/prescriptions/{draft_id}/preferred-pharmacy", MAIN_STREET)
    assert deliver(app).delivered == 1
    answer = doctor.post_form(remove_url(draft_id, preferred_id(app, patient_id, "3001")))
    assert answer.status_code == 303
    assert preferred(app, patient_id) == []
    assert [m.status for m in syncs(app)] == ["delivered"]
    assert deliver(app).delivered == 0
    assert vendor.patients()[0]["Pharmacies"] == [3001]
    [event] = events(app, "patient.preferred_pharmacy_remove")
    assert "portal only" in event.detail and "withdrawn" not in event.detail


def test_removing_checks_the_patient_the_prescriber_and_the_csrf_token(
    app, chart, vendor, signed_in
):
    patient_id = with_address(app, chart.patients[0])
    other_patient = with_address(app, chart.patients[1])
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, patient_id)
    other_draft = start_draft(doctor, other_patient)
    doctor.post_form(f"/prescriptions/{other_draft}/preferred-pharmacy", MAIN_STREET)
    theirs = preferred_id(app, other_patient, "3001")

    # Another patient's pharmacy through this patient's draft: as unknown as a missing id.
    assert doctor.post_form(remove_url(draft_id, theirs)).status_code == 404
    assert doctor.post_form(remove_url(draft_id + 999, theirs)).status_code == 404
    assert signed_in("admin").post_form(remove_url(other_draft, theirs)).status_code == 403
    assert doctor.client.post(remove_url(other_draft, theirs)).status_code == 400  # no token
    assert preferred(app, other_patient) == [("3001", True, False)]
    assert events(app, "patient.preferred_pharmacy_remove") == []
