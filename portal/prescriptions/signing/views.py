"""Signing pages: the signing dialog (the alerts as they stand, overrides, the factors), the
signing itself, and the prescriber's failed transmissions with "Send again"."""

from __future__ import annotations

from flask import redirect, request, url_for

from portal.auth.permissions import require
from portal.charting.encounters.views import encounter_section
from portal.prescriptions import bp
from portal.prescriptions.signing import services
from portal.prescriptions.signing.forms import SignForm
from portal.transaction import Refused
from portal.web import current_actor, render


def _dialog(view, form, *, error=None, status=200, posted=None):
    return render(
        "prescriptions/signing/sign.html",
        "prescriptions/signing/_dialog.html",
        status=status,
        view=view,
        patient=view.patient,
        form=form,
        error=error,
        posted=posted or {},
        reasons=services.OVERRIDE_REASONS,
    )


@bp.get("/prescriptions/<int:prescription_id>/sign")
@require("rx.sign")
def sign_dialog(prescription_id: int):
    """The signing dialog of a draft: the checks run now, overrides, the factors."""
    view = services.signing_view(current_actor(), prescription_id)
    form = SignForm(version=view.prescription.version)
    return _dialog(view, form, posted=services.stored_override_fields(view.prescription))


@bp.post("/prescriptions/<int:prescription_id>/sign")
@require("rx.sign")
def sign(prescription_id: int):
    """Sign the draft (and send it, with a connector); a second click answers with what the
    first did."""
    form = SignForm()
    actor = current_actor()
    if not form.validate_on_submit():
        view = services.signing_view(actor, prescription_id)
        return _dialog(view, form, status=422, posted=request.form)
    try:
        signed = services.sign_prescription(
            actor,
            prescription_id,
            version=form.version.data,
            totp_code=form.totp_code.data,
            password=form.password.data,
            overrides=form.overrides(request.form),
        )
    except Refused as refused:
        view = services.signing_view(actor, prescription_id)
        if refused.field in ("totp_code", "password"):
            getattr(form, refused.field).errors = [str(refused)]
        return _dialog(view, form, error=refused, status=refused.status, posted=request.form)
    rx = signed.prescription
    if request.headers.get("HX-Request"):
        return render(
            "prescriptions/signing/_signed.html",
            "prescriptions/signing/_signed.html",
            rx=rx,
            signed=signed,
        )
    return redirect(url_for("prescriptions.prescriptions", patient_id=rx.patient_id), code=303)


@bp.get("/prescriptions/transmission-errors")
@require("rx.sign")
def transmission_errors():
    """The prescriber's prescriptions whose transmission failed, with the reason."""
    rows = services.transmission_errors(current_actor())
    return render("prescriptions/signing/errors.html", rows=rows)


@bp.post("/prescriptions/<int:prescription_id>/retry")
@require("rx.sign")
def retry(prescription_id: int):
    """Send a prescription whose transmission failed again (the same message)."""
    try:
        services.retry_send(current_actor(), prescription_id)
    except Refused as refused:
        rows = services.transmission_errors(current_actor())
        return render(
            "prescriptions/signing/errors.html",
            rows=rows,
            error=refused,
            status=refused.status,
        )
    return redirect(url_for("prescriptions.transmission_errors"), code=303)


@encounter_section
def visit_prescriptions(actor, page) -> dict:
    """The encounter page's list of the visit's prescriptions, with their state badges (the
    page's own view event covers it)."""
    return {"visit_prescriptions": services.prescriptions_of_encounter(page.encounter.id)}


@bp.get("/prescriptions/<int:prescription_id>/state")
@require("rx.sign")
def state(prescription_id: int):
    """The state badge of a prescription the prescriber signed (htmx polls it while the
    worker and the vendor move it on)."""
    rx = services.state_of(current_actor(), prescription_id)
    return render(
        "prescriptions/signing/_live_state.html",
        "prescriptions/signing/_live_state.html",
        rx=rx,
        moving=services.MOVING_STATES,
    )
