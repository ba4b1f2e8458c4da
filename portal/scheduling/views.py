"""Calendar and booking pages: day view, week view, the booking, appointment, reschedule
and cancel panels.

Thin views: load -> authorize (@require) -> call a service -> render. Panels are fragments
swapped into the page's side panel by htmx; without htmx each is a page of its own. Invalid
forms answer 422, a taken time or a stale form 409, with everything typed kept.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from flask import Response, current_app, redirect, render_template, request, url_for

from portal.auth.models import User
from portal.auth.permissions import require
from portal.clinic.models import Location
from portal.extensions import db
from portal.ids import parse_id
from portal.patients import services as patient_services
from portal.scheduling import bp, services
from portal.scheduling.availability import working_intervals_between
from portal.scheduling.calendar import Column, build_grid
from portal.scheduling.forms import BookingForm, CancelForm, RescheduleForm
from portal.scheduling.models import (
    INACTIVE_STATUSES,
    STATUS_FLOW,
    STATUS_LABELS,
    AppointmentType,
    Room,
)
from portal.timeutil import utcnow
from portal.web import current_actor as _actor
from portal.web import render

CALENDAR_CHANGED = "calendar-changed"  # htmx event: the grid on the page reloads itself


def _day_argument(name: str = "day") -> date:
    """The ``day`` query argument, or today in the clinic (a bad value: today)."""
    try:
        return date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return services.clinic_today()


def _int_argument(name: str) -> int | None:
    """The id in query argument ``name``, or None (absent, or no row's id)."""
    return parse_id(request.args.get(name, ""))


# --- Calendar views ----------------------------------------------------------------------


def _working_hours(provider_ids: list[int], first_day: date, last_day: date) -> dict:
    """{(provider id, day): working intervals as UTC pairs}."""
    return {
        (provider_id, day): [(interval.starts_at, interval.ends_at) for interval in intervals]
        for provider_id, days in working_intervals_between(
            provider_ids, first_day, last_day
        ).items()
        for day, intervals in days.items()
    }


def _grid_links() -> tuple[str, bool]:
    """The appointment panel's link up to its id (ids are digits, so the link is that
    prefix plus the id: schedule.js opens a visit's panel with it); and whether slots can
    be booked from the grid."""
    visit_url = url_for("scheduling.appointment", appointment_id=0).removesuffix("0")
    return visit_url, _actor().has_permission("schedule.write")


def _book_url(provider_id: int) -> str:
    return url_for("scheduling.new_booking", provider_id=provider_id)


@bp.get("/")
@require("schedule.read")
def index():
    return redirect(url_for("scheduling.day"))


@bp.get("/day")
@require("schedule.read")
def day():
    """One column per chosen provider, a time grid in the clinic's zone, a "now" line."""
    actor = _actor()
    shown_day = _day_argument()
    providers = services.calendar_providers()
    chosen = services.chosen_provider_ids(actor, providers)
    shown = [p for p in providers if p.id in chosen]
    working = _working_hours([p.id for p in shown], shown_day, shown_day)
    entries = services.appointments_for_calendar(
        actor, [p.id for p in shown], shown_day, shown_day, view="day"
    )
    by_provider = defaultdict(list)
    for entry in entries:
        if entry.is_active:
            by_provider[entry.provider_id].append(entry)
    visit_url, can_book = _grid_links()
    columns = [
        (
            Column(
                label=provider.full_name,
                day=shown_day,
                working=working.get((provider.id, shown_day)),
                book_url=_book_url(provider.id) if can_book else None,
                slot_name=f" with {provider.full_name}",
            ),
            by_provider[provider.id],
        )
        for provider in shown
    ]
    grid = build_grid(columns, services.clinic_zone(), utcnow(), visit_url)
    cancelled = [entry for entry in entries if not entry.is_active]
    opened = _int_argument("appointment")  # after a booking without htmx: show it
    panel = None
    if opened and not request.htmx:
        appointment = services.view_appointment(actor, opened)
        panel = render_template("scheduling/_appointment_panel.html", **_panel_context(appointment))
    return render(
        "scheduling/day.html",
        fragment="scheduling/_day_grid.html",
        panel=panel,
        day=shown_day,
        grid=grid,
        providers=providers,
        chosen=chosen,
        cancelled=cancelled,
        **_calendar_context(),
    )


@bp.post("/day/providers")
@require("schedule.read")
def choose_providers():
    """Remember the day view's columns for this user, then show the day with them."""
    chosen = [
        number
        for number in map(parse_id, request.form.getlist("provider_id"))
        if number is not None
    ]
    services.save_calendar_preference(_actor(), chosen)
    return redirect(url_for("scheduling.day", day=request.form.get("day") or None), code=303)


@bp.get("/week")
@require("schedule.read")
def week():
    """Seven days of one provider's calendar (Monday to Sunday)."""
    actor = _actor()
    providers = services.calendar_providers()
    provider_id = _int_argument("provider_id")
    provider = next((p for p in providers if p.id == provider_id), None)
    if provider is None and providers:
        chosen = services.chosen_provider_ids(actor, providers)
        provider = next(p for p in providers if p.id == chosen[0])
    shown_day = _day_argument()
    monday = shown_day - timedelta(days=shown_day.weekday())
    days = [monday + timedelta(days=n) for n in range(7)]
    zone = services.clinic_zone()
    visit_url, can_book = _grid_links()
    columns = []
    if provider:
        working = _working_hours([provider.id], days[0], days[-1])
        entries = services.appointments_for_calendar(
            actor, [provider.id], days[0], days[-1], view="week"
        )
        by_day = defaultdict(list)
        for entry in entries:
            if entry.is_active:
                by_day[entry.starts_at.astimezone(zone).date()].append(entry)
        book_url = _book_url(provider.id) if can_book else None
        for one_day in days:
            label = f"{one_day:%a} {one_day.day} {one_day:%b}"
            column = Column(
                label=label,
                day=one_day,
                working=working.get((provider.id, one_day)),
                book_url=book_url,
                slot_name=f" on {label} with {provider.full_name}",
            )
            columns.append((column, by_day[one_day]))
    grid = build_grid(columns, zone, utcnow(), visit_url)
    return render(
        "scheduling/week.html",
        fragment="scheduling/_week_grid.html",
        day=shown_day,
        monday=monday,
        provider=provider,
        providers=providers,
        grid=grid,
        **_calendar_context(),
    )


def _calendar_context() -> dict:
    return {
        "today": services.clinic_today(),
        "status_labels": STATUS_LABELS,
        "timedelta": timedelta,
    }


_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


@bp.get("/type-colours.css")
@require("schedule.read")
def type_colours():
    """Each appointment type's colour as a CSS class (CSP forbids style attributes)."""
    rules = []
    for appointment_type in db.session.scalars(db.select(AppointmentType)):
        colour = appointment_type.colour if _COLOUR.match(appointment_type.colour or "") else None
        rules.append(
            f".appt-type-{appointment_type.id} {{ --type-colour: {colour or '#1f5f8b'}; }}"
        )
    db.session.rollback()
    return Response("\n".join(rules) + "\n", mimetype="text/css")


# --- Booking -----------------------------------------------------------------------------


def _booking_choices(form: BookingForm, provider_id: int | None, location_id: int | None):
    """Fill the panel's select boxes: types the provider offers, rooms at the location."""
    providers = services.calendar_providers()
    form.provider_id.choices = [(p.id, p.full_name) for p in providers]
    locations = list(db.session.scalars(db.select(Location).order_by(Location.name, Location.id)))
    locations = [loc for loc in locations if getattr(loc, "is_active", True)]
    form.location_id.choices = [(loc.id, loc.name) for loc in locations]
    location_id = location_id or (locations[0].id if locations else None)
    types = list(
        db.session.scalars(
            db.select(AppointmentType)
            .where(AppointmentType.is_active.is_(True))
            .order_by(AppointmentType.name)
        )
    )
    offered = [t for t in types if provider_id in {p.id for p in t.providers}] or types
    form.appointment_type_id.choices = [(t.id, t.name) for t in offered]
    form.type_minutes = {t.id: t.default_minutes for t in offered}
    rooms = list(
        db.session.scalars(
            db.select(Room)
            .where(Room.location_id == location_id, Room.is_active.is_(True))
            .order_by(Room.name)
        )
    )
    form.room_id.choices = [(None, "No room")] + [(r.id, r.name) for r in rooms]
    return location_id


def _booking_panel(form: BookingForm, status: int = 200, patients=None, conflicts=None):
    patient = None
    if form.patient_id.data and not patients:
        patient = db.session.get(patient_services.Patient, form.patient_id.data)
        patients = [patient] if patient else []
    return render(
        "scheduling/book.html",
        fragment="scheduling/_booking_panel.html",
        status=status,
        form=form,
        patients=patients or [],
        conflicts=conflicts or [],
    )


@bp.get("/appointments/new")
@require("schedule.write")
def new_booking():
    """The booking panel for an empty slot (provider and start from the grid)."""
    form = BookingForm(formdata=None)
    provider_id = _int_argument("provider_id")
    location_id = _int_argument("location_id")
    location_id = _booking_choices(form, provider_id, location_id)
    form.provider_id.data = provider_id
    form.location_id.data = location_id
    starts_at = _parse_utc(request.args.get("starts_at", ""))
    if starts_at is not None:
        local = starts_at.astimezone(services.clinic_zone())
        form.day.data, form.start_time.data = local.date(), local.time()
    else:
        form.day.data = _day_argument()
    form.request_key.data = uuid.uuid4().hex
    return _booking_panel(form)


def _parse_utc(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.astimezone(UTC) if value.tzinfo else None


def _form_starts_at(form: BookingForm) -> datetime | None:
    if form.day.data and form.start_time.data:
        return services.local_to_utc(form.day.data, form.start_time.data)
    return _parse_utc(form.starts_at.data or "")


FIELD_OF = {"starts_at": "start_time"}


def _attach(form, error: services.SchedulingError) -> None:
    name = FIELD_OF.get(error.field or "", error.field or "")
    target = getattr(form, name, None) or getattr(form, "start_time", None)
    target.errors = [*list(target.errors or []), error.message]


@bp.post("/appointments/patients")
@require("schedule.write")
def patient_options():
    """Patient typeahead of the booking panel: the registry search, as radio buttons."""
    outcome = patient_services.search_patients(
        _actor(), request.form.get("q", ""), current_app.config["DEFAULT_PHONE_REGION"]
    )
    return render(
        "scheduling/_patient_options.html",
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
            local = starts_at.astimezone(services.clinic_zone())
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
        return _booking_panel(form, 409, conflicts=conflicts.conflicts)
    except services.SlotTaken as taken:
        _booking_choices(form, form.provider_id.data, form.location_id.data)
        _attach(form, taken)
        return _booking_panel(form, 409)
    except services.SchedulingError as error:
        _booking_choices(form, form.provider_id.data, form.location_id.data)
        _attach(form, error)
        return _booking_panel(form, 422)
    return _appointment_answer(appointment.id, created=True)


def _appointment_answer(appointment_id: int, *, created: bool = False, extra=None):
    """The appointment's panel after a change; the grid on the page reloads itself."""
    appointment = services.view_appointment(_actor(), appointment_id)
    local_day = appointment.starts_at.astimezone(services.clinic_zone()).date()
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


def _panel_context(appointment, *, created=False, **context) -> dict:
    """What the appointment panel shows: details, status actions, reschedule, cancel."""
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
        "has_flow": "scheduling.change_status" in current_app.view_functions,
        "cancel_form": cancel_form,
        **context,
    }


def _appointment_panel(appointment, *, status: int = 200, created=False, **context):
    return render(
        "scheduling/appointment.html",
        fragment="scheduling/_appointment_panel.html",
        status=status,
        **_panel_context(appointment, created=created, **context),
    )


@bp.get("/appointments/<int:appointment_id>")
@require("schedule.read")
def appointment(appointment_id: int):
    """An appointment's panel: details, status actions, reschedule, cancel."""
    return _appointment_panel(services.view_appointment(_actor(), appointment_id))


def _reschedule_choices(form: RescheduleForm, appointment) -> None:
    providers = [
        p
        for p in services.calendar_providers()
        if p.id in {q.id for q in appointment.appointment_type.providers}
    ]
    form.provider_id.choices = [(p.id, p.full_name) for p in providers]
    rooms = db.session.scalars(
        db.select(Room)
        .where(Room.location_id == appointment.location_id, Room.is_active.is_(True))
        .order_by(Room.name)
    )
    form.room_id.choices = [(None, "No room")] + [(r.id, r.name) for r in rooms]


def _reschedule_panel(form, appointment, status: int = 200):
    return render(
        "scheduling/reschedule.html",
        fragment="scheduling/_reschedule_panel.html",
        status=status,
        form=form,
        appointment=appointment,
    )


@bp.route("/appointments/<int:appointment_id>/reschedule", methods=["GET", "POST"])
@require("schedule.write")
def reschedule(appointment_id: int):
    """Move an appointment; on a taken time or a stale form nothing changes (409)."""
    appointment = services.view_appointment(_actor(), appointment_id)
    if request.method == "GET":
        local = appointment.starts_at.astimezone(services.clinic_zone())
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
    try:
        services.reschedule_appointment(
            _actor(),
            appointment_id,
            version=_int_or_none(form.version.data),
            starts_at=services.local_to_utc(form.day.data, form.start_time.data),
            provider_id=form.provider_id.data,
            room_id=form.room_id.data,
            minutes=form.minutes.data,
        )
    except services.StaleChange as stale:
        appointment = services.get_appointment_for(_actor(), appointment_id)
        _reschedule_choices(form, appointment)
        form.version.errors = [stale.message]
        return _reschedule_panel(form, appointment, 409)
    except services.SchedulingError as error:
        appointment = services.get_appointment_for(_actor(), appointment_id)
        _reschedule_choices(form, appointment)
        _attach(form, error)
        return _reschedule_panel(
            form, appointment, 409 if isinstance(error, services.SlotTaken) else 422
        )
    return _appointment_answer(appointment_id)


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@bp.post("/appointments/<int:appointment_id>/cancel")
@require("schedule.write")
def cancel(appointment_id: int):
    """Cancel (with a reason; late when under 24 h); the freed slot's waitlist is shown."""
    appointment = services.get_appointment_for(_actor(), appointment_id)
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
    except services.StaleChange as stale:
        appointment = services.get_appointment_for(_actor(), appointment_id)
        form.version.errors = [stale.message]
        return _appointment_panel(appointment, status=409, cancel_form=form)
    except services.SchedulingError as error:
        appointment = services.get_appointment_for(_actor(), appointment_id)
        if error.field == "reason":
            _attach(form, error)
        else:
            form.version.errors = [error.message]
        return _appointment_panel(appointment, status=422, cancel_form=form)
    return _appointment_answer(
        appointment_id,
        extra={
            "cancelled_count": len(cancelled),
            # The flow helper's waitlist matches for the freed time load into the panel.
            "waitlist_url": url_for("scheduling.waitlist_matches", appointment_id=appointment_id)
            if "scheduling.waitlist_matches" in current_app.view_functions
            else None,
        },
    )
