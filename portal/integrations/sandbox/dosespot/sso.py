"""The embedded screen (DOSESPOT.md section 2): the single sign-on check and a small
prescribing page behind it, server-rendered, usable from the keyboard, a label on
every field. After a good launch the sandbox keeps who and which patient in its own
signed session cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from portal.integrations.sandbox.dosespot import records
from portal.integrations.sandbox.dosespot.state import (
    MEDICATION_STATUS_NAME,
    PRESCRIPTION_STATUS,
    PRESCRIPTION_STATUS_NAME,
)

bp = Blueprint("sso", __name__)

INCORRECT_SSO = 2028  # DoseSpot: incorrect single sign-on calculation
FAILED_DATA_CHECK = 2034  # DoseSpot: failed data check


def sandbox():
    return current_app.extensions["dosespot_sandbox"]


def sso_hash(text: str) -> str:
    """base64(SHA-512(UTF-8 text)) without its trailing "==" (DOSESPOT.md section 2)."""
    encoded = base64.b64encode(hashlib.sha512(text.encode()).digest()).decode()
    return encoded.removesuffix("==")


def expected_codes(phrase: str, user_id: str, clinic_key: str) -> tuple[str, str]:
    return phrase + sso_hash(phrase + clinic_key), sso_hash(user_id + phrase[:22] + clinic_key)


def _render(title: str, template: str, status: int = 200, **context):
    return render_template(template, title=title, **context), status


def _refuse(code: int, message: str):
    return _render("Single sign-on failed", "dosespot_error.html", 403, code=code, message=message)


@bp.get("/LoginSingleSignOn.aspx")
def login():
    box = sandbox()
    args = request.args
    clinic = box.state.clinic_by_id(args.get("SingleSignOnClinicId"))
    if clinic is None:
        return _refuse(FAILED_DATA_CHECK, "Unknown clinic.")
    user_id = args.get("SingleSignOnUserId", "")
    clinician = box.state.clinician_by_id(user_id)
    if clinician is None or clinician["ClinicId"] != clinic["ClinicId"]:
        return _refuse(FAILED_DATA_CHECK, "Unknown clinician for this clinic.")
    try:
        length = int(args.get("SingleSignOnPhraseLength", "32"))
    except ValueError:
        length = 0
    code = args.get("SingleSignOnCode", "")
    verify = args.get("SingleSignOnUserIdVerify", "")
    phrase = code[:length]
    if length < 32 or len(phrase) != length:
        return _refuse(INCORRECT_SSO, "The phrase must be at least 32 characters.")
    want_code, want_verify = expected_codes(phrase, user_id, clinic["ClinicKey"])
    if not (hmac.compare_digest(code, want_code) and hmac.compare_digest(verify, want_verify)):
        return _refuse(INCORRECT_SSO, "Incorrect single sign-on calculation.")
    with box.state.lock:
        if phrase in box.state.store.used_phrases:
            return _refuse(INCORRECT_SSO, "This single sign-on phrase was already used.")
        box.state.store.used_phrases.add(phrase)
    session.clear()
    session.update(
        clinician=clinician["ClinicianId"],
        clinic=clinic["ClinicId"],
        csrf=secrets.token_urlsafe(16),
    )
    if args.get("RefillsErrors") == "1":
        return redirect(url_for("sso.queues"))
    patient = box.state.store.patients.get(_int(args.get("PatientId")))
    if patient is None or patient["ClinicId"] != clinic["ClinicId"]:
        session.clear()
        return _refuse(FAILED_DATA_CHECK, "Unknown patient for this clinic.")
    session["patient"] = patient["PatientId"]
    return redirect(url_for("sso.prescribe"))


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _signed_in() -> dict:
    clinician = sandbox().state.clinician_by_id(session.get("clinician"))
    if clinician is None:
        abort(401)
    return clinician


@bp.route("/sandbox/prescribe", methods=["GET", "POST"])
def prescribe():
    box = sandbox()
    clinician = _signed_in()
    patient = box.state.store.patients.get(session.get("patient"))
    if patient is None:
        abort(404)
    errors, notice, form = [], "", {}
    if request.method == "POST":
        form = request.form.to_dict()
        if not hmac.compare_digest(form.get("csrf", ""), session.get("csrf", "")):
            abort(400)
        data = {
            **{
                k: form.get(k)
                for k in (
                    "DispensableDrugId",
                    "DispenseUnitId",
                    "Quantity",
                    "Refills",
                    "DaysSupply",
                    "PharmacyId",
                    "Directions",
                    "PharmacyNotes",
                )
            },
            "NoSubstitutions": bool(form.get("NoSubstitutions")),
            "Status": PRESCRIPTION_STATUS["Entered"],
            "Diagnoses": [{"Code": form["Diagnosis"].strip()}]
            if form.get("Diagnosis", "").strip()
            else [],
        }
        errors = records.prescription_errors(box.state, data)
        if not errors:
            rx_id = box.state.new_id()
            with box.state.lock:
                box.state.store.prescriptions[rx_id] = records.prescription_record(
                    box.state, data, patient["PatientId"], clinician["ClinicianId"], rx_id
                )
            notice = f"Prescription {rx_id} saved."
            if form.get("action") == "send":
                epcs = box.lifecycle.epcs_factors_ok(clinician, form.get("Pin"), form.get("OTP"))
                outcome = box.lifecycle.send(patient["PatientId"], [rx_id], clinician, epcs=epcs)[0]
                notice = (
                    f"Prescription {rx_id} sent."
                    if outcome.ok
                    else f"Prescription {rx_id} saved, not sent: {outcome.description}"
                )
            form = {}
    with box.state.lock:
        mine = [
            rx
            for rx in box.state.store.prescriptions.values()
            if rx["PatientId"] == patient["PatientId"]
        ]
    return _render(
        "Prescribe",
        "dosespot_prescribe.html",
        patient=patient,
        clinician=clinician,
        errors=errors,
        notice=notice,
        form=form,
        csrf=session.get("csrf", ""),
        drugs=list(box.state.store.drugs.values()),
        units=list(box.state.store.units.values()),
        pharmacies=list(box.state.store.pharmacies.values()),
        prescriptions=sorted(mine, key=lambda r: r["PrescriptionId"]),
        status_name=PRESCRIPTION_STATUS_NAME,
        medication_name=MEDICATION_STATUS_NAME,
    )


@bp.get("/sandbox/queues")
def queues():
    box = sandbox()
    clinician = _signed_in()
    mine = clinician["ClinicianId"]
    with box.state.lock:
        store = box.state.store
        errors = [e for e in store.transmission_errors if e["ClinicianId"] == mine]
        refills = [r for r in store.refill_requests.values() if r["ClinicianId"] == mine]
        changes = [r for r in store.rx_change_requests.values() if r["ClinicianId"] == mine]
    return _render(
        "Notifications", "dosespot_queues.html", errors=errors, refills=refills, changes=changes
    )
