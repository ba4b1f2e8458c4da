"""Signing a prescription composed in the portal: a fresh TOTP code, the checks run again
(overrides stored and audited), EPCS rules for controlled substances, one signing for two
clicks, the digest of what was signed, and what was signed kept as it was."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from portal.extensions import db
from portal.patients.models import Patient
from portal.prescriptions.models import Prescription
from portal.prescriptions.services import _write_back
from portal.prescriptions.signing import services as signing
from portal.transaction import Conflict, Refused, use_case
from tests.admin.epcs_helpers import grant_drlee
from tests.prescriptions.signing_helpers import (
    OXYCODONE,
    a_draft,
    a_patient,
    add_allergy,
    events,
    load,
    medications,
    outbox_messages,
)
from tests.support.clients import actor_of, fresh_totp
from tests.support.database import PASSWORD

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def sign(doctor, app, rx_id: int, *, code=None, **fields):
    data = {"version": str(load(app, rx_id).version), **fields}
    data["totp_code"] = code if code is not None else fresh_totp(app, "drlee")
    return doctor.post_form(f"/prescriptions/{rx_id}/sign", data)


def test_a_fresh_code_signs_it_with_its_digest_and_it_goes_on_the_medication_list(app, signed_in):
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id)
    doctor = signed_in("drlee")
    dialog = doctor.get(f"/prescriptions/{rx_id}/sign")
    assert dialog.status_code == 200
    page = dialog.get_data(as_text=True)
    assert "Code from your authenticator app" in page and "Your password" not in page

    answer = sign(doctor, app, rx_id)
    assert answer.status_code == 303, answer.get_data(as_text=True)[:3000]
    rx = load(app, rx_id)
    # No connector enabled: signed, and it stays signed (printing is the way out).
    assert (rx.state, rx.fhir_status) == ("signed", "active")
    assert rx.signed_by_id == rx.prescriber_id and rx.signed_at is not None
    assert rx.written_on is not None and rx.version == 2
    assert outbox_messages(app, rx_id) == []
    # The digest is the SHA-256 of the documented canonical form, recomputed from the row.
    assert rx.digest == signing.row_digest(rx)
    content = json.loads(signing.canonical_content({"id": rx.id, **_elements(rx)}))
    assert content["drug"] == "lisinopril 10 MG Oral Tablet" and content["refills"] == "2"
    assert set(content) == {"id", *signing.SIGNED_ELEMENTS}
    # The medication list shows it, linked to the prescription.
    [medication] = medications(app, patient_id)
    assert (medication.id, medication.source, medication.rxnorm_code) == (
        rx.medication_id,
        "prescribed_here",
        "314076",
    )
    [event] = events(app, "prescription.signed")
    assert event.patient_id == patient_id and rx.digest in event.detail
    # The patient's prescriptions page shows the badge.
    listed = doctor.get(f"/patients/{patient_id}/prescriptions").get_data(as_text=True)
    assert 'data-state="signed"' in listed and ">Signed<" in listed


def _elements(rx: Prescription) -> dict:
    return {name: getattr(rx, name) for name in signing.SIGNED_ELEMENTS}


def test_a_wrong_or_spent_code_signs_nothing(app, signed_in):
    patient_id = a_patient(app)
    first, second = a_draft(app, patient_id), a_draft(app, patient_id)
    doctor = signed_in("drlee")
    wrong = sign(doctor, app, first, code="000000")
    assert wrong.status_code == 422 and load(app, first).state == "draft"
    assert "is-invalid" in wrong.get_data(as_text=True)
    missing = sign(doctor, app, first, code="")
    assert missing.status_code == 422 and load(app, first).state == "draft"

    code = fresh_totp(app, "drlee")
    assert sign(doctor, app, first, code=code).status_code == 303
    replayed = sign(doctor, app, second, code=code)
    assert replayed.status_code == 422
    assert load(app, second).state == "draft" and load(app, second).signed_at is None


def test_an_alert_that_needs_an_override_refuses_without_a_reason_and_keeps_one(app, signed_in):
    # No allergy statement at all: "allergies not recorded" must be acknowledged.
    patient_id = a_patient(app, allergies_recorded=False)
    rx_id = a_draft(app, patient_id, directions=f"Take 1 tablet daily {XSS}")
    doctor = signed_in("drlee")
    dialog = doctor.get(f"/prescriptions/{rx_id}/sign").get_data(as_text=True)
    assert "reason:allergies_not_recorded" in dialog
    assert XSS not in dialog and "&lt;script&gt;" in dialog

    refused = sign(doctor, app, rx_id, **{"comment:allergies_not_recorded": XSS})
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "Give a reason to go ahead despite" in page
    assert XSS not in page and "&lt;script&gt;alert" in page  # typed words come back inert
    assert load(app, rx_id).state == "draft"

    other_without_words = sign(doctor, app, rx_id, **{"reason:allergies_not_recorded": "other"})
    assert other_without_words.status_code == 422
    assert "Say why in your own words" in other_without_words.get_data(as_text=True)

    signed = sign(
        doctor,
        app,
        rx_id,
        **{
            "reason:allergies_not_recorded": "allergies_reviewed",
            "comment:allergies_not_recorded": XSS,
        },
    )
    assert signed.status_code == 303, signed.get_data(as_text=True)[:3000]
    rx = load(app, rx_id)
    [override] = json.loads(rx.overrides)
    assert override["code"] == "allergies_not_recorded"
    assert override["reason"] == "allergies_reviewed" and override["comment"] == XSS
    assert any(a["code"] == "allergies_not_recorded" for a in json.loads(rx.alerts))
    [event] = events(app, "prescription.alert_overridden")
    assert event.detail == "allergies_not_recorded: allergies_reviewed"  # no free text
    # Shown again on the patient's page, the stored words stay inert.
    listed = doctor.get(f"/patients/{patient_id}/prescriptions").get_data(as_text=True)
    assert XSS not in listed


def test_an_allergy_to_the_drug_needs_its_override_too(app):
    patient_id = a_patient(app)
    add_allergy(app, patient_id, "lisinopril", "29046")
    rx_id = a_draft(app, patient_id)
    with app.test_request_context():
        actor = actor_of("drlee")
        view = signing.signing_view(actor, rx_id)
        needing = [a for a in view.alerts if a.needs_override]
        assert needing and needing[0].kind == "allergy"
        with pytest.raises(Refused) as refused:
            signing._sign(actor, rx_id, None, {}, controlled=False)
        assert refused.value.field == f"reason:{needing[0].code}"


def test_a_blocking_alert_refuses_whatever_is_overridden(app, signed_in):
    patient_id = a_patient(app, status="deceased")
    rx_id = a_draft(app, patient_id)
    doctor = signed_in("drlee")
    dialog = doctor.get(f"/prescriptions/{rx_id}/sign").get_data(as_text=True)
    assert "cannot be signed until the blocking alerts are resolved" in dialog
    with app.test_request_context(), pytest.raises(Refused, match="cannot be signed"):
        signing._sign(actor_of("drlee"), rx_id, None, {}, controlled=False)
    assert load(app, rx_id).state == "draft"


def test_controlled_substances_need_the_epcs_grant_then_password_and_code(app, signed_in):
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id, drug=OXYCODONE)
    doctor = signed_in("drlee")
    without_grant = sign(doctor, app, rx_id, password=PASSWORD)
    assert without_grant.status_code == 422
    assert "not allowed to sign controlled" in without_grant.get_data(as_text=True)
    assert load(app, rx_id).state == "draft"

    grant_drlee(app)
    dialog = doctor.get(f"/prescriptions/{rx_id}/sign").get_data(as_text=True)
    assert "Your password (controlled substance)" in dialog
    no_password = sign(doctor, app, rx_id)
    assert no_password.status_code == 422 and load(app, rx_id).state == "draft"
    wrong_password = sign(doctor, app, rx_id, password="not it at all")
    assert wrong_password.status_code == 422 and load(app, rx_id).state == "draft"
    signed = sign(doctor, app, rx_id, password=PASSWORD)
    assert signed.status_code == 303, signed.get_data(as_text=True)[:3000]
    rx = load(app, rx_id)
    assert (rx.state, rx.schedule) == ("signed", 2)


def test_a_schedule_ii_with_refills_is_refused(app, signed_in):
    grant_drlee(app)
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id, drug={**OXYCODONE, "refills": "1"})
    refused = sign(signed_in("drlee"), app, rx_id, password=PASSWORD)
    assert refused.status_code == 422
    assert "cannot have refills" in refused.get_data(as_text=True)
    assert load(app, rx_id).state == "draft"


def test_two_clicks_on_sign_sign_once_and_the_second_gets_what_the_first_did(app, signed_in):
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id)
    doctor = signed_in("drlee")
    code = fresh_totp(app, "drlee")
    first = sign(doctor, app, rx_id, code=code)
    second = doctor.post_form(f"/prescriptions/{rx_id}/sign", {"version": "1", "totp_code": code})
    assert (first.status_code, second.status_code) == (303, 303)
    assert first.location == second.location
    assert len(events(app, "prescription.signed")) == 1
    assert len(medications(app, patient_id)) == 1
    assert load(app, rx_id).version == 2


def test_two_signings_at_once_sign_once(app):
    """Two requests at the same moment (threads; on PostgreSQL they truly overlap): the
    conditional UPDATE lets one through; the other answers with it or is refused."""
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id)
    codes = [fresh_totp(app, "drlee")] * 2
    results: list = [None, None]
    barrier = threading.Barrier(2)

    def attempt(index: int) -> None:
        with app.test_request_context():
            barrier.wait()
            try:
                results[index] = signing.sign_prescription(
                    actor_of("drlee"), rx_id, version=1, totp_code=codes[index]
                )
            except Refused as refused:
                results[index] = refused
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    signed = [r for r in results if isinstance(r, signing.Signed)]
    assert signed, results
    assert sum(not r.repeated for r in signed) == 1
    assert len(events(app, "prescription.signed")) == 1
    assert len(medications(app, patient_id)) == 1


def test_what_was_signed_stays_as_it_was(app, signed_in):
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id)
    doctor = signed_in("drlee")
    assert sign(doctor, app, rx_id).status_code == 303
    before = load(app, rx_id)
    # The route: a second signing changes nothing (it answers with the first).
    assert sign(doctor, app, rx_id).status_code == 303
    dialog = doctor.get(f"/prescriptions/{rx_id}/sign").get_data(as_text=True)
    assert "what was signed cannot change" in dialog and "totp_code" not in dialog
    # The service: the same.
    with app.test_request_context():
        again = signing.sign_prescription(actor_of("drlee"), rx_id, version=1, totp_code="1")
        assert again.repeated and again.prescription.digest == before.digest
    # The ORM and raw SQL: the triggers refuse.
    refused = pytest.raises(DBAPIError, match="signed prescription cannot be changed")
    with app.app_context():
        with refused, use_case():
            rx = db.session.get(Prescription, rx_id)
            rx.directions = "Take 2 tablets"
        db.session.rollback()
        raw = text("UPDATE prescriptions SET refills = '5' WHERE id = :id")
        with pytest.raises(DBAPIError, match="signed prescription cannot be changed"), use_case():
            db.session.execute(raw, {"id": rx_id})
        db.session.rollback()
        statement = (
            update(Prescription).where(Prescription.id == rx_id).values(overrides='[{"forged": 1}]')
        )
        with pytest.raises(DBAPIError, match="signed prescription cannot be changed"), use_case():
            db.session.execute(statement)
        db.session.rollback()
        db.session.remove()
    after = load(app, rx_id)
    assert (after.directions, after.refills, after.digest) == (
        before.directions,
        before.refills,
        before.digest,
    )
    assert after.digest == signing.row_digest(after)


def test_another_prescribers_draft_is_not_found(app, signed_in, chart):
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id)
    other = signed_in("drpatel")
    assert other.get(f"/prescriptions/{rx_id}/sign").status_code == 404
    answer = other.post_form(
        f"/prescriptions/{rx_id}/sign", {"version": "1", "totp_code": "123456"}
    )
    assert answer.status_code == 404 and load(app, rx_id).state == "draft"


def test_the_encounter_page_lists_the_visits_prescriptions_with_their_badge(
    app, signed_in, chart, make_encounter
):
    encounter_id = make_encounter()
    rx_id = a_draft(app, chart.patients[0], encounter_id=encounter_id)
    page = signed_in("drlee").get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    assert "Prescriptions of this visit" in page
    assert "lisinopril 10 MG Oral Tablet" in page and 'data-state="draft"' in page
    assert f"/prescriptions/{rx_id}/sign" in page


def test_two_signings_past_their_factors_race_on_the_update_and_both_answer_the_one(
    app, monkeypatch
):
    """Both requests through their factors (two codes, two tabs): the conditional UPDATE
    on state and version decides; the loser changes nothing and answers with the winner."""
    monkeypatch.setattr(signing, "confirm_signing_factors", lambda *args, **kwargs: None)
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id)
    results: list = [None, None]
    barrier = threading.Barrier(2)

    def attempt(index: int) -> None:
        with app.test_request_context():
            barrier.wait()
            try:
                results[index] = signing.sign_prescription(
                    actor_of("drlee"), rx_id, version=1, totp_code="checked elsewhere"
                )
            except Exception as error:  # reported by the assertion below
                results[index] = error
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(isinstance(r, signing.Signed) for r in results), results
    assert sorted(r.repeated for r in results) == [False, True]
    assert {r.prescription.digest for r in results} == {load(app, rx_id).digest}
    assert len(events(app, "prescription.signed")) == 1
    assert len(medications(app, patient_id)) == 1


def test_the_vendors_read_before_the_sends_outcome_lands_on_the_same_row(app, signed_in):
    """A webhook's re-read can arrive before the worker records the send's outcome: the
    vendor's item carries our id ("rx-<id>"), so it updates the signed row, never a second."""
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id)
    assert sign(signed_in("drlee"), app, rx_id).status_code == 303
    item = {
        "vendor_id": "777",
        "drug": "lisinopril 10 MG Oral Tablet (as the vendor names it)",
        "status": "eRxSent",
        "medication_status": "Active",
        "fhir_status": "active",
        "ours": f"rx-{rx_id}",
        "error_details": None,
    }
    with app.app_context(), use_case():
        patient = db.session.get(Patient, patient_id)
        assert _write_back(actor_of("drlee"), "dosespot", patient, item) == 1
    rx = load(app, rx_id)
    assert (rx.connector, rx.vendor_id, rx.state) == ("dosespot", "777", "sent")
    assert rx.drug == "lisinopril 10 MG Oral Tablet"  # what was signed stays
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Prescription)) == 1
        db.session.remove()
    assert len(medications(app, patient_id)) == 1


def test_spoons_for_an_oral_suspension_are_refused_at_signing_beside_the_directions(app, signed_in):
    from portal.terminology.drugs import knowledge

    with app.app_context():
        liquid = next(p for p in knowledge().search("amoxicillin susp") if "Suspension" in p.name)
    patient_id = a_patient(app)
    rx_id = a_draft(
        app,
        patient_id,
        drug={
            "drug": liquid.name,
            "rxcui": liquid.rxcui,
            "ingredient_rxcuis": ",".join(liquid.ingredient_rxcuis),
            "strength": liquid.strength,
            "dose_form": liquid.dose_form,
            "route": liquid.route,
            "schedule": None,
            "directions": "Take 1 teaspoon by mouth twice daily",
            "quantity": "100",
            "dispense_unit": "mL",
            "refills": "0",
        },
    )
    refused = sign(signed_in("drlee"), app, rx_id)
    assert refused.status_code == 422
    assert "dosed in mL" in refused.get_data(as_text=True)
    assert load(app, rx_id).state == "draft"
    with app.app_context(), pytest.raises(Refused) as refusal:
        signing._checked_elements(db.session.get(Prescription, rx_id), None, None)
    assert refusal.value.field == "directions"


def test_a_stored_sig_in_tablets_for_an_oral_suspension_is_refused_beside_the_directions(app):
    from datetime import date

    rx = Prescription(
        drug="amoxicillin 400 MG/5ML Oral Suspension",
        dose_form="Oral Suspension",
        route="oral",
        directions="Take 1 tablet by mouth twice daily",
        sig=json.dumps({"write_out": False, "dose_unit": "tablet"}),
        quantity="100",
        dispense_unit="mL",
        refills="0",
    )
    with app.app_context(), pytest.raises(Refused) as refusal:
        signing._checked_elements(rx, None, date(2026, 1, 1))
    assert refusal.value.field == "directions" and "mL" in str(refusal.value)


def test_a_signing_without_the_version_is_refused(app, signed_in):
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id)
    doctor = signed_in("drlee")
    answer = doctor.post_form(
        f"/prescriptions/{rx_id}/sign", {"totp_code": fresh_totp(app, "drlee")}
    )
    assert answer.status_code == 422
    assert load(app, rx_id).state == "draft"


def test_a_controlled_draft_signed_with_only_the_code_asked_is_refused_in_the_transaction(app):
    """The factors are decided before the signing transaction: a draft that is a controlled
    substance on the locked row, with only the code asked, is never signed."""
    grant_drlee(app)
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id, drug=OXYCODONE)
    with app.app_context(), pytest.raises(Conflict) as refused:
        signing._sign(actor_of("drlee"), rx_id, 1, {}, controlled=False)
    assert "password" in str(refused.value)
    assert load(app, rx_id).state == "draft"
