"""The integrations console: every connector and its health; a connector's settings (a form
made from its schema), enable/disable, pause/resume; its message log with replays; the
vendor's ids of the prescribers.

Thin views: load the connector (404 when none of that name is installed), authorize
(``integrations.manage``), call one service, render. Every change is an audited use case of
the framework (``integrations.settings``, ``outbox.replay``) or of the console's services.
"""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for

from portal.admin import bp
from portal.admin.forms import ConfirmForm
from portal.admin.integrations import services as console
from portal.admin.integrations.forms import (
    clinician_ids_form,
    refusal_on_form,
    settings_form,
)
from portal.auth.permissions import require
from portal.ids import parse_id
from portal.integrations import outbox, settings
from portal.integrations.base import KINDS
from portal.transaction import Refused
from portal.web import attach_error, current_actor, render

PERMISSION = "integrations.manage"


@bp.get("/integrations")
@require(PERMISSION)
def integrations():
    console.record_console_viewed(current_actor())
    return render("admin/integrations/index.html", groups=console.overview())


def _settings_form(cls, *, from_request: bool = True):
    return settings_form(
        cls,
        console.stored_values(cls),
        console.secrets_set(cls),
        from_request=from_request,
    )


def _clinician_form(cls, *, from_request: bool = True):
    staff = console.prescribers()
    ids = console.clinician_ids(cls.name, [person.user_id for person in staff])
    return clinician_ids_form(staff, ids, from_request=from_request)


def _connector_page(cls, form, clinician_form, *, status: int = 200, page_error=None):
    return render(
        "admin/integrations/connector.html",
        connector=cls,
        kind_label=KINDS[cls.kind],
        health=console.health_of_connector(cls),
        form=form,
        secrets_set=console.secrets_set(cls),
        clinician_form=clinician_form,
        clinicians=console.clinician_rows(cls),
        reads_registration=console.can_read_registration(cls),
        page_error=page_error,
        status=status,
    )


def _status(*forms) -> int:
    return 422 if any(form.errors for form in forms) else 200


@bp.route("/integrations/<connector>", methods=["GET", "POST"])
@require(PERMISSION)
def integration_connector(connector: str):
    """GET: the connector's page; POST: save its settings and enable it (checked first)."""
    cls = console.connector_or_404(connector)
    form = _settings_form(cls)
    if request.method == "GET":
        console.record_console_viewed(current_actor(), cls)
    if form.validate_on_submit():
        try:
            settings.save_and_enable(current_actor(), cls.name, form.submitted())
        except Refused as error:
            attach_error(form, refusal_on_form(error))
        else:
            flash(f"{cls.title} is saved and enabled.", "success")
            return redirect(url_for("admin.integration_connector", connector=cls.name))
    clinicians = _clinician_form(cls, from_request=False)
    return _connector_page(cls, form, clinicians, status=_status(form))


def _after_action(cls, done: str, run):
    """Run a button's service; back to the page, or the page with the refusal (a check that
    failed on enabling goes beside its field)."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        run()
    except Refused as error:
        form = _settings_form(cls, from_request=False)
        page_error = None
        if error.field:
            attach_error(form, refusal_on_form(error))
        else:
            page_error = error.message
        clinicians = _clinician_form(cls, from_request=False)
        return _connector_page(cls, form, clinicians, status=error.status, page_error=page_error)
    flash(done, "success")
    return redirect(url_for("admin.integration_connector", connector=cls.name))


@bp.post("/integrations/<connector>/<any('enable', 'disable'):action>")
@require(PERMISSION)
def integration_set_enabled(connector: str, action: str):
    cls = console.connector_or_404(connector)
    enabled = action == "enable"
    return _after_action(
        cls,
        f"{cls.title} is {'enabled' if enabled else 'disabled; its messages wait'}.",
        lambda: settings.set_enabled(current_actor(), cls.name, enabled),
    )


@bp.post("/integrations/<connector>/<any('pause', 'resume'):action>")
@require(PERMISSION)
def integration_set_paused(connector: str, action: str):
    cls = console.connector_or_404(connector)
    paused = action == "pause"
    return _after_action(
        cls,
        f"Delivery to {cls.title} is {'paused; messages keep queuing' if paused else 'resumed'}.",
        lambda: settings.set_paused(current_actor(), cls.name, paused),
    )


@bp.post("/integrations/<connector>/clinicians")
@require(PERMISSION)
def integration_clinicians(connector: str):
    """Save the vendor's clinician ids of the prescribers."""
    cls = console.connector_or_404(connector)
    form = _clinician_form(cls)
    if form.validate_on_submit():
        try:
            changed = console.map_clinicians(current_actor(), cls.name, form.typed())
        except Refused as error:
            attach_error(form, error)
            status = error.status
        else:
            flash(f"Clinician ids saved ({changed} changed).", "success")
            return redirect(url_for("admin.integration_connector", connector=cls.name))
    else:
        status = 422 if form.errors else 400
    return _connector_page(cls, _settings_form(cls, from_request=False), form, status=status)


def _log_filters() -> tuple[str, str | None, int | None]:
    """Direction, status and cursor from the query string (anything unknown is ignored)."""
    direction = request.args.get("direction")
    if direction not in console.LOG_STATUSES:
        direction = "outbound"
    status = request.args.get("status") or None
    if status not in console.LOG_STATUSES[direction]:
        status = None
    return direction, status, parse_id(request.args.get("before"))


@bp.get("/integrations/<connector>/messages")
@require(PERMISSION)
def integration_messages(connector: str):
    """The message log, newest first, keyset-paged: no payloads, bodies or names."""
    cls = console.connector_or_404(connector)
    direction, status, before = _log_filters()
    return render(
        "admin/integrations/messages.html",
        connector=cls,
        direction=direction,
        status_filter=status,  # not ``status``: render() takes that as the HTTP status
        statuses=console.LOG_STATUSES[direction],
        before=before,
        log=console.message_log(current_actor(), cls.name, direction, status, before),
    )


@bp.post("/integrations/<connector>/messages/<int:message_id>/replay")
@require(PERMISSION)
def integration_replay(connector: str, message_id: int):
    """Send a failed or dead message again (audited by the outbox), then back to the log."""
    cls = console.connector_or_404(connector)
    console.outbound_message_or_404(cls.name, message_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        outbox.replay(current_actor(), message_id)
    except Refused as error:
        flash(error.message, "danger")
    else:
        flash(f"Message {message_id} will be sent again.", "success")
    status = request.form.get("status")
    return redirect(
        url_for(
            "admin.integration_messages",
            connector=cls.name,
            status=status if status in console.LOG_STATUSES["outbound"] else None,
        )
    )
