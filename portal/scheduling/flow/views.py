"""The visit's day: the appointment's status panel, check-in, status changes and their undo,
and the flow board.

Thin views: load -> authorize (@require) -> call a service of portal.scheduling.flow ->
render the page, or its fragment for htmx.
"""

from __future__ import annotations

from flask import current_app, flash, redirect, request, url_for
from werkzeug.exceptions import NotFound

from portal.auth.models import User
from portal.auth.permissions import require
from portal.auth.sessions import BACKGROUND_HEADER
from portal.clinic.services import list_locations
from portal.extensions import db
from portal.ids import parse_id
from portal.scheduling import bp
from portal.scheduling.flow import board as flow_boards
from portal.scheduling.flow import services as flow
from portal.scheduling.flow.forms import StatusChangeForm, UndoStatusForm
from portal.scheduling.models import STATUS_LABELS
from portal.scheduling.services import active_rooms, stale_change
from portal.transaction import Conflict, Refused
from portal.web import current_actor as _actor
from portal.web import is_htmx_request, render

# The flow board's polling interval; a config value so a browser test need not wait 15 s.
DEFAULT_POLL_SECONDS = 15
STATUS_PAGE = ("scheduling/flow/appointment.html", "scheduling/flow/_status.html")
CHECK_IN_PAGE = ("scheduling/flow/check_in.html", "scheduling/flow/_check_in.html")


def _provider_name(user_id: int) -> str:
    user = db.session.get(User, user_id)
    return user.full_name if user else ""


def flow_panel_context(
    appointment,
    form: StatusChangeForm | None = None,
    message: str | None = None,
    *,
    message_is_error: bool = True,
):
    """What ``scheduling/flow/_status.html`` and ``_check_in.html`` need."""
    return {
        "appointment": appointment,
        "form": form or StatusChangeForm(formdata=None),
        "message": message,
        "message_is_error": message_is_error,
        "next_statuses": flow.allowed_next(appointment),
        "rooms": active_rooms(appointment.location_id),
        "provider_name": _provider_name(appointment.provider_id),
        "status_labels": STATUS_LABELS,
        "action_labels": flow.ACTION_LABELS,
        "reached_at": lambda status: flow.status_reached_at(appointment, status),
        "undo_to": flow.status_before(appointment),
    }


def _status_panel(appointment, *, status: int = 200, **context):
    page, fragment = STATUS_PAGE
    return render(
        page, fragment=fragment, status=status, **flow_panel_context(appointment, **context)
    )


def _changed(appointment_id: int, appointment, message: str):
    """The answer to a change made: the panel with its message (and an event the flow board
    listens for), or the appointment's page without htmx."""
    if not is_htmx_request():
        flash(message, "success")
        return redirect(
            url_for("scheduling.appointment_status", appointment_id=appointment_id), 303
        )
    # The change's own audit event covers showing its result: no second "view" event.
    response = _status_panel(appointment, message=message, message_is_error=False)
    response.headers["HX-Trigger"] = "flow-changed"
    return response


@bp.get("/appointments/<int:appointment_id>/status")
@require("schedule.read")
def appointment_status(appointment_id: int):
    """An appointment's status panel: where the visit is, when each step happened, what next."""
    return _status_panel(flow.view_appointment_flow(_actor(), appointment_id))


@bp.get("/appointments/<int:appointment_id>/check-in")
@require("schedule.write")
def check_in(appointment_id: int):
    """Check-in: the patient's demographics and insurance to confirm, then "Check in"."""
    appointment = flow.view_for_check_in(_actor(), appointment_id)
    page, fragment = CHECK_IN_PAGE
    return render(page, fragment=fragment, **flow_panel_context(appointment))


@bp.post("/appointments/<int:appointment_id>/status")
@require("schedule.write")
def change_status(appointment_id: int):
    """Move the appointment to the posted ``status`` (with ``version``; ``room_id`` to room).

    htmx gets the updated status panel (and an ``HX-Trigger: flow-changed`` event for the
    flow board); refused changes answer 422 (409 for a stale form) with the message beside
    the field, and the check-in panel again when it was a check-in.
    """
    form = StatusChangeForm()
    wanted = (form.status.data or "").strip()
    page, fragment = CHECK_IN_PAGE if wanted == "arrived" else STATUS_PAGE
    if not form.validate():
        appointment = flow.view_appointment_flow(_actor(), appointment_id, purpose="refused")
        return render(page, fragment=fragment, status=422, **flow_panel_context(appointment, form))
    try:
        appointment = flow.change_status(
            _actor(),
            appointment_id,
            wanted,
            form.version.data,
            room_id=form.room_choice(),
            demographics_confirmed=bool(form.demographics_confirmed.data),
            insurance_confirmed=bool(form.insurance_confirmed.data),
        )
    except Conflict as error:
        appointment = flow.view_appointment_flow(_actor(), appointment_id, purpose="stale")
        # The panel is redrawn from the current state: the old form's choices are void.
        return _status_panel(appointment, status=error.status, message=error.message)
    except Refused as error:
        field = getattr(form, error.field or "status", None) or form.status
        field.errors = [*field.errors, error.message]
        appointment = flow.view_appointment_flow(_actor(), appointment_id, purpose="refused")
        return render(
            page,
            fragment=fragment,
            status=error.status,
            **flow_panel_context(appointment, form, message=error.message),
        )
    return _changed(
        appointment_id, appointment, f"Marked {STATUS_LABELS[appointment.status].lower()}."
    )


@bp.post("/appointments/<int:appointment_id>/status/undo")
@require("schedule.write")
def undo_status(appointment_id: int):
    """Take back the last status step (a mistaken click), answering like a status change."""
    form = UndoStatusForm()
    try:
        if not form.validate():
            raise stale_change()
        appointment = flow.undo_status(_actor(), appointment_id, form.version.data)
    except Refused as error:  # a stale form too: the panel is redrawn as it now is
        appointment = flow.view_appointment_flow(_actor(), appointment_id, purpose="refused")
        return _status_panel(appointment, status=error.status, message=error.message)
    return _changed(
        appointment_id,
        appointment,
        f"Undone: back to {STATUS_LABELS[appointment.status].lower()}.",
    )


@bp.get("/flow-board")
@require("schedule.read")
def flow_board():
    """Today's appointments at one location by status; the board part refreshes itself."""
    locations = [loc for loc in list_locations() if loc.is_active]
    if not locations:
        raise NotFound()
    location_id = request.args.get("location_id", type=parse_id) or locations[0].id
    if location_id not in {loc.id for loc in locations}:
        raise NotFound()
    board = flow_boards.flow_board(
        _actor(), location_id, background=request.headers.get(BACKGROUND_HEADER) == "1"
    )
    return render(
        "scheduling/flow/board.html",
        fragment="scheduling/flow/_board.html",
        board=board,
        locations=locations,
        location_id=location_id,
        poll_seconds=current_app.config.get("FLOW_BOARD_POLL_SECONDS", DEFAULT_POLL_SECONDS),
        status_labels=STATUS_LABELS,
    )
