"""Renewing a prescription: the renewal is linked to what it renews, so the safety checks do
not call it a duplicate of the very drug it continues (any other drug of the same ingredient
or class still counts; allergies and interactions are checked as ever), and signing it lists
the drug once on the medication list. "Renew" on the chart and the Rx inbox's approval of a
pharmacy's renewal request go the same way."""

from __future__ import annotations

from datetime import date

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from portal.charting.lists.services import update_medication
from portal.charting.models import Medication
from portal.extensions import db
from portal.prescriptions.compose import services as compose
from portal.prescriptions.models import Prescription
from portal.prescriptions.signing import services as signing
from portal.transaction import use_case
from tests.prescriptions.compose_helpers import SPIRONOLACTONE, choose, on_spironolactone
from tests.prescriptions.rx_inbox_helpers import a_sent_prescription, requests_stored, sign
from tests.prescriptions.signing_helpers import (
    LISINOPRIL,
    a_draft,
    a_patient,
    load,
    medications,
    work_until,
)
from tests.support.clients import actor_of, fresh_totp

ENALAPRIL = "3827"  # an ACE inhibitor, as lisinopril (ATC C09AA), coded as the list codes it
LISINOPRIL_INGREDIENT = "29046"
LISINOPRIL_20 = "314077"
UNCODED = {
    **LISINOPRIL,
    "drug": "Zestoretic-like house blend 10 MG Oral Tablet",
    "rxcui": None,
    "ingredient_rxcuis": None,
}


def sign_now(app, rx_id: int) -> None:
    code = fresh_totp(app, "drlee")
    with app.app_context():
        signing.sign_prescription(actor_of("drlee"), rx_id, version=None, totp_code=code)
        db.session.remove()


def signed(app, patient_id: int, drug: dict | None = None) -> int:
    """A prescription drafted and signed by Dr. Lee (no connector: it stays signed, open)."""
    rx_id = a_draft(app, patient_id, drug=drug)
    sign_now(app, rx_id)
    assert load(app, rx_id).medication_id is not None
    return rx_id


def renew(app, rx_id: int) -> int:
    with app.app_context():
        draft_id = compose.renew(actor_of("drlee"), rx_id).id
        db.session.remove()
    return draft_id


def alerts(app, draft_id: int) -> dict[str, str]:
    """The draft's safety alerts now, code -> kind."""
    with app.app_context():
        found = compose.safety_alerts(actor_of("drlee"), draft_id)
        db.session.remove()
    return {alert.code: alert.kind for alert in found}


def a_medication(app, patient_id: int, drug: str, rxcui: str) -> int:
    with app.app_context(), use_case():
        medication = Medication(
            patient_id=patient_id,
            drug=drug,
            rxnorm_code=rxcui,
            route="oral",
            frequency="once daily",
            start_date=date(2026, 1, 5),
            status="active",
        )
        db.session.add(medication)
        db.session.flush()
        return medication.id


def duplicates(found: dict[str, str]) -> set[str]:
    return {code for code, kind in found.items() if kind.startswith("duplicate_")}


def active_medications(app, patient_id: int) -> list[Medication]:
    return [m for m in medications(app, patient_id) if m.status == "active"]


def test_a_renewal_is_no_duplicate_of_what_it_renews_though_a_new_prescription_is(app):
    patient_id = a_patient(app)
    original = signed(app, patient_id)
    listed = load(app, original).medication_id

    # The same drug written afresh (not a renewal) is duplicate therapy with the listed one.
    fresh = a_draft(app, patient_id)
    assert duplicates(alerts(app, fresh)) == {f"duplicate_ingredient:medication:{listed}"}

    renewal = renew(app, original)
    draft = load(app, renewal)
    assert (draft.renews_prescription_id, draft.rxcui) == (original, LISINOPRIL["rxcui"])
    assert duplicates(alerts(app, renewal)) == set()


def test_other_drugs_of_the_same_ingredient_or_class_allergies_and_interactions_still_count(
    app, signed_in
):
    patient_id = a_patient(app)
    original = signed(app, patient_id)
    enalapril = a_medication(app, patient_id, "enalapril 10 mg tablet", ENALAPRIL)
    # Lisinopril charted again by hand: not the entry standing for the renewed prescription.
    charted = a_medication(app, patient_id, "lisinopril", LISINOPRIL_INGREDIENT)
    spironolactone = on_spironolactone(app, patient_id)
    renewal = renew(app, original)

    found = alerts(app, renewal)
    assert duplicates(found) == {
        f"duplicate_ingredient:medication:{charted}",
        f"duplicate_class:medication:{enalapril}:C09AA",
    }
    interactions = [code for code, kind in found.items() if kind == "interaction"]
    assert interactions and all(
        code.endswith(f":{SPIRONOLACTONE}:medication:{spironolactone}") for code in interactions
    )
    listed = load(app, original).medication_id
    assert not [code for code in found if code.endswith(f":medication:{listed}")]

    # The renewal's drug changed: a new therapy beside the old one, checked against it.
    choose(signed_in("drlee"), renewal, LISINOPRIL_20)
    assert f"duplicate_ingredient:medication:{listed}" in alerts(app, renewal)


def test_a_renewal_of_an_open_prescription_not_on_the_list_leaves_that_prescription_out(app):
    patient_id = a_patient(app)
    with app.app_context(), use_case():  # written in the vendor's screen, not (yet) listed
        vendor = Prescription(
            patient_id=patient_id,
            origin="vendor",
            state="pharmacy_verified",
            connector="dosespot",
            vendor_id="901",
            drug=LISINOPRIL["drug"],
            rxcui=LISINOPRIL["rxcui"],
            quantity="90",
            refills="1",
            directions="Take 1 tablet by mouth once daily",
            fhir_status="active",
            written_on=date(2026, 11, 2),
        )
        db.session.add(vendor)
        db.session.flush()
        vendor_id = vendor.id
    fresh = a_draft(app, patient_id)
    assert duplicates(alerts(app, fresh)) == {f"duplicate_ingredient:prescription:{vendor_id}"}
    renewal = renew(app, vendor_id)
    assert duplicates(alerts(app, renewal)) == set()


def test_renewing_again_what_was_renewed_already_is_a_duplicate_of_the_first_renewal(app):
    patient_id = a_patient(app)
    original = signed(app, patient_id)
    listed = load(app, original).medication_id
    first = renew(app, original)
    sign_now(app, first)
    # Renewing the latest of the line is no duplicate: the original was renewed since.
    assert duplicates(alerts(app, renew(app, first))) == set()
    # Renewing the original a second time would give the pharmacy two: it says so.
    again = renew(app, original)
    assert duplicates(alerts(app, again)) == {f"duplicate_ingredient:medication:{listed}"}


def test_a_renewal_that_no_longer_stands_does_not_hide_the_prescription_it_renewed(app):
    """Two open prescriptions of the drug on one list entry; the second was renewed, but that
    renewal was cancelled: the second still stands, so renewing the first is a duplicate."""
    patient_id = a_patient(app)
    first = signed(app, patient_id)
    listed = load(app, first).medication_id
    second = signed(app, patient_id)
    assert load(app, second).medication_id == listed
    renewal_of_second = renew(app, second)
    sign_now(app, renewal_of_second)
    with app.app_context(), use_case():
        db.session.execute(
            text("UPDATE prescriptions SET fhir_status = 'cancelled' WHERE id = :i"),
            {"i": renewal_of_second},
        )
    assert duplicates(alerts(app, renew(app, first))) == {
        f"duplicate_ingredient:medication:{listed}"
    }


@pytest.mark.parametrize("drug", [LISINOPRIL, UNCODED], ids=["edited-entry", "uncoded-drug"])
def test_signing_a_renewal_lists_the_drug_once(app, drug):
    patient_id = a_patient(app)
    original = signed(app, patient_id, drug)
    listed = load(app, original).medication_id
    if drug is LISINOPRIL:
        # Edited on the list (the frequency): the list re-codes the entry from its name, so
        # the product's code no longer finds it.
        with app.app_context():
            entry = db.session.get(Medication, listed)
            update_medication(
                actor_of("drlee"),
                patient_id,
                listed,
                entry.version,
                {"drug": entry.drug, "frequency": "once daily in the morning"},
            )
            db.session.remove()
        assert medications(app, patient_id)[0].rxnorm_code != LISINOPRIL["rxcui"]

    renewal = renew(app, original)
    assert duplicates(alerts(app, renewal)) == set()
    sign_now(app, renewal)
    signed_renewal = load(app, renewal)
    assert signed_renewal.state == "signed" and signed_renewal.renews_prescription_id == original
    assert signed_renewal.medication_id == listed
    assert [m.id for m in active_medications(app, patient_id)] == [listed]


def test_the_compose_page_says_what_it_renews_and_shows_no_duplicate(app, signed_in):
    patient_id = a_patient(app)
    original = signed(app, patient_id)
    doctor = signed_in("drlee")
    answer = doctor.post_form(f"/prescriptions/{original}/renew")
    assert answer.status_code == 303
    page = doctor.get(answer.location).get_data(as_text=True)
    written = load(app, original).written_on
    assert f"Renews the prescription of {written.day} {written:%b %Y}" in page
    panel = page[page.index('id="safety-panel"') :]
    assert "Duplicate therapy" not in panel and "Same class" not in panel
    # A new draft of the same drug says it.
    fresh = a_draft(app, patient_id)
    page = doctor.get(f"/prescriptions/{fresh}").get_data(as_text=True)
    assert "Duplicate therapy: lisinopril" in page and "Renews the prescription" not in page


def test_approving_a_pharmacys_renewal_request_is_a_renewal_too(app, sandbox, signed_in):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    original, vendor_rx = a_sent_prescription(app, doctor, patient_id)
    listed = load(app, original).medication_id
    enalapril = a_medication(app, patient_id, "enalapril 10 mg tablet", ENALAPRIL)
    sandbox.control("refills", {"PrescriptionId": vendor_rx})
    work_until(app, lambda: len(requests_stored(app)) == 1, "the renewal request")
    [request] = requests_stored(app)

    approve = doctor.post_form(
        f"/prescriptions/inbox/requests/{request.id}/approve", {"refills": "2", "comment": ""}
    )
    assert approve.status_code == 303
    draft_id = int(approve.headers["Location"].rstrip("/").split("/")[-2])
    assert load(app, draft_id).renews_prescription_id == original
    assert duplicates(alerts(app, draft_id)) == {f"duplicate_class:medication:{enalapril}:C09AA"}
    dialog = doctor.get(f"/prescriptions/{draft_id}/sign").get_data(as_text=True)
    assert "Same class: ACE inhibitors" in dialog and "Duplicate therapy" not in dialog

    assert sign(doctor, app, draft_id).status_code == 303
    approval = load(app, draft_id)
    assert approval.state == "queued" and approval.medication_id == listed
    assert approval.renews_prescription_id == original
    with app.app_context():
        active = db.session.scalars(
            select(Medication.id).where(
                Medication.patient_id == patient_id, Medication.status == "active"
            )
        ).all()
    assert sorted(active) == sorted([listed, enalapril])


def test_migration_0030_goes_down_and_up_with_signed_renewals_kept(app):
    patient_id = a_patient(app)
    original = signed(app, patient_id)
    renewal = renew(app, original)
    sign_now(app, renewal)
    with app.app_context():
        downgrade(revision="0029")
        try:
            columns = {c["name"] for c in db.inspect(db.engine).get_columns("prescriptions")}
            assert "renews_prescription_id" not in columns
            rows = db.session.execute(
                text("SELECT id, state FROM prescriptions WHERE patient_id = :p ORDER BY id"),
                {"p": patient_id},
            ).all()
            assert [tuple(row) for row in rows] == [(original, "signed"), (renewal, "signed")]
            # What was signed is still guarded: the table kept its triggers.
            with pytest.raises(DBAPIError):
                db.session.execute(
                    text("UPDATE prescriptions SET drug = 'x' WHERE id = :i"), {"i": renewal}
                )
            db.session.rollback()
        finally:
            db.session.rollback()
            db.session.remove()
            upgrade()
        keys = db.inspect(db.engine).get_foreign_keys("prescriptions")
        assert any(
            key["constrained_columns"] == ["renews_prescription_id"]
            and key["referred_table"] == "prescriptions"
            for key in keys
        )
        assert db.session.get(Prescription, renewal).renews_prescription_id is None
        db.session.remove()
