"""Find next available (schedule.read) and the admins' scheduling set-up (schedule.manage):
appointment types, rooms, weekly templates, exceptions, closures, the calendar-feed setting.

Thin views: load, authorize (each route declares its permission), call a use case of
portal.scheduling.setup or portal.scheduling.availability, render. Set-up changes answer
with a redirect (post/redirect/get); refused input re-renders the page with what was typed
and the message beside its field, status 422.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app, flash, redirect, request, url_for
from werkzeug.routing import BuildError
from wtforms.fields.choices import SelectChoice

from portal.auth.permissions import require
from portal.clinic.services import clinic_time_zone, current_clinic
from portal.ids import parse_id
from portal.patients import services as patient_services
from portal.scheduling import availability, bp, setup
from portal.scheduling.models import (
    MODALITIES,
    VISIT_KINDS,
    AppointmentType,
    AvailabilityBlock,
    AvailabilityException,
    ClinicClosure,
    Room,
)
from portal.scheduling.services import SchedulingError
from portal.scheduling.setup_forms import (
    AppointmentTypeForm,
    BlockForm,
    ClosureForm,
    DeleteForm,
    ExceptionForm,
    FeedSettingForm,
    FindSlotsForm,
    RoomForm,
)
from portal.timeutil import utcnow
from portal.web import attach_error as _attach_error
from portal.web import current_actor as _actor
from portal.web import render

SEARCH_DAYS_BY_DEFAULT = 14
# One screenful, earliest first; "Show later slots" pages on from the last one shown.
SLOTS_SHOWN = 20


def _local_to_utc(value: datetime | None) -> datetime | None:
    """A wall-clock time typed in the clinic's zone, as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=ZoneInfo(clinic_time_zone())).astimezone(UTC)


def _choices(rows, label=lambda row: row.name, blank: str | None = None) -> list[SelectChoice]:
    options = [SelectChoice(row.id, label(row)) for row in rows]
    return [SelectChoice(None, blank), *options] if blank else options


# --- find next available --------------------------------------------------------------------


def _book_url() -> str:
    """The booking endpoint (built by the booking work); its path is agreed either way."""
    try:
        return url_for("scheduling.book")
    except BuildError:
        return "/schedule/appointments"


def _page_after() -> tuple[datetime, int] | None:
    """Where a later page starts: after the (start, provider) of the last slot shown."""
    try:
        starts_at = datetime.fromisoformat(request.args.get("after", ""))
    except ValueError:
        return None
    provider_id = parse_id(request.args.get("after_provider", ""))
    if provider_id is None or not starts_at.tzinfo:
        return None
    return starts_at.astimezone(UTC), provider_id


def _later_slots_url(slots) -> str:
    """This search again, from just after the last slot shown."""
    last = slots[-1]
    arguments = request.args.to_dict(flat=False)
    arguments["after"] = last.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    arguments["after_provider"] = str(last.provider_id)
    return url_for("scheduling.find_slots", **arguments)


def _earliest_slots_url() -> str:
    arguments = request.args.to_dict(flat=False)
    arguments.pop("after", None)
    arguments.pop("after_provider", None)
    return url_for("scheduling.find_slots", **arguments)


@bp.get("/find")
@require("schedule.read")
def find_slots():
    """The search form and, once a type is chosen, the open slots in time order, a page
    at a time (the search stops as soon as it has a page)."""
    today = availability.clinic_today()
    searching = "appointment_type_id" in request.args
    after = _page_after() if searching else None
    form = FindSlotsForm(formdata=request.args if searching else None)
    types = setup.appointment_types(active_only=True)
    providers = setup.providers()
    form.appointment_type_id.choices = _choices(types, blank="Choose a type")
    form.provider_ids.choices = _choices(providers, label=lambda p: p.full_name)
    if not searching:
        form.first_day.data = today
        form.last_day.data = today + timedelta(days=SEARCH_DAYS_BY_DEFAULT - 1)
    slots = None
    status = 200
    if searching:
        if form.validate():
            try:
                availability.check_search_range(form.first_day.data, form.last_day.data, today)
            except SchedulingError as error:
                _attach_error(form, error)
            else:
                slots = availability.find_open_slots(
                    form.appointment_type_id.data,
                    form.provider_ids.data or None,
                    form.first_day.data,
                    form.last_day.data,
                    form.time_of_day.data,
                    limit=SLOTS_SHOWN,
                    after=after,
                )
        if form.errors or form.form_errors:
            status = 422
    return render(
        "scheduling/find.html",
        fragment="scheduling/_find_results.html",
        form=form,
        slots=slots,
        types_by_id={t.id: t for t in types},
        providers_by_id={p.id: p for p in providers},
        locations_by_id={loc.id: loc for loc in setup.locations()},
        book_url=_book_url(),
        limit=SLOTS_SHOWN,
        after=after,
        later_url=_later_slots_url(slots) if slots and len(slots) >= SLOTS_SHOWN else None,
        earliest_url=_earliest_slots_url() if after else None,
        # each Book button carries its own key: a double click books once
        new_request_key=lambda: secrets.token_hex(16),
        status=status,
    )


@bp.post("/find/patients")
@require("schedule.write")
def find_patient_choices():
    """The registry search, answered as a list of patients to choose for booking."""
    outcome = patient_services.search_patients(
        _actor(), request.form.get("q", ""), current_app.config["DEFAULT_PHONE_REGION"]
    )
    return render(
        "scheduling/_find_patients.html",
        fragment="scheduling/_find_patients.html",
        outcome=outcome,
        patients=outcome.patients,
    )


# --- set-up: index and the calendar-feed setting --------------------------------------------


@bp.route("/setup", methods=["GET", "POST"])
@require("schedule.manage")
def setup_index():
    clinic = current_clinic()
    form = FeedSettingForm(
        calendar_feed_shows_names=bool(clinic and clinic.calendar_feed_shows_names)
    )
    if form.validate_on_submit():
        setup.set_feed_shows_names(_actor(), form.calendar_feed_shows_names.data)
        flash("Saved the calendar feed setting.", "success")
        return redirect(url_for("scheduling.setup_index"))
    return render("scheduling/setup/index.html", form=form)


# --- appointment types ----------------------------------------------------------------------


def _type_form(obj=None) -> AppointmentTypeForm:
    form = AppointmentTypeForm(obj=obj)
    form.provider_ids.choices = _choices(
        setup.providers(include_disabled=True), label=lambda p: p.full_name
    )
    if obj is not None and not form.is_submitted():
        form.provider_ids.data = [p.id for p in obj.providers]
    return form


def _save_type(form, appointment_type):
    return setup.save_appointment_type(
        _actor(),
        appointment_type,
        name=form.name.data,
        default_minutes=form.default_minutes.data,
        colour=form.colour.data,
        visit_kind=form.visit_kind.data,
        modality=form.modality.data,
        provider_ids=form.provider_ids.data or [],
        is_active=form.is_active.data,
    )


@bp.route("/setup/types", methods=["GET", "POST"])
@require("schedule.manage")
def setup_types():
    form = _type_form()
    if form.validate_on_submit():
        try:
            saved = _save_type(form, None)
        except SchedulingError as error:
            _attach_error(form, error)
        else:
            flash(f"Added the appointment type {saved.name}.", "success")
            return redirect(url_for("scheduling.setup_types"))
    return render(
        "scheduling/setup/types.html",
        form=form,
        types=setup.appointment_types(),
        visit_kinds=VISIT_KINDS,
        modalities=MODALITIES,
        status=422 if form.errors or form.form_errors else 200,
    )


@bp.route("/setup/types/<int:type_id>", methods=["GET", "POST"])
@require("schedule.manage")
def setup_edit_type(type_id: int):
    appointment_type = setup.get_or_404(AppointmentType, type_id)
    form = _type_form(appointment_type)
    if form.validate_on_submit():
        try:
            _save_type(form, appointment_type)
        except SchedulingError as error:
            _attach_error(form, error)
        else:
            flash(f"Saved {appointment_type.name}.", "success")
            return redirect(url_for("scheduling.setup_types"))
    return render(
        "scheduling/setup/type_edit.html",
        form=form,
        appointment_type=appointment_type,
        status=422 if form.errors or form.form_errors else 200,
    )


# --- rooms ----------------------------------------------------------------------------------


@bp.route("/setup/rooms", methods=["GET", "POST"])
@require("schedule.manage")
def setup_rooms():
    form = RoomForm()
    form.location_id.choices = _choices(
        [loc for loc in setup.locations() if loc.is_active], blank="Choose a location"
    )
    if form.validate_on_submit():
        try:
            room = setup.save_room(
                _actor(), None, location_id=form.location_id.data, name=form.name.data
            )
        except SchedulingError as error:
            _attach_error(form, error)
        else:
            flash(f"Added {room.name}.", "success")
            return redirect(url_for("scheduling.setup_rooms"))
    return render(
        "scheduling/setup/rooms.html",
        form=form,
        rooms=setup.rooms(),
        locations_by_id={loc.id: loc for loc in setup.locations()},
        status=422 if form.errors or form.form_errors else 200,
    )


@bp.route("/setup/rooms/<int:room_id>", methods=["GET", "POST"])
@require("schedule.manage")
def setup_edit_room(room_id: int):
    room = setup.get_or_404(Room, room_id)
    form = RoomForm(obj=room)
    form.location_id.choices = _choices(setup.locations())
    form.location_id.data = room.location_id  # a room does not move between locations
    if form.validate_on_submit():
        try:
            setup.save_room(
                _actor(),
                room,
                location_id=room.location_id,
                name=form.name.data,
                is_active=form.is_active.data,
            )
        except SchedulingError as error:
            _attach_error(form, error)
        else:
            flash(f"Saved {room.name}.", "success")
            return redirect(url_for("scheduling.setup_rooms"))
    return render(
        "scheduling/setup/room_edit.html",
        form=form,
        room=room,
        status=422 if form.errors or form.form_errors else 200,
    )


# --- weekly templates -----------------------------------------------------------------------


def _block_form(provider_id: int | None) -> BlockForm:
    form = BlockForm()
    form.provider_id.choices = _choices(
        setup.providers(), label=lambda p: p.full_name, blank="Choose a provider"
    )
    form.weekday.choices = [SelectChoice(n, name) for n, name in enumerate(setup.WEEKDAYS)]
    form.location_id.choices = _choices(
        [loc for loc in setup.locations() if loc.is_active], blank="Choose a location"
    )
    form.allowed_type_ids.choices = _choices(setup.appointment_types(active_only=True))
    if not form.is_submitted():
        form.provider_id.data = provider_id
    return form


def _templates_page(form, provider_id: int | None, status: int = 200):
    return render(
        "scheduling/setup/templates.html",
        form=form,
        provider_id=provider_id,
        providers=setup.providers(),
        blocks=setup.blocks_of(provider_id) if provider_id else [],
        weekdays=setup.WEEKDAYS,
        locations_by_id={loc.id: loc for loc in setup.locations()},
        delete_form=DeleteForm(),
        status=status,
    )


@bp.get("/setup/templates")
@require("schedule.manage")
def setup_templates():
    provider_id = request.args.get("provider_id", type=parse_id)
    return _templates_page(_block_form(provider_id), provider_id)


@bp.post("/setup/templates")
@require("schedule.manage")
def setup_add_block():
    form = _block_form(None)
    if form.validate_on_submit():
        try:
            block = setup.add_block(
                _actor(),
                provider_id=form.provider_id.data,
                location_id=form.location_id.data,
                weekday=form.weekday.data,
                start_time=form.start_time.data,
                end_time=form.end_time.data,
                valid_from=form.valid_from.data,
                valid_until=form.valid_until.data,
                allowed_type_ids=form.allowed_type_ids.data or [],
                today=availability.clinic_today(),
            )
        except SchedulingError as error:
            _attach_error(form, error)
        else:
            flash(
                f"Added {setup.WEEKDAYS[block.weekday]} "
                f"{block.start_time:%H:%M} to {block.end_time:%H:%M}.",
                "success",
            )
            return redirect(url_for("scheduling.setup_templates", provider_id=block.provider_id))
    return _templates_page(form, form.provider_id.data, status=422)


@bp.post("/setup/templates/blocks/<int:block_id>/delete")
@require("schedule.manage")
def setup_delete_block(block_id: int):
    block = setup.get_or_404(AvailabilityBlock, block_id)
    provider_id = block.provider_id
    if DeleteForm().validate_on_submit():
        setup.delete_block(_actor(), block)
        flash("Removed the block.", "success")
    return redirect(url_for("scheduling.setup_templates", provider_id=provider_id))


# --- exceptions -----------------------------------------------------------------------------


def _exception_form() -> ExceptionForm:
    form = ExceptionForm()
    form.provider_id.choices = _choices(
        setup.providers(), label=lambda p: p.full_name, blank="Choose a provider"
    )
    form.location_id.choices = _choices(
        [loc for loc in setup.locations() if loc.is_active], blank="—"
    )
    return form


@bp.route("/setup/exceptions", methods=["GET", "POST"])
@require("schedule.manage")
def setup_exceptions():
    form = _exception_form()
    if form.validate_on_submit():
        try:
            exception = setup.add_exception(
                _actor(),
                provider_id=form.provider_id.data,
                kind=form.kind.data,
                starts_at=_local_to_utc(form.starts_at.data),
                ends_at=_local_to_utc(form.ends_at.data),
                location_id=form.location_id.data,
                reason=form.reason.data,
                today=availability.clinic_today(),
            )
        except SchedulingError as error:
            _attach_error(form, error)
        else:
            flash("Saved the exception.", "success")
            if exception.kind == "time_off":
                booked = availability.count_active_appointments(
                    exception.provider_id, exception.starts_at, exception.ends_at
                )
                if booked:
                    # Time off frees no booked visit by itself: someone must move them.
                    flash(
                        f"{booked} booked appointment(s) fall in this time off and stay "
                        "booked: reschedule or cancel them from the calendar.",
                        "warning",
                    )
            return redirect(url_for("scheduling.setup_exceptions"))
    return render(
        "scheduling/setup/exceptions.html",
        form=form,
        exceptions=setup.upcoming_exceptions(utcnow()),
        providers_by_id={p.id: p for p in setup.providers(include_disabled=True)},
        locations_by_id={loc.id: loc for loc in setup.locations()},
        delete_form=DeleteForm(),
        status=422 if form.errors or form.form_errors else 200,
    )


@bp.post("/setup/exceptions/<int:exception_id>/delete")
@require("schedule.manage")
def setup_delete_exception(exception_id: int):
    exception = setup.get_or_404(AvailabilityException, exception_id)
    if DeleteForm().validate_on_submit():
        setup.delete_exception(_actor(), exception)
        flash("Removed the exception.", "success")
    return redirect(url_for("scheduling.setup_exceptions"))


# --- closures -------------------------------------------------------------------------------


@bp.route("/setup/closures", methods=["GET", "POST"])
@require("schedule.manage")
def setup_closures():
    form = ClosureForm()
    form.location_id.choices = _choices(
        [loc for loc in setup.locations() if loc.is_active], blank="The whole clinic"
    )
    if form.validate_on_submit():
        try:
            setup.add_closure(
                _actor(),
                first_day=form.first_day.data,
                last_day=form.last_day.data,
                location_id=form.location_id.data,
                reason=form.reason.data,
                today=availability.clinic_today(),
            )
        except SchedulingError as error:
            _attach_error(form, error)
        else:
            flash("Saved the closure.", "success")
            return redirect(url_for("scheduling.setup_closures"))
    return render(
        "scheduling/setup/closures.html",
        form=form,
        closures=setup.upcoming_closures(availability.clinic_today()),
        locations_by_id={loc.id: loc for loc in setup.locations()},
        delete_form=DeleteForm(),
        status=422 if form.errors or form.form_errors else 200,
    )


@bp.post("/setup/closures/<int:closure_id>/delete")
@require("schedule.manage")
def setup_delete_closure(closure_id: int):
    closure = setup.get_or_404(ClinicClosure, closure_id)
    if DeleteForm().validate_on_submit():
        setup.delete_closure(_actor(), closure)
        flash("Removed the closure.", "success")
    return redirect(url_for("scheduling.setup_closures"))
