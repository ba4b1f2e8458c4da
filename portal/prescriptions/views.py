"""E-prescribing pages: the vendor's screen embedded under the patient's banner, the
prescriber's queues, the patient's prescriptions with their vendor statuses, and the count
of waiting items in the top bar (loaded after the page, so a slow vendor slows nothing)."""

from __future__ import annotations

from flask import current_app, flash, redirect, request, url_for

from portal.auth.permissions import permissions_of_current_user, require
from portal.prescriptions import bp, services
from portal.prescriptions.forms import EpcsCredentialForm
from portal.prescriptions.inbox import services as rx_inbox
from portal.prescriptions.signing import services as signing
from portal.transaction import Refused
from portal.web import allow_frame, attach_error, current_actor, render


@bp.get("/patients/<int:patient_id>/eprescribe")
@require("prescriptions.write")
def eprescribe(patient_id: int):
    """The vendor's prescribing screen for this patient, or what to fix first."""
    try:
        launch = services.open_eprescribing(current_actor(), patient_id)
    except Refused as refused:
        flash(str(refused), "danger")
        return redirect(url_for("charting.chart_summary", patient_id=patient_id), code=303)
    if launch.url:
        allow_frame(launch.origin)
    return render("prescriptions/eprescribe.html", launch=launch, patient=launch.patient)


@bp.get("/eprescribe/queues")
@require("prescriptions.write")
def queues():
    """The prescriber's vendor queues: refill and change requests, transmission errors."""
    try:
        launch = services.open_notifications(current_actor())
    except Refused as refused:
        flash(str(refused), "danger")
        return redirect(url_for("main.home"), code=303)
    allow_frame(launch.origin)
    return render("prescriptions/queues.html", launch=launch)


@bp.get("/eprescribe/count")
@require("prescriptions.write")
def queue_count():
    """The top bar's count of waiting items (an htmx fragment; empty when unavailable)."""
    actor = current_actor()
    return render(
        "prescriptions/_queue_count.html",
        "prescriptions/_queue_count.html",
        total=services.notification_total(actor),
        transmission_errors=signing.transmission_error_count(actor),
        inbox_total=rx_inbox.inbox_count(actor) if actor_may("rx.sign") else None,
    )


def actor_may(permission: str) -> bool:
    return permission in permissions_of_current_user()


@bp.get("/patients/<int:patient_id>/prescriptions")
@require("chart.read")
def prescriptions(patient_id: int):
    """The patient's prescriptions: the viewer's drafts, the active ones, the past ones, each
    with its state and what may be done (print, its PDF, cancel)."""
    all_past = request.args.get("past") == "all"
    page = services.prescriptions_page(current_actor(), patient_id, all_past=all_past)
    return render(
        "prescriptions/list.html",
        patient=page.patient,
        listing=page,
        # The composing screens are a part of their own: their links show once installed.
        has_endpoint=lambda name: name in current_app.view_functions,
    )


@bp.get("/patients/<int:patient_id>/eprescribing-messages")
@require("prescriptions.write")
def messages(patient_id: int):
    """What was sent to and received from the vendor about this patient (no content)."""
    patient, rows = services.messages_of(current_actor(), patient_id)
    return render("prescriptions/messages.html", patient=patient, messages=rows)


MESSAGE = "/patients/<int:patient_id>/eprescribing-messages/<any(sent,received):direction>"


@bp.get(f"{MESSAGE}/<int:message_id>")
@require("prescriptions.write")
def message(patient_id: int, direction: str, message_id: int):
    """One message's content, for a prescriber looking into what went wrong (audited)."""
    patient, row, content = services.message_content(
        current_actor(), patient_id, direction, message_id
    )
    return render(
        "prescriptions/message.html",
        patient=patient,
        message=row,
        direction=direction,
        content=content,
    )


@bp.route("/prescriptions/epcs-credential", methods=["GET", "POST"])
@require("rx.sign")
def epcs_credential():
    """The prescriber's own EPCS credential at the e-prescribing service (the PIN and token
    the worker sends controlled substances with), set after a fresh code."""
    actor = current_actor()
    form = EpcsCredentialForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                services.set_epcs_credential(
                    actor, form.pin.data, form.otp_secret.data, form.totp_code.data
                )
            except Refused as refused:
                attach_error(form, refused)
                status = 422
            else:
                flash("Your EPCS credential is saved.", "success")
                return redirect(url_for("prescriptions.epcs_credential"), code=303)
        else:
            status = 422
    state = services.epcs_credential_state(actor)
    return render("prescriptions/epcs_credential.html", form=form, state=state), status
