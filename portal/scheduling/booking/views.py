"""Booking: the booking panel (one visit or a series), the appointment's panel, rescheduling
and cancelling.

Thin views: load -> authorize (@require) -> call a service -> render. Panels are fragments
swapped into the page's side panel by htmx; without htmx each is a page of its own. Invalid
forms answer 422, a taken time or a stale form 409, with everything typed kept.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from flask import current_app, redirect, request, url_for
from werkzeug.exceptions import NotFound

from portal.auth.models import User
from portal.auth.permissions import require
from portal.clinic.clock import clinic_today, clinic_zone, local_to_utc
from portal.clinic.services import list_locations
from portal.dates import parse_date, parse_instant
from portal.extensions import db
from portal.ids import parse_id
from portal.patients.services import search_patients, view_patient
from portal.scheduling import bp
from portal.scheduling.booking import services
from portal.scheduling.booking.forms import BookingForm, CancelForm, RescheduleForm
from portal.scheduling.models import (
    INACTIVE_STATUSES,
    STATUS_FLOW,
    STATUS_LABELS,
    AppointmentType,
)
from portal.scheduling.services import (
    active_rooms,
    appointment_types,
    bookable_providers,
    get_appointment_for,
)
from portal.timeutil import utcnow
from portal.transaction import Refused
from portal.web import current_actor as _actor
from portal.web import render

CALENDAR_CHANGED = "calendar-changed"  # htmx event: the grid on the page reloads itself
# Where a refusal naming a booking field is shown on the form.
FIELD_OF = {"starts_at": "start_time"}


def _attach(form, error: Refused) -> None:
    """The refusal beside its field (a field the form lacks: beside the start time)."""
    name = FIELD_OF.get(error.field or "", error.field or "")
    target = getattr(form, name, None) or form.start_time
    target.errors = [*list(target.errors or []), error.message]


def _parse_utc(text: str) -> datetime | None:
    """An instant from a query string, bounded like every date from outside (portal/dates.py)."""
    return parse_instant(text)


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- Booking -----------------------------------------------------------------------------


def _booking_choices(
    form: BookingForm, provider_id: int | None, location_id: int | None, *, new: bool = False
):
    """Fill the panel's select boxes: types the provider offers, rooms at the location (a
    ``new`` panel also chooses the provider's most used type, not the first by name)."""
    form.provider_id.choices = [(p.id, p.full_name) for p in bookable_providers()]
    locations = [loc for loc in list_locations() if loc.is_active]
    form.location_id.choices = [(loc.id, loc.name) for loc in locations]
    location_id = location_id or (locations[0].id if locations else None)
    types = appointment_types(active_only=True)
    offered = [t for t in types if provider_id in {p.id for p in t.providers}] or types
    form.appointment_type_id.choices = [(t.id, t.name) for t in offered]
    form.type_minutes = {t.id: t.default_minutes for t in offered}
    if new:
        form.appointment_type_id.data = services.most_used_type_id(
            provider_id, [t.id for t in offered]
        )
    rooms = active_rooms(location_id)
    form.room_id.choices = [(None, "No room")] + [(r.id, r.name) for r in rooms]
    return location_id


def _booking_panel(form: BookingForm, status: int = 200, patients=None, conflicts=None, taken=None):
    # A refused form keeps what was typed in the patient search, and its matches when no
    # patient was chosen yet (the search runs again, audited like any search).
    query = request.form.get("q", "")[:100] if request.method == "POST" else ""
    if form.patient_id.data and not patients:
        # The chosen patient's name, birth date and MRN are shown: a read of the record like
        # any other (an id typed into the address is as audited as a search).
        try:
            patients = [view_patient(_actor(), form.patient_id.data, purpose="booking")]
        except NotFound:
            patients = []
    elif query.strip() and not patients:
        region = current_app.config["DEFAULT_PHONE_REGION"]
        patients = search_patients(_actor(), query, region).patients
    return render(
        "scheduling/booking/book.html",
        fragment="scheduling/booking/_booking_panel.html",
        status=status,
        form=form,
        patients=patients or [],
        conflicts=conflicts or [],
        query=query,
        taken=taken,
    )


@bp.get("/appointments/new")
@require("schedule.write")
def new_booking():
    """The booking panel for an empty slot (provider and start from the grid), or for a
    patient (``patient_id``, from the patient page's "Book")."""
    form = BookingForm(formdata=None)
    provider_id = parse_id(request.args.get("provider_id", ""))
    location_id = parse_id(request.args.get("location_id", ""))
    location_id = _booking_choices(form, provider_id, location_id, new=True)
    form.provider_id.data = provider_id
    form.location_id.data = location_id
    # "Book" on the patient page: that patient already chosen (an internal id, no PHI).
    form.patient_id.data = parse_id(request.args.get("patient_id", ""))
    starts_at = _parse_utc(request.args.get("starts_at", ""))
    if starts_at is not None:
        local = starts_at.astimezone(clinic_zone())
        form.day.data, form.start_time.data = local.date(), local.time()
    else:
        form.day.data = parse_date(request.args.get("day")) or clinic_today()
    form.request_key.data = uuid.uuid4().hex
    return _booking_panel(form)


def _form_starts_at(form: BookingForm) -> datetime | None:
    if form.day.data and form.start_time.data:
        return local_to_utc(form.day.data, form.start_time.data)
    return _parse_utc(form.starts_at.data or "")


@bp.post("/appointments/patients")
@require("schedule.write")
def patient_options():
    """Patient typeahead of the booking panel: the registry search, as radio buttons."""
    outcome = search_patients(
        _actor(), request.form.get("q", ""), current_app.config["DEFAULT_PHONE_REGION"]
    )
    return render(
        "scheduling/booking/_patient_options.html",
        outcome=outcome,
        patients=outcome.patients,
        selected=None,
    )


@bp.post("/appointments")
@require("schedule.write")
def book():
    """Book one appointment (or a series). 409 when the time was just taken."""
    form = BookingForm()
    _booking_choices(form, form.provider_id.data, form.location_id.data)
    if form.starts_at.data and not (form.day.data and form.start_time.data):
        starts_at = _parse_utc(form.starts_at.data)
        if starts_at is not None:  # from find-a-slot: show it as the clinic's day and time
            local = starts_at.astimezone(clinic_zone())
            form.day.data, form.start_time.data = local.date(), local.time()
    if not form.validate():
        return _booking_panel(form, 422)
    booking = services.Booking(
        patient_id=form.patient_id.data,
        provider_id=form.provider_id.data,
        location_id=form.location_id.data,
        appointment_type_id=form.appointment_type_id.data,
        starts_at=_form_starts_at(form),
        minutes=form.minutes.data,
        room_id=form.room_id.data,
        reason=form.reason.data,
        notes=form.notes.data,
        overbook=bool(form.overbook.data),
        request_key=form.request_key.data or None,
        waitlist_entry_id=form.waitlist_entry_id.data,
        outside_hours_ok=bool(form.outside_hours.data),
    )
    try:
        if form.repeat.data:
            appointments = services.book_series(
                _actor(),
                booking,
                interval_weeks=form.interval_weeks.data or 0,
                occurrences=form.occurrences.data,
                until=form.until.data,
            )
            appointment = appointments[0]
        else:
            appointment = services.book_appointment(_actor(), booking)
    except services.SeriesConflicts as conflicts:
        _booking_choices(form, form.provider_id.data, form.location_id.data)
        return _booking_panel(form, conflicts.status, conflicts=conflicts.conflicts)
    except services.OutsideWorkingHours as error:
        # A question, not a failure: the panel asks for the confirmation (200).
        _booking_choices(form, form.provider_id.data, form.location_id.data)
        _attach(form, error)
        return _booking_panel(form)
    except services.TimeTaken as error:
        _booking_choices(form, form.provider_id.data, form.location_id.data)
        _attach(form, error)
        taken = _taken_details(
            booking.provider_id, booking.appointment_type_id, booking.starts_at, booking.minutes
        )
        return _booking_panel(form, error.status, taken=taken)
    except Refused as error:
        _booking_choices(form, form.provider_id.data, form.location_id.data)
        _attach(form, error)
        return _booking_panel(form, error.status)
    return _appointment_answer(appointment.id, created=True)


def _taken_details(
    provider_id: int,
    type_id: int,
    starts_at: datetime,
    minutes: int | None,
    exclude_id: int | None = None,
) -> dict:
    """Who holds the time that was just taken, and the provider's next free time for the
    type (from the asked-for time on), for the panel to offer."""
    if minutes is None:
        appointment_type = db.session.get(AppointmentType, type_id)
        minutes = appointment_type.default_minutes if appointment_type else 5
    ends_at = starts_at + timedelta(minutes=minutes)
    return {
        "holder": services.slot_holder(_actor(), provider_id, starts_at, ends_at, exclude_id),
        "next_free": services.next_free_start(provider_id, type_id, starts_at),
    }


def _appointment_answer(appointment_id: int, *, created: bool = False, extra=None):
    """The appointment's panel after a change; the grid on the page reloads itself."""
    appointment = services.view_appointment(_actor(), appointment_id)
    local_day = appointment.starts_at.astimezone(clinic_zone()).date()
    if not request.htmx:
        return redirect(
            url_for("scheduling.day", day=local_day.isoformat(), appointment=appointment.id),
            code=303,
        )
    response = _appointment_panel(appointment, created=created, **(extra or {}))
    response.headers["HX-Trigger"] = CALENDAR_CHANGED
    return response


# --- One appointment ---------------------------------------------------------------------


def _next_statuses(appointment) -> list[str]:
    """Buttons the panel offers; the flow's service decides what is really allowed."""
    if appointment.status == "scheduled":
        following = ["confirmed", "arrived"]
    elif appointment.status in INACTIVE_STATUSES or appointment.status == "completed":
        return []
    else:
        following = [STATUS_FLOW[STATUS_FLOW.index(appointment.status) + 1]]
    if appointment.status in ("scheduled", "confirmed") and appointment.starts_at <= utcnow():
        following.append("no_show")
    return following


def appointment_panel_context(appointment, *, created=False, **context) -> dict:
    """What the appointment panel (``scheduling/booking/_appointment_panel.html``) shows:
    details, status actions, reschedule, cancel. The day view renders it too."""
    provider = db.session.get(User, appointment.provider_id)
    cancelled_by = (
        db.session.get(User, appointment.cancelled_by_id) if appointment.cancelled_by_id else None
    )
    cancel_form = context.pop("cancel_form", None) or CancelForm(
        formdata=None, version=appointment.version
    )
    return {
        "appointment": appointment,
        "provider": provider,
        "cancelled_by": cancelled_by,
        "created": created,
        "status_labels": STATUS_LABELS,
        "next_statuses": _next_statuses(appointment),
        "cancel_form": cancel_form,
        **context,
    }


def _appointment_panel(appointment, *, status: int = 200, created=False, **context):
    return render(
        "scheduling/booking/appointment.html",
        fragment="scheduling/booking/_appointment_panel.html",
        status=status,
        **appointment_panel_context(appointment, created=created, **context),
    )


@bp.get("/appointments/<int:appointment_id>")
@require("schedule.read")
def appointment(appointment_id: int):
    """An appointment's panel: details, status actions, reschedule, cancel."""
    return _appointment_panel(services.view_appointment(_actor(), appointment_id))


def _reschedule_choices(form: RescheduleForm, appointment) -> None:
    offering = {q.id for q in appointment.appointment_type.providers}
    form.provider_id.choices = [
        (p.id, p.full_name) for p in bookable_providers() if p.id in offering
    ]
    rooms = active_rooms(appointment.location_id)
    form.room_id.choices = [(None, "No room")] + [(r.id, r.name) for r in rooms]


def _reschedule_panel(form, appointment, status: int = 200, taken=None):
    return render(
        "scheduling/booking/reschedule.html",
        fragment="scheduling/booking/_reschedule_panel.html",
        status=status,
        form=form,
        appointment=appointment,
        taken=taken,
    )


@bp.route("/appointments/<int:appointment_id>/reschedule", methods=["GET", "POST"])
@require("schedule.write")
def reschedule(appointment_id: int):
    """Move an appointment; on a taken time or a stale form nothing changes (409)."""
    appointment = services.view_appointment(_actor(), appointment_id)
    if request.method == "GET":
        local = appointment.starts_at.astimezone(clinic_zone())
        form = RescheduleForm(
            formdata=None,
            version=appointment.version,
            provider_id=appointment.provider_id,
            day=local.date(),
            start_time=local.time(),
            minutes=int((appointment.ends_at - appointment.starts_at).total_seconds() // 60),
            room_id=appointment.room_id,
        )
        _reschedule_choices(form, appointment)
        return _reschedule_panel(form, appointment)
    form = RescheduleForm()
    _reschedule_choices(form, appointment)
    if not form.validate():
        return _reschedule_panel(form, appointment, 422)
    starts_at = local_to_utc(form.day.data, form.start_time.data)
    try:
        services.reschedule_appointment(
            _actor(),
            appointment_id,
            version=_int_or_none(form.version.data),
            starts_at=starts_at,
            provider_id=form.provider_id.data,
            room_id=form.room_id.data,
            minutes=form.minutes.data,
        )
    except Refused as error:
        appointment = get_appointment_for(_actor(), appointment_id)
        _reschedule_choices(form, appointment)
        if error.field is None:  # a stale form: above the form, not beside a field
            form.version.errors = [error.message]
        else:
            _attach(form, error)
        taken = None
        if isinstance(error, services.TimeTaken):
            minutes = form.minutes.data or int(
                (appointment.ends_at - appointment.starts_at).total_seconds() // 60
            )
            taken = _taken_details(
                form.provider_id.data or appointment.provider_id,
                appointment.appointment_type_id,
                starts_at,
                minutes,
                exclude_id=appointment_id,
            )
        return _reschedule_panel(form, appointment, error.status, taken=taken)
    return _appointment_answer(appointment_id)


@bp.post("/appointments/<int:appointment_id>/cancel")
@require("schedule.write")
def cancel(appointment_id: int):
    """Cancel (with a reason; late when under 24 h); the freed slot's waitlist is shown."""
    appointment = get_appointment_for(_actor(), appointment_id)
    form = CancelForm()
    if not form.validate():
        return _appointment_panel(appointment, status=422, cancel_form=form)
    try:
        cancelled = services.cancel_appointment(
            _actor(),
            appointment_id,
            version=_int_or_none(form.version.data),
            reason=form.reason.data,
            rest_of_series=bool(form.rest_of_series.data),
        )
    except Refused as error:
        appointment = get_appointment_for(_actor(), appointment_id)
        if error.field == "reason":
            _attach(form, error)
        else:
            form.version.errors = [error.message]
        return _appointment_panel(appointment, status=error.status, cancel_form=form)
    return _appointment_answer(
        appointment_id,
        extra={
            "cancelled_count": len(cancelled),
            # The waitlist's matches for the freed time load into the panel.
            "waitlist_url": url_for("scheduling.waitlist_matches", appointment_id=appointment_id),
        },
    )
