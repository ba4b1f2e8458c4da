"""Cancelling pages: the cancel form of a prescription the pharmacy holds, and the request."""

from __future__ import annotations

from flask import flash, redirect, url_for

from portal.auth.permissions import require
from portal.charting.lists.stop_offers import StopOffer, after_medication_stopped
from portal.prescriptions import bp
from portal.prescriptions.cancelling import services
from portal.prescriptions.cancelling.forms import CancelForm
from portal.prescriptions.services import may_cancel
from portal.transaction import Refused
from portal.web import attach_error, current_actor, render


@bp.get("/prescriptions/<int:prescription_id>/cancel")
@require("rx.sign")
def cancel_form(prescription_id: int):
    """The cancel form: the prescription under the patient's banner, a reason."""
    view = services.cancel_view(current_actor(), prescription_id)
    return _page(view, CancelForm())


@bp.post("/prescriptions/<int:prescription_id>/cancel")
@require("rx.sign")
def cancel(prescription_id: int):
    """Ask the pharmacy to cancel (through the e-prescribing connector); the answer comes
    back as the prescription's state."""
    form = CancelForm()
    actor = current_actor()
    if not form.validate_on_submit():
        return _page(services.cancel_view(actor, prescription_id), form, status=422)
    try:
        rx = services.request_cancel(
            actor, prescription_id, form.reason.data, form.comment.data or ""
        )
    except Refused as refused:
        attach_error(form, refused)
        view = services.cancel_view(actor, prescription_id)
        return _page(view, form, status=refused.status)
    flash("Cancel requested: the pharmacy's answer will show on the prescription.", "success")
    return redirect(url_for("prescriptions.prescriptions", patient_id=rx.patient_id), code=303)


@after_medication_stopped
def offer_to_cancel(medication_id: int) -> StopOffer | None:
    """A medication stopped on the list whose prescription the pharmacy still holds: offer
    to cancel that prescription (the cancel form; nothing is sent unless the user asks)."""
    rx = services.open_prescription_of_medication(medication_id)
    if rx is None:
        return None
    return StopOffer(
        message=(
            f"The pharmacy still holds a prescription for {rx.drug}. Cancel it too? Nothing "
            "is sent unless you ask below."
        ),
        url=url_for("prescriptions.cancel_form", prescription_id=rx.id),
        permission="rx.sign",
    )


def _page(view, form, status: int = 200):
    return render(
        "prescriptions/cancelling/cancel.html",
        status=status,
        view=view,
        patient=view.patient,
        rx=view.prescription,
        form=form,
        may_cancel=may_cancel(view.prescription),
    )
