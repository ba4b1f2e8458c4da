"""The visit's day: status changes and check-in, the flow board, the waitlist, calendar feeds.

Thin views: load -> authorize (@require) -> call a service in portal.scheduling.flow ->
render the page, or its fragment for htmx.
"""

from __future__ import annotations

from flask import Response, current_app, flash, redirect, request, url_for
from werkzeug.exceptions import NotFound

from portal.auth.permissions import public, require
from portal.auth.sessions import BACKGROUND_HEADER
from portal.clinic.services import list_locations
from portal.extensions import db
from portal.ids import parse_id
from portal.scheduling import bp, flow
from portal.scheduling.flow_forms import (
    CalendarFeedForm,
    StatusChangeForm,
    UndoStatusForm,
    WaitlistForm,
)
from portal.scheduling.models import STATUS_LABELS, AppointmentType
from portal.scheduling.services import SchedulingError, StaleChange
from portal.web import current_actor as _actor
from portal.web import is_htmx_request, render

# The flow board's polling interval; a config value so a browser test need not wait 15 s.
DEFAULT_POLL_SECONDS = 15


def _provider_name(user_id: int) -> str:
    from portal.auth.models import User

    user = db.session.get(User, user_id)
    return user.full_name if user else ""


def flow_panel_context(
    appointment,
    form: StatusChangeForm | None = None,
    message: str | None = None,
    *,
    message_is_error: bool = True,
):
    """What ``scheduling/flow/_status.html`` and ``_check_in.html`` need.

    Other views that include the status panel (the day view's appointment panel) render it
    with ``**flow_panel_context(appointment)``.
    """
    return {
        "appointment": appointment,
        "form": form or StatusChangeForm(formdata=None),
        "message": message,
        "message_is_error": message_is_error,
        "next_statuses": flow.allowed_next(appointment),
        "rooms": flow.rooms_for(appointment),
        "provider_name": _provider_name(appointment.provider_id),
        "status_labels": STATUS_LABELS,
        "action_labels": flow.ACTION_LABELS,
        "reached_at": lambda status: flow.status_reached_at(appointment, status),
        "undo_to": flow.status_before(appointment),
    }


@bp.get("/appointments/<int:appointment_id>/status")
@require("schedule.read")
def appointment_status(appointment_id: int):
    """An appointment's status panel: where the visit is, when each step happened, what next."""
    appointment = flow.view_appointment_flow(_actor(), appointment_id)
    return render(
        "scheduling/flow/appointment.html",
        fragment="scheduling/flow/_status.html",
        **flow_panel_context(appointment),
    )


@bp.get("/appointments/<int:appointment_id>/check-in")
@require("schedule.write")
def check_in(appointment_id: int):
    """Check-in: the patient's demographics and insurance to confirm, then "Check in"."""
    appointment = flow.view_for_check_in(_actor(), appointment_id)
    return render(
        "scheduling/flow/check_in.html",
        fragment="scheduling/flow/_check_in.html",
        **flow_panel_context(appointment),
    )


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
    checking_in = wanted == "arrived"
    page, fragment = (
        ("scheduling/flow/check_in.html", "scheduling/flow/_check_in.html")
        if checking_in
        else ("scheduling/flow/appointment.html", "scheduling/flow/_status.html")
    )
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
    except StaleChange as error:
        appointment = flow.view_appointment_flow(_actor(), appointment_id, purpose="stale")
        # The panel is redrawn from the current state: the old form's choices are void.
        return render(
            "scheduling/flow/appointment.html",
            fragment="scheduling/flow/_status.html",
            status=409,
            **flow_panel_context(appointment, message=error.message),
        )
    except SchedulingError as error:
        field = getattr(form, error.field or "status", None) or form.status
        field.errors = [*field.errors, error.message]
        appointment = flow.view_appointment_flow(_actor(), appointment_id, purpose="refused")
        return render(
            page,
            fragment=fragment,
            status=422,
            **flow_panel_context(appointment, form, message=error.message),
        )
    if not is_htmx_request():
        flash(f"Marked {STATUS_LABELS[appointment.status].lower()}.", "success")
        return redirect(
            url_for("scheduling.appointment_status", appointment_id=appointment_id), 303
        )
    # The change's own audit event covers showing its result: no second "view" event.
    response = render(
        "scheduling/flow/appointment.html",
        fragment="scheduling/flow/_status.html",
        **flow_panel_context(
            appointment,
            message=f"Marked {STATUS_LABELS[appointment.status].lower()}.",
            message_is_error=False,
        ),
    )
    response.headers["HX-Trigger"] = "flow-changed"
    return response


@bp.post("/appointments/<int:appointment_id>/status/undo")
@require("schedule.write")
def undo_status(appointment_id: int):
    """Take back the last status step (a mistaken click), answering like a status change."""
    form = UndoStatusForm()
    try:
        if not form.validate():
            raise StaleChange()
        appointment = flow.undo_status(_actor(), appointment_id, form.version.data)
    except SchedulingError as error:  # StaleChange too: the panel is redrawn as it now is
        appointment = flow.view_appointment_flow(_actor(), appointment_id, purpose="refused")
        return render(
            "scheduling/flow/appointment.html",
            fragment="scheduling/flow/_status.html",
            status=409 if isinstance(error, StaleChange) else 422,
            **flow_panel_context(appointment, message=error.message),
        )
    message = f"Undone: back to {STATUS_LABELS[appointment.status].lower()}."
    if not is_htmx_request():
        flash(message, "success")
        return redirect(
            url_for("scheduling.appointment_status", appointment_id=appointment_id), 303
        )
    response = render(
        "scheduling/flow/appointment.html",
        fragment="scheduling/flow/_status.html",
        **flow_panel_context(appointment, message=message, message_is_error=False),
    )
    response.headers["HX-Trigger"] = "flow-changed"
    return response


# --- flow board ------------------------------------------------------------------------------


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
    board = flow.flow_board(
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


# --- waitlist --------------------------------------------------------------------------------


def _waitlist_form(formdata=True) -> WaitlistForm:
    form = WaitlistForm() if formdata else WaitlistForm(formdata=None)
    types = db.session.scalars(
        db.select(AppointmentType)
        .where(AppointmentType.is_active.is_(True))
        .order_by(AppointmentType.name)
    ).all()
    form.appointment_type_id.choices = [(0, "Choose…")] + [(t.id, t.name) for t in types]
    form.provider_ids.choices = [(p.id, p.full_name) for p in flow.providers()]
    return form


def _waitlist_page(form: WaitlistForm, status: int = 200):
    chosen = None
    if form.patient_id.data and not form.patient_id.errors:
        # The patient already chosen stays chosen when the form comes back with an error.
        chosen = flow.patient_or_none(form.patient_id.data)
    rows = flow.list_waitlist(_actor())
    return render(
        "scheduling/flow/waitlist.html",
        fragment="scheduling/flow/_waitlist.html",
        form=form,
        rows=rows,
        chosen=chosen,
        status=status,
    )


@bp.post("/waitlist/patients")
@require("schedule.write")
def waitlist_patient_options():
    """The registry search, answered as choices (radio buttons) for the waitlist form."""
    from portal.patients.services import search_patients

    form = WaitlistForm()
    outcome = search_patients(
        _actor(), form.patient_query.data or "", current_app.config["DEFAULT_PHONE_REGION"]
    )
    return render(
        "scheduling/flow/_patient_options.html",
        outcome=outcome,
        patients=outcome.patients,
        chosen_id=None,
    )


@bp.get("/waitlist")
@require("schedule.read")
def waitlist():
    """Who is waiting for an earlier slot, and the form to add someone."""
    return _waitlist_page(_waitlist_form(formdata=False))


@bp.post("/waitlist")
@require("schedule.write")
def add_waitlist_entry():
    """Add a patient to the waitlist; bad input re-renders the form with the message."""
    form = _waitlist_form()
    if not form.validate():
        return _waitlist_page(form, status=422)
    try:
        flow.add_waitlist_entry(
            _actor(),
            patient_id=form.patient_id.data,
            appointment_type_id=form.appointment_type_id.data,
            provider_ids=form.provider_ids.data or [],
            earliest_day=form.earliest_day.data,
            latest_day=form.latest_day.data,
            notes=form.notes.data,
        )
    except SchedulingError as error:
        getattr(form, error.field or "patient_id").errors.append(error.message)
        return _waitlist_page(form, status=422)
    if not is_htmx_request():
        flash("Added to the waitlist.", "success")
        return redirect(url_for("scheduling.waitlist"), 303)
    return _waitlist_page(_waitlist_form(formdata=False))


@bp.post("/waitlist/<int:entry_id>/remove")
@require("schedule.write")
def remove_waitlist_entry(entry_id: int):
    """Take an entry off the waitlist."""
    flow.remove_waitlist_entry(_actor(), entry_id)
    if not is_htmx_request():
        flash("Removed from the waitlist.", "success")
        return redirect(url_for("scheduling.waitlist"), 303)
    return _waitlist_page(_waitlist_form(formdata=False))


def booking_url() -> str:
    """The booking endpoint's URL (the booking helper's ``scheduling.book``)."""
    if "scheduling.book" in current_app.view_functions:
        return url_for("scheduling.book")
    # Not merged yet: the documented path of POST /schedule/appointments.
    return f"{request.script_root}{bp.url_prefix}/appointments"


@bp.get("/appointments/<int:appointment_id>/waitlist-matches")
@require("schedule.read")
def waitlist_matches(appointment_id: int):
    """Waitlist entries that could take a freed (cancelled) appointment's time."""
    appointment, rows = flow.show_waitlist_matches(_actor(), appointment_id)
    return render(
        "scheduling/flow/waitlist_matches.html",
        fragment="scheduling/flow/_waitlist_matches.html",
        appointment=appointment,
        matches=rows,
        book_url=booking_url(),
    )


# --- calendar feeds --------------------------------------------------------------------------


def _feed_form(formdata=True) -> CalendarFeedForm:
    form = CalendarFeedForm() if formdata else CalendarFeedForm(formdata=None)
    form.provider_id.choices = [(0, "Choose…")] + [(p.id, p.full_name) for p in flow.providers()]
    return form


def _feeds_page(form: CalendarFeedForm, *, new_url: str | None = None, status: int = 200):
    return render(
        "scheduling/flow/feeds.html",
        form=form,
        feeds=flow.list_calendar_feeds(),
        provider_names={p.id: p.full_name for p in flow.providers()},
        new_url=new_url,
        show_names=flow.feeds_show_names(),
        status=status,
    )


@bp.get("/feeds")
@require("schedule.manage")
def calendar_feeds():
    """Providers' calendar feeds: create one (its URL is shown once) or revoke one."""
    return _feeds_page(_feed_form(formdata=False))


@bp.post("/feeds")
@require("schedule.manage")
def create_calendar_feed():
    """Create a feed; the page shows its secret URL this once."""
    form = _feed_form()
    if not form.validate():
        return _feeds_page(form, status=422)
    try:
        _, token = flow.create_calendar_feed(_actor(), form.provider_id.data)
    except SchedulingError as error:
        form.provider_id.errors.append(error.message)
        return _feeds_page(form, status=422)
    url = url_for("scheduling.calendar_feed", token=token, _external=True)
    return _feeds_page(_feed_form(formdata=False), new_url=url)


@bp.post("/feeds/<int:feed_id>/revoke")
@require("schedule.manage")
def revoke_calendar_feed(feed_id: int):
    """Revoke a feed: its URL stops working at once."""
    flow.revoke_calendar_feed(_actor(), feed_id)
    flash("Feed revoked: its address no longer works.", "success")
    return redirect(url_for("scheduling.calendar_feeds"), 303)


@bp.get("/feeds/<token>.ics")
@public
def calendar_feed(token: str):
    """A provider's schedule as iCalendar, for the token's holder; 404 for unknown/revoked."""
    body = flow.calendar_feed_ics(token, request.remote_addr)
    return Response(body, mimetype="text/calendar", headers={"Content-Disposition": "inline"})


# A provider's own feed (self-service): the same feeds, limited to the signed-in provider.


def _my_feed_page(*, new_url: str | None = None, message: str | None = None, status=200):
    actor = _actor()
    return render(
        "scheduling/flow/my_feed.html",
        is_provider="prescriber" in actor.roles,
        feeds=flow.list_calendar_feeds(actor.id),
        show_names=flow.feeds_show_names(),
        new_url=new_url,
        message=message,
        status=status,
    )


@bp.get("/my-feed")
@require("schedule.read")
def my_calendar_feed():
    """The signed-in provider's calendar feeds: subscribe, or revoke a leaked address."""
    return _my_feed_page()


@bp.post("/my-feed")
@require("schedule.write")
def create_my_calendar_feed():
    """Create a feed for the signed-in provider; its address is shown this once."""
    try:
        _, token = flow.create_calendar_feed(_actor(), _actor().id)
    except SchedulingError:
        return _my_feed_page(message="Only providers have a calendar feed.", status=422)
    return _my_feed_page(new_url=url_for("scheduling.calendar_feed", token=token, _external=True))


@bp.post("/my-feed/<int:feed_id>/revoke")
@require("schedule.write")
def revoke_my_calendar_feed(feed_id: int):
    """Revoke one of the signed-in provider's own feeds."""
    flow.revoke_calendar_feed(_actor(), feed_id, own_only=True)
    flash("Feed revoked: its address no longer works.", "success")
    return redirect(url_for("scheduling.my_calendar_feed"), 303)
