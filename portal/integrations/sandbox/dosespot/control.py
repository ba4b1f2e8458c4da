"""[sandbox] The control API, under ``/_sandbox``: what tests and developers use to drive
the stand-in where DoseSpot would act on its own (a pharmacy fills, a prescriber finishes
identity proofing) and to make it misbehave. Loopback callers only; no other auth.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, jsonify, request

from portal.integrations.sandbox.dosespot.state import (
    MEDICATION_STATUS,
    PRESCRIPTION_STATUS,
    REGISTRATION_STATUSES,
    Faults,
    enum_value,
)

bp = Blueprint("control", __name__, url_prefix="/_sandbox")

LOOPBACK = ("127.0.0.1", "::1")
FILLS = ("FullFill", "PartialFill", "NoFill")


def sandbox():
    return current_app.extensions["dosespot_sandbox"]


@bp.before_request
def loopback_only():
    if request.remote_addr not in LOOPBACK:
        abort(403)


def _body() -> dict:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _prescription(rx_id: int) -> dict:
    rx = sandbox().state.store.prescriptions.get(rx_id)
    if rx is None:
        abort(404)
    return rx


@bp.post("/reset")
def reset():
    sandbox().reset()
    return jsonify(ok=True)


@bp.get("/faults")
def faults():
    return jsonify(sandbox().state.faults.as_dict())


@bp.route("/faults", methods=["PUT", "PATCH", "POST"])
def set_faults():
    """Change the named switches; unknown names are refused so a typo cannot pass silently."""
    box = sandbox()
    body = _body()
    known = set(Faults().as_dict())
    unknown = sorted(set(body) - known)
    if unknown:
        return jsonify(error="unknown fault switches", names=unknown, known=sorted(known)), 400
    with box.state.lock:
        for name, value in body.items():
            setattr(box.state.faults, name, value)
        if not box.state.faults.webhook_reorder:
            box.webhooks.release_held()
    return jsonify(box.state.faults.as_dict())


@bp.post("/prescriptions/<int:rx_id>/status")
def set_status(rx_id: int):
    """Any PrescriptionStatus and/or MedicationStatus, by number or name."""
    rx = _prescription(rx_id)
    body = _body()
    status = enum_value(PRESCRIPTION_STATUS, body["Status"]) if "Status" in body else None
    medication = (
        enum_value(MEDICATION_STATUS, body["MedicationStatus"])
        if "MedicationStatus" in body
        else None
    )
    if ("Status" in body and status is None) or ("MedicationStatus" in body and medication is None):
        return jsonify(error="unknown status"), 400
    sandbox().lifecycle.force(rx, status, medication)
    return jsonify(rx)


@bp.post("/prescriptions/<int:rx_id>/fill")
def fill(rx_id: int):
    kind = _body().get("Fill", "FullFill")
    if kind not in FILLS:
        return jsonify(error=f"Fill must be one of {', '.join(FILLS)}"), 400
    rx = _prescription(rx_id)
    sandbox().lifecycle.fill(rx, kind)
    return jsonify(rx)


@bp.post("/prescriptions/<int:rx_id>/cancel-response")
def cancel_response(rx_id: int):
    rx = _prescription(rx_id)
    sandbox().lifecycle.answer_cancel(rx, bool(_body().get("Approved", True)))
    return jsonify(rx)


@bp.post("/refills")
def renewal_request():
    return _pharmacy_request("refill_requests")


@bp.post("/rxchanges")
def change_request():
    return _pharmacy_request("rx_change_requests")


CHANGE_TYPES = (
    "GenericSubstitution",
    "TherapeuticInterchange",
    "PriorAuthorizationRequired",
    "ScriptClarification",
)


def _pharmacy_request(table: str):
    """A pharmacy asks for a renewal or a change of an existing prescription (a change names
    its ``RxChangeType``, one of ``CHANGE_TYPES``; generic substitution by default)."""
    rx = _prescription(int(_body().get("PrescriptionId", 0)))
    change_type = _body().get("RxChangeType", CHANGE_TYPES[0])
    if table == "rx_change_requests" and change_type not in CHANGE_TYPES:
        return jsonify(error="unknown RxChangeType", known=list(CHANGE_TYPES)), 400
    details = str(_body().get("Details", ""))
    entry = sandbox().lifecycle.pharmacy_request(table, rx, details, change_type)
    return jsonify(entry), 201


@bp.post("/clinicians/<int:clinician_id>/registration")
def set_registration(clinician_id: int):
    status = _body().get("RegistrationStatus")
    if status not in REGISTRATION_STATUSES:
        return jsonify(error="unknown status", known=list(REGISTRATION_STATUSES)), 400
    clinician = sandbox().state.clinician_by_id(clinician_id)
    if clinician is None:
        abort(404)
    sandbox().lifecycle.set_registration(clinician, status)
    return jsonify(clinician)


@bp.get("/events")
def events():
    with sandbox().state.lock:
        return jsonify(events=[dict(e) for e in sandbox().state.store.events])


@bp.post("/events/<event_id>/replay")
def replay(event_id: str):
    if not sandbox().webhooks.replay(event_id):
        abort(404)
    return jsonify(ok=True), 202
