"""A controlled substance on its way, over real sockets: the worker sends it with the vendor's
``sendEpcs`` and the prescriber's PIN and a one-time password it derives from their stored,
encrypted token seed (nothing typed at signing is kept, nothing secret rides in the outbox).
No credential on file, or a wrong one (the sandbox checks both), ends in "error" in words."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.integrations.models import EpcsVendorCredential
from tests.admin.epcs_helpers import grant_drlee, set_user
from tests.integrations.dosespot.helpers import (
    PRESCRIBER_EPCS_PIN,
    PRESCRIBER_EPCS_SEED,
)
from tests.prescriptions.dosespot_support import register_epcs_credential
from tests.prescriptions.signing_helpers import (
    LISINOPRIL,
    OXYCODONE,
    a_draft,
    a_patient,
    deliver,
    events,
    load,
    outbox_messages,
    work_until,
)
from tests.support.clients import fresh_totp
from tests.support.database import PASSWORD


def sign_controlled(doctor, app, rx_id: int):
    data = {
        "version": str(load(app, rx_id).version),
        "totp_code": fresh_totp(app, "drlee"),
        "password": PASSWORD,
    }
    return doctor.post_form(f"/prescriptions/{rx_id}/sign", data)


def oxycodone_draft(app) -> tuple[int, int]:
    patient_id = a_patient(app)
    return patient_id, a_draft(app, patient_id, drug=OXYCODONE, pharmacy_id="3001")


def test_a_schedule_ii_goes_by_send_epcs_and_reaches_pharmacy_verified(app, sandbox, signed_in):
    grant_drlee(app)
    register_epcs_credential(app)
    _, rx_id = oxycodone_draft(app)
    answer = sign_controlled(signed_in("drlee"), app, rx_id)
    assert answer.status_code == 303, answer.get_data(as_text=True)[:2000]
    [message] = outbox_messages(app, rx_id)
    assert message.payload["prescription"]["schedule"] == 2
    # Nothing secret in the outbox: not the PIN, not the seed, not the password.
    raw = json.dumps(message.payload)
    assert PRESCRIBER_EPCS_PIN not in raw and PRESCRIBER_EPCS_SEED not in raw
    assert PASSWORD not in raw
    assert deliver(app).delivered == 1
    assert load(app, rx_id).state == "sent"
    work_until(app, lambda: load(app, rx_id).state == "pharmacy_verified", "pharmacy verified")
    [at_vendor] = sandbox.prescriptions()
    assert at_vendor["Schedule"] and at_vendor["NonDoseSpotPrescriptionId"] == f"rx-{rx_id}"


def test_the_credential_is_stored_encrypted_and_its_setting_audited(app, sandbox):
    register_epcs_credential(app)
    with app.app_context():
        row = db.session.scalars(select(EpcsVendorCredential)).one()
        assert PRESCRIBER_EPCS_PIN not in row.pin_encrypted
        assert PRESCRIBER_EPCS_SEED not in row.otp_secret_encrypted
        db.session.remove()
    [event] = events(app, "integrations.epcs_credential_set")
    assert PRESCRIBER_EPCS_PIN not in (event.detail or "")


def test_without_a_credential_the_send_fails_in_words(app, sandbox, signed_in):
    grant_drlee(app)
    _, rx_id = oxycodone_draft(app)
    assert sign_controlled(signed_in("drlee"), app, rx_id).status_code == 303
    assert deliver(app).failed == 1
    rx = load(app, rx_id)
    assert rx.state == "error" and "no EPCS credential" in rx.transmission_error
    assert sandbox.prescriptions() == []  # refused before anything was created


def test_a_wrong_token_is_refused_by_the_vendor(app, sandbox, signed_in):
    grant_drlee(app)
    register_epcs_credential(app, seed="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    _, rx_id = oxycodone_draft(app)
    assert sign_controlled(signed_in("drlee"), app, rx_id).status_code == 303
    assert deliver(app).failed == 1
    rx = load(app, rx_id)
    assert rx.state == "error" and rx.transmission_error
    [at_vendor] = sandbox.prescriptions()  # created, never sent
    assert at_vendor["Status"] != 13


def test_a_plain_drug_still_goes_by_send_without_any_credential(app, sandbox, signed_in):
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id, drug=LISINOPRIL)
    data = {"version": str(load(app, rx_id).version), "totp_code": fresh_totp(app, "drlee")}
    assert signed_in("drlee").post_form(f"/prescriptions/{rx_id}/sign", data).status_code == 303
    assert deliver(app).delivered == 1
    assert load(app, rx_id).state == "sent"


def test_the_prescriber_stores_the_credential_on_a_page_with_a_fresh_code(app, sandbox, signed_in):
    doctor = signed_in("drlee")
    account = doctor.get("/auth/account").get_data(as_text=True)
    assert 'href="/prescriptions/epcs-credential"' in account  # found from "My account"
    page = doctor.get("/prescriptions/epcs-credential").get_data(as_text=True)
    assert "Not on file" in page and "EPCS PIN at the e-prescribing service" in page
    fields = {"pin": PRESCRIBER_EPCS_PIN, "otp_secret": PRESCRIBER_EPCS_SEED}
    no_code = doctor.post_form("/prescriptions/epcs-credential", {**fields, "totp_code": "000000"})
    assert no_code.status_code == 422
    bad_seed = doctor.post_form(
        "/prescriptions/epcs-credential",
        {**fields, "otp_secret": "not base32!", "totp_code": fresh_totp(app, "drlee")},
    )
    assert bad_seed.status_code == 422 and "base32" in bad_seed.get_data(as_text=True)
    saved = doctor.post_form(
        "/prescriptions/epcs-credential", {**fields, "totp_code": fresh_totp(app, "drlee")}
    )
    assert saved.status_code == 303
    page = doctor.get("/prescriptions/epcs-credential").get_data(as_text=True)
    assert "On file" in page and PRESCRIBER_EPCS_SEED not in page
    assert events(app, "integrations.epcs_credential_set")


def test_fills_reported_by_the_pharmacy_give_refills_left_and_the_last_fill(
    app, sandbox, signed_in
):
    """Each new last-fill date the vendor reports counts once, however often it is read."""
    patient_id = a_patient(app)
    rx_id = a_draft(app, patient_id, drug=LISINOPRIL)  # 2 refills
    doctor = signed_in("drlee")
    data = {"version": str(load(app, rx_id).version), "totp_code": fresh_totp(app, "drlee")}
    assert doctor.post_form(f"/prescriptions/{rx_id}/sign", data).status_code == 303
    work_until(app, lambda: load(app, rx_id).state == "pharmacy_verified", "pharmacy verified")
    vendor_id = int(load(app, rx_id).vendor_id)
    sandbox.control(f"prescriptions/{vendor_id}/fill", {"Fill": "FullFill"})
    work_until(app, lambda: load(app, rx_id).fills == 1, "the first fill")
    first = load(app, rx_id)
    assert first.last_filled_on is not None and first.refills_left == 2
    time.sleep(1.1)  # the vendor's fill time has whole seconds
    sandbox.control(f"prescriptions/{vendor_id}/fill", {"Fill": "FullFill"})
    work_until(app, lambda: load(app, rx_id).fills == 2, "the first refill")
    assert load(app, rx_id).refills_left == 1
    page = doctor.get(f"/patients/{patient_id}/prescriptions").get_data(as_text=True)
    assert "1 left" in page and "(2 fills)" in page and "Last fill" in page


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"is_enabled": False}, "has been disabled since signing"),
        ({"mfa_enabled": False}, "may no longer sign controlled-substance"),
    ],
)
def test_a_prescriber_disabled_or_without_epcs_since_signing_is_not_sent_for(
    app, sandbox, signed_in, change, words
):
    """The worker sends in the prescriber's name with their stored factors: an account
    disabled (or no longer allowed EPCS) after signing gets nothing sent, and says why."""
    grant_drlee(app)
    register_epcs_credential(app)
    _, rx_id = oxycodone_draft(app)
    assert sign_controlled(signed_in("drlee"), app, rx_id).status_code == 303
    set_user(app, "drlee", **change)
    assert deliver(app).failed == 1
    rx = load(app, rx_id)
    assert rx.state == "error" and words in rx.transmission_error
    assert sandbox.prescriptions() == []  # refused before anything was created
