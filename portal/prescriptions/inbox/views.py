"""The Rx inbox's pages: the list, one item (with the patient's banner and the prescription's
history), approving a request (then the signing dialog), denying it, acknowledging a
pharmacy's answer to a cancel. Prescribers only (``rx.sign``)."""

from __future__ import annotations

from flask import redirect, url_for

from portal.auth.permissions import require
from portal.prescriptions import bp
from portal.prescriptions.inbox import services
from portal.prescriptions.inbox.answers import DENIAL_REASONS
from portal.prescriptions.inbox.forms import ApproveForm, DenyForm
from portal.transaction import Refused
from portal.web import attach_error, current_actor, render


@bp.get("/prescriptions/inbox")
@require("rx.sign")
def rx_inbox():
    """Renewal and change requests, failed transmissions, cancel responses."""
    box = services.inbox_of(current_actor())
    return render("prescriptions/inbox/inbox.html", box=box)


def _request_page(request_id: int, approve=None, deny=None, error=None, status=200):
    item = services.request_item(current_actor(), request_id)
    return render(
        "prescriptions/inbox/item.html" if item.patient else "prescriptions/inbox/unmatched.html",
        status=status,
        item=item,
        patient=item.patient,
        approve=approve or ApproveForm(),
        deny=deny or DenyForm(),
        error=error,
        reasons=DENIAL_REASONS,
    )


@bp.get("/prescriptions/inbox/requests/<int:request_id>")
@require("rx.sign")
def rx_request(request_id: int):
    """A pharmacy's renewal or change request, with what may be answered."""
    return _request_page(request_id)


@bp.post("/prescriptions/inbox/requests/<int:request_id>/approve")
@require("rx.sign")
def approve_rx_request(request_id: int):
    """Start the approval: a prescription made from the original with the refills granted,
    to sign in the signing dialog (the same checks and factors as any prescription)."""
    form = ApproveForm()
    if not form.validate_on_submit():
        return _request_page(request_id, approve=form, status=422)
    try:
        draft = services.start_approval(
            current_actor(), request_id, form.refills.data, form.comment.data or ""
        )
    except Refused as refused:
        attach_error(form, refused)
        return _request_page(request_id, approve=form, error=refused, status=refused.status)
    if not services.ready_to_sign(draft):
        # Made from a prescription written in the vendor's screen, which lacks what a
        # prescription composed here carries (e.g. the dispense unit): finish it first.
        return redirect(url_for("prescriptions.compose", draft_id=draft.id), code=303)
    return redirect(url_for("prescriptions.sign_dialog", prescription_id=draft.id), code=303)


@bp.post("/prescriptions/inbox/requests/<int:request_id>/deny")
@require("rx.sign")
def deny_rx_request(request_id: int):
    """Deny the request with a reason and a note (a second click acts once)."""
    form = DenyForm()
    if not form.validate_on_submit():
        return _request_page(request_id, deny=form, status=422)
    try:
        services.deny(current_actor(), request_id, form.reason.data, form.note.data or "")
    except Refused as refused:
        attach_error(form, refused)
        return _request_page(request_id, deny=form, error=refused, status=refused.status)
    return redirect(url_for("prescriptions.rx_inbox"), code=303)


@bp.get("/prescriptions/inbox/prescriptions/<int:prescription_id>")
@require("rx.sign")
def rx_inbox_prescription(prescription_id: int):
    """A failed transmission or a pharmacy's answer to a cancel, with its history."""
    item = services.prescription_item(current_actor(), prescription_id)
    return render("prescriptions/inbox/item.html", item=item, patient=item.patient)


@bp.post("/prescriptions/inbox/prescriptions/<int:prescription_id>/acknowledge")
@require("rx.sign")
def acknowledge_rx(prescription_id: int):
    """The prescriber has seen the pharmacy's answer to a cancel."""
    services.acknowledge(current_actor(), prescription_id)
    return redirect(url_for("prescriptions.rx_inbox"), code=303)
