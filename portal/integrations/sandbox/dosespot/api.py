"""The REST API (DOSESPOT.md section 3): the token endpoint and ``/webapi/v2/api/...``.

Every answer is HTTP 200 with a ``Result`` envelope, business errors included, as at
DoseSpot. [sandbox] ``?strict=1`` answers a business error with a 4xx instead, for
clients that want to see the difference. Auth errors are real HTTP errors at DoseSpot
too: 400 from the token endpoint, 401 on an API call without a live token.
"""

from __future__ import annotations

import math
import secrets
import time
from datetime import UTC, datetime, timedelta

from flask import Blueprint, current_app, g, jsonify, request

from portal.integrations.sandbox.dosespot import records
from portal.integrations.sandbox.dosespot.state import PRESCRIPTION_STATUS, enum_value

bp = Blueprint("api", __name__, url_prefix="/webapi/v2")

RATE_WINDOW = 10.0  # seconds, as DoseSpot's limits are counted


def sandbox():
    return current_app.extensions["dosespot_sandbox"]


def ok(**fields):
    return jsonify({**fields, "Result": {"ResultCode": "OK", "ResultDescription": ""}})


def business_error(description: str, status: int = 400):
    body = jsonify({"Result": {"ResultCode": "ERROR", "ResultDescription": description}})
    return (body, status) if request.args.get("strict") == "1" else (body, 200)


def page(items: list, page_number: int | None = None):
    size = sandbox().config["page_size"]
    total = len(items)
    pages = max(1, math.ceil(total / size))
    current = min(max(1, page_number or 1), pages)
    chunk = items[(current - 1) * size : current * size]
    return ok(
        Items=chunk,
        PageResult={
            "CurrentPage": current,
            "TotalPages": pages,
            "PageSize": size,
            "TotalCount": total,
            "HasPrevious": current > 1,
            "HasNext": current < pages,
        },
    )


def _page_number() -> int:
    try:
        return int(request.args.get("pageNumber", 1))
    except ValueError:
        return 1


# Token -------------------------------------------------------------------------------------


@bp.post("/connect/token")
def token():
    box = sandbox()
    form = request.form
    subscription = request.headers.get("Subscription-Key") or request.headers.get(
        "Ocp-Apim-Subscription-Key"
    )
    clinic = box.state.clinic_by_id(form.get("client_id"))
    if (
        clinic is None
        or not secrets.compare_digest(str(form.get("client_secret", "")), clinic["ClinicKey"])
        or not secrets.compare_digest(str(subscription or ""), clinic["SubscriptionKey"])
    ):
        return _token_error("invalid_client", "The clinic id, key or subscription key is wrong.")
    if form.get("grant_type") != "password":
        return _token_error("unsupported_grant_type", "grant_type must be password.")
    clinician = box.state.clinician_by_id(form.get("username"))
    if (
        clinician is None
        or clinician["ClinicId"] != clinic["ClinicId"]
        or not secrets.compare_digest(str(form.get("password", "")), clinic["ClinicKey"])
    ):
        return _token_error("invalid_grant", "The clinician or the password is wrong.")
    if clinician["RegistrationStatus"] == "LockedOut":
        return _token_error("invalid_grant", "The clinician is locked out.")
    lifetime = box.state.faults.token_lifetime or box.config["token_lifetime"]
    value = secrets.token_urlsafe(32)
    issued = datetime.now(UTC)
    with box.state.lock:
        box.state.store.tokens[value] = {
            "ClinicianId": clinician["ClinicianId"],
            "ClinicId": clinic["ClinicId"],
            "expires": time.monotonic() + lifetime,
        }
    stamp = "%a, %d %b %Y %H:%M:%S GMT"
    return jsonify(
        {
            "access_token": value,
            "token_type": "bearer",
            "expires_in": int(lifetime),
            "userName": str(clinician["ClinicianId"]),
            ".issued": issued.strftime(stamp),
            ".expires": (issued + timedelta(seconds=lifetime)).strftime(stamp),
        }
    )


def _token_error(code: str, description: str):
    return jsonify({"error": code, "error_description": description}), 400


# Every API call --------------------------------------------------------------------------


@bp.before_request
def authenticate():
    box = sandbox()
    faults = box.state.faults
    if faults.latency:
        time.sleep(float(faults.latency))  # the slow-vendor fault: answering late is the point
    if request.endpoint == "api.token":
        return None
    if faults.rate_limit and box.state.count_api_call(RATE_WINDOW) > faults.rate_limit:
        answer = jsonify({"Message": "Rate limit is exceeded. Try again later."})
        return answer, 429, {"Retry-After": str(int(RATE_WINDOW))}
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    with box.state.lock:
        found = box.state.store.tokens.get(value) if scheme.lower() == "bearer" else None
    if found is None or found["expires"] <= time.monotonic():
        return jsonify({"Message": "Authorization has been denied for this request."}), 401
    g.clinician = box.state.clinician_by_id(found["ClinicianId"])
    g.clinic_id = found["ClinicId"]
    if faults.result_error:
        return business_error("[sandbox] ResultCode ERROR fault is on.", 500)
    return None


def _patient_of_clinic(patient_id: int) -> dict | None:
    patient = sandbox().state.store.patients.get(patient_id)
    return patient if patient and patient["ClinicId"] == g.clinic_id else None


def _json_body() -> dict:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


# Health ------------------------------------------------------------------------------------


@bp.get("/api/general/check")
def check():
    return ok(Message="Online")


# Patients ----------------------------------------------------------------------------------


@bp.post("/api/patients")
def create_patient():
    box = sandbox()
    data = _json_body()
    errors = records.patient_errors(data)
    if errors:
        return business_error(" ".join(errors))
    patient_id = box.state.new_id()
    with box.state.lock:
        box.state.store.patients[patient_id] = records.patient_record(data, g.clinic_id, patient_id)
    return ok(Id=patient_id)


@bp.put("/api/patients/<int:patient_id>")
def update_patient(patient_id: int):
    box = sandbox()
    if _patient_of_clinic(patient_id) is None:
        return business_error("Patient not found.", 404)
    data = _json_body()
    errors = records.patient_errors(data)
    if errors:
        return business_error(" ".join(errors))
    with box.state.lock:
        box.state.store.patients[patient_id] = records.patient_record(data, g.clinic_id, patient_id)
    return ok(Id=patient_id)


@bp.get("/api/patients/<int:patient_id>")
def get_patient(patient_id: int):
    patient = _patient_of_clinic(patient_id)
    if patient is None:
        return business_error("Patient not found.", 404)
    return ok(Item=records.patient_json(patient))


@bp.get("/api/patients/search")
def search_patients():
    first = (request.args.get("firstName") or "").strip().lower()
    last = (request.args.get("lastName") or "").strip().lower()
    born = records.parse_date(request.args.get("dob"))
    if request.args.get("dob") and born is None:
        return business_error("dob must be M/d/yyyy.")
    with sandbox().state.lock:
        found = [
            records.patient_json(p)
            for p in sandbox().state.store.patients.values()
            if p["ClinicId"] == g.clinic_id
            and (not first or str(p["FirstName"]).lower().startswith(first))
            and (not last or str(p["LastName"]).lower().startswith(last))
            and (born is None or records.parse_date(p["DateOfBirth"]) == born)
        ]
    return page(found, _page_number())


# Prescriptions -----------------------------------------------------------------------------


@bp.get("/api/patients/<int:patient_id>/prescriptions")
def patient_prescriptions(patient_id: int):
    if _patient_of_clinic(patient_id) is None:
        return business_error("Patient not found.", 404)
    start = records.parse_date(request.args.get("startDate"))
    end = records.parse_date(request.args.get("endDate"))
    wanted = request.args.get("prescriptionStatus")
    status = enum_value(PRESCRIPTION_STATUS, wanted) if wanted else None
    if wanted and status is None:
        return business_error("prescriptionStatus is not a PrescriptionStatus.")
    with sandbox().state.lock:
        items = [
            records.prescription_json(rx)
            for rx in sorted(
                sandbox().state.store.prescriptions.values(), key=lambda r: r["PrescriptionId"]
            )
            if rx["PatientId"] == patient_id
            and (status is None or rx["Status"] == status)
            and (start is None or rx["WrittenDate"][:10] >= start.isoformat())
            and (end is None or rx["WrittenDate"][:10] <= end.isoformat())
        ]
    return page(items, _page_number())


@bp.post("/api/patients/<int:patient_id>/prescriptions/coded")
def create_prescription(patient_id: int):
    """A pending prescription. No idempotency, as at DoseSpot: the same
    NonDoseSpotPrescriptionId twice makes two prescriptions (a client that retries must
    first read the patient's prescriptions to see whether its first try landed)."""
    box = sandbox()
    if _patient_of_clinic(patient_id) is None:
        return business_error("Patient not found.", 404)
    data = _json_body()
    errors = records.prescription_errors(box.state, data)
    if errors:
        return business_error(" ".join(errors))
    rx_id = box.state.new_id()
    with box.state.lock:
        box.state.store.prescriptions[rx_id] = records.prescription_record(
            box.state, data, patient_id, g.clinician["ClinicianId"], rx_id
        )
    return ok(Id=rx_id)


def _send(patient_id: int, epcs: bool):
    box = sandbox()
    if _patient_of_clinic(patient_id) is None:
        return business_error("Patient not found.", 404)
    data = _json_body()
    ids = data.get("PrescriptionIds")
    if not isinstance(ids, list) or not ids:
        return business_error("PrescriptionIds is required.")
    if epcs and not (data.get("Pin") and data.get("OTP")):
        return business_error("Pin and OTP are required to send a controlled substance.")
    if epcs and not box.lifecycle.epcs_factors_ok(g.clinician, data["Pin"], data["OTP"]):
        return business_error("EPCS authentication failed: the PIN or one-time password is wrong.")
    outcomes = box.lifecycle.send(patient_id, ids, g.clinician, epcs=epcs)
    items = [
        {
            "Id": o.prescription_id,
            "Result": {
                "ResultCode": "OK" if o.ok else "ERROR",
                "ResultDescription": o.description,
            },
        }
        for o in outcomes
    ]
    if not any(o.ok for o in outcomes):
        body = {
            "Items": items,
            "Result": {
                "ResultCode": "ERROR",
                "ResultDescription": " ".join(o.description for o in outcomes),
            },
        }
        return jsonify(body), (400 if request.args.get("strict") == "1" else 200)
    return ok(Items=items)


@bp.post("/api/patients/<int:patient_id>/prescriptions/send")
def send(patient_id: int):
    return _send(patient_id, epcs=False)


@bp.post("/api/patients/<int:patient_id>/prescriptions/sendEpcs")
def send_epcs(patient_id: int):
    return _send(patient_id, epcs=True)


@bp.post("/api/patients/<int:patient_id>/prescriptions/<int:rx_id>/cancel")
def cancel(patient_id: int, rx_id: int):
    box = sandbox()
    rx = box.state.store.prescriptions.get(rx_id)
    if _patient_of_clinic(patient_id) is None or rx is None or rx["PatientId"] != patient_id:
        return business_error("Prescription not found.", 404)
    refusal = box.lifecycle.cancel(rx, str(_json_body().get("Comment") or ""))
    if refusal:
        return business_error(refusal, 409)
    return ok(Id=rx_id)


# Pharmacies, drugs, clinicians --------------------------------------------------------------


@bp.get("/api/pharmacies/search")
def search_pharmacies():
    args = {k: (request.args.get(k) or "").strip().lower() for k in ("name", "city", "state")}
    zip_code = (request.args.get("zip") or "").strip()
    ncpdp = (request.args.get("ncpdpId") or "").strip()
    items = [
        _pharmacy_json(p)
        for p in sandbox().state.store.pharmacies.values()
        if args["name"] in p["StoreName"].lower()
        and args["city"] in p["City"].lower()
        and (not args["state"] or p["State"].lower() == args["state"])
        and p["ZipCode"].startswith(zip_code)
        and (not ncpdp or p["NCPDPID"] == ncpdp)
    ]
    return page(items, _page_number())


def _pharmacy_json(pharmacy: dict) -> dict:
    return {k: v for k, v in pharmacy.items() if k not in ("FailsTransmission", "DeniesCancel")}


@bp.post("/api/patients/<int:patient_id>/pharmacies")
def add_patient_pharmacy(patient_id: int):
    box = sandbox()
    patient = _patient_of_clinic(patient_id)
    if patient is None:
        return business_error("Patient not found.", 404)
    data = _json_body()
    try:
        pharmacy_id = int(data.get("PharmacyId"))
    except (TypeError, ValueError):
        pharmacy_id = None
    if pharmacy_id not in box.state.store.pharmacies:
        return business_error("PharmacyId is not a known pharmacy.")
    with box.state.lock:
        chosen = patient.setdefault("Pharmacies", [])
        if pharmacy_id not in chosen:
            chosen.append(pharmacy_id)
        if data.get("SetAsPrimary"):
            patient["PrimaryPharmacyId"] = pharmacy_id
    return ok()


@bp.get("/api/medications/search")
def search_medications():
    name = (request.args.get("name") or "").strip().lower()
    if len(name) < 3:
        return business_error("name must be at least 3 characters.")
    items = [
        _drug_json(d)
        for d in sandbox().state.store.drugs.values()
        if name in d["DisplayName"].lower()
    ]
    return page(items, _page_number())


@bp.get("/api/medications/select")
def select_medication():
    args = {k.lower(): v for k, v in request.args.items()}
    for drug in sandbox().state.store.drugs.values():
        if (
            args.get("dispensabledrugid") == str(drug["DispensableDrugId"])
            or (args.get("rxcui") and args.get("rxcui") == drug["RxCUI"])
            or (args.get("ndc") and args.get("ndc") == drug["NDC"])
        ):
            return ok(Item=_drug_json(drug))
    return business_error("No drug matches.", 404)


def _drug_json(drug: dict) -> dict:
    return {k: v for k, v in drug.items() if k != "source"}


@bp.get("/api/clinicians/<int:clinician_id>")
def clinician(clinician_id: int):
    found = sandbox().state.clinician_by_id(clinician_id)
    if found is None or found["ClinicId"] != g.clinic_id:
        return business_error("Clinician not found.", 404)
    return ok(Item=found)


@bp.get("/api/clinicians/<int:clinician_id>/registrationStatus")
def registration_status(clinician_id: int):
    found = sandbox().state.clinician_by_id(clinician_id)
    if found is None or found["ClinicId"] != g.clinic_id:
        return business_error("Clinician not found.", 404)
    return ok(Item=found["RegistrationStatus"])


# Notifications and pharmacy requests --------------------------------------------------------


@bp.get("/api/notifications/counts")
def notification_counts():
    return ok(**sandbox().lifecycle.counts(g.clinician["ClinicianId"]))


@bp.get("/api/notifications/errors")
def notification_errors():
    box = sandbox()
    with box.state.lock:
        items = [
            dict(e)
            for e in box.state.store.transmission_errors
            if e["ClinicianId"] == g.clinician["ClinicianId"]
        ]
    return page(items, _page_number())


@bp.get("/api/refills/pending")
def pending_refills():
    return _pending(sandbox().state.store.refill_requests)


@bp.get("/api/rxchanges")
def pending_rx_changes():
    return _pending(sandbox().state.store.rx_change_requests)


def _pending(requests_by_id: dict):
    with sandbox().state.lock:
        items = [
            dict(r)
            for r in requests_by_id.values()
            if r["ClinicianId"] == g.clinician["ClinicianId"] and r["Status"] == "Pending"
        ]
    return page(items, _page_number())


@bp.post("/api/refills/<int:request_id>/approve")
@bp.post("/api/rxchanges/<int:request_id>/approve")
def approve_request(request_id: int):
    return _answer_request(request_id, "Approved")


@bp.post("/api/refills/<int:request_id>/deny")
@bp.post("/api/rxchanges/<int:request_id>/deny")
def deny_request(request_id: int):
    return _answer_request(request_id, "Denied")


def _answer_request(request_id: int, outcome: str):
    store = sandbox().state.store
    table = store.rx_change_requests if "/rxchanges/" in request.path else store.refill_requests
    with sandbox().state.lock:
        found = table.get(request_id)
        if found is None or found["ClinicianId"] != g.clinician["ClinicianId"]:
            return business_error("Request not found.", 404)
        # [sandbox] Every answer that reached the request, accepted or not: tests count them.
        found["AnswerCalls"] = found.get("AnswerCalls", 0) + 1
        if found["Status"] != "Pending":
            return business_error("The request was already answered.", 409)
        found["Status"] = outcome
        found["Answer"] = _json_body()
        if outcome == "Approved":
            # As at DoseSpot, the answer's Id is the request's, not the new prescription's.
            refills = records.int_or_none(found["Answer"].get("Refills"))
            sandbox().lifecycle.approve_request(found, g.clinician, refills or 0)
    return ok(Id=request_id)
