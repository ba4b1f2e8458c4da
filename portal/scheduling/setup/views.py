"""The admins' scheduling set-up (schedule.manage): appointment types, rooms, weekly
templates, exceptions, closures, the calendar-feed setting.

Thin views: load, authorize (each route declares its permission), call a use case of
portal.scheduling.setup.services, render. Set-up changes answer with a redirect
(post/redirect/get); refused input re-renders the page with what was typed and the message
beside its field, status 422.
"""

from __future__ import annotations

from datetime import datetime

from flask import flash, redirect, request, url_for
from wtforms.fields.choices import SelectChoice

from portal.auth.permissions import require
from portal.clinic.clock import clinic_today, local_to_utc
from portal.clinic.services import current_clinic
from portal.ids import parse_id
from portal.scheduling import bp
from portal.scheduling.availability.services import count_active_appointments
from portal.scheduling.models import (
    MODALITIES,
    VISIT_KINDS,
    AppointmentType,
    AvailabilityBlock,
    Room,
)
from portal.scheduling.services import appointment_types, providers
from portal.scheduling.setup import services as setup
from portal.scheduling.setup.forms import (
    AppointmentTypeForm,
    BlockForm,
    ClosureForm,
    DeleteForm,
    ExceptionForm,
    FeedSettingForm,
    RoomForm,
)
from portal.timeutil import utcnow
from portal.transaction import Refused
from portal.web import attach_error as _attach_error
from portal.web import current_actor as _actor
from portal.web import render


def _local_to_utc(value: datetime | None) -> datetime | None:
    """A wall-clock time typed in the clinic's zone, as UTC."""
    if value is None:
        return None
    return local_to_utc(value.date(), value.time())


def _choices(rows, label=lambda row: row.name, blank: str | None = None) -> list[SelectChoice]:
    options = [SelectChoice(row.id, label(row)) for row in rows]
    return [SelectChoice(None, blank), *options] if blank else options


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
        providers(include_disabled=True), label=lambda p: p.full_name
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
        except Refused as error:
            _attach_error(form, error)
        else:
            flash(f"Added the appointment type {saved.name}.", "success")
            return redirect(url_for("scheduling.setup_types"))
    return render(
        "scheduling/setup/types.html",
        form=form,
        types=appointment_types(),
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
        except Refused as error:
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
        except Refused as error:
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
        except Refused as error:
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
        providers(), label=lambda p: p.full_name, blank="Choose a provider"
    )
    form.weekday.choices = [SelectChoice(n, name) for n, name in enumerate(setup.WEEKDAYS)]
    form.location_id.choices = _choices(
        [loc for loc in setup.locations() if loc.is_active], blank="Choose a location"
    )
    form.allowed_type_ids.choices = _choices(appointment_types(active_only=True))
    if not form.is_submitted():
        form.provider_id.data = provider_id
    return form


def _templates_page(form, provider_id: int | None, status: int = 200):
    return render(
        "scheduling/setup/templates.html",
        form=form,
        provider_id=provider_id,
        providers=providers(),
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
                today=clinic_today(),
            )
        except Refused as error:
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
    provider_id = setup.get_or_404(AvailabilityBlock, block_id).provider_id
    if DeleteForm().validate_on_submit():
        setup.delete_block(_actor(), block_id)
        flash("Removed the block.", "success")
    return redirect(url_for("scheduling.setup_templates", provider_id=provider_id))


# --- exceptions -----------------------------------------------------------------------------


def _exception_form() -> ExceptionForm:
    form = ExceptionForm()
    form.provider_id.choices = _choices(
        providers(), label=lambda p: p.full_name, blank="Choose a provider"
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
                today=clinic_today(),
            )
        except Refused as error:
            _attach_error(form, error)
        else:
            flash("Saved the exception.", "success")
            if exception.kind == "time_off":
                booked = count_active_appointments(
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
        providers_by_id={p.id: p for p in providers(include_disabled=True)},
        locations_by_id={loc.id: loc for loc in setup.locations()},
        delete_form=DeleteForm(),
        status=422 if form.errors or form.form_errors else 200,
    )


@bp.post("/setup/exceptions/<int:exception_id>/delete")
@require("schedule.manage")
def setup_delete_exception(exception_id: int):
    if DeleteForm().validate_on_submit():
        setup.delete_exception(_actor(), exception_id)
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
                today=clinic_today(),
            )
        except Refused as error:
            _attach_error(form, error)
        else:
            flash("Saved the closure.", "success")
            return redirect(url_for("scheduling.setup_closures"))
    return render(
        "scheduling/setup/closures.html",
        form=form,
        closures=setup.upcoming_closures(clinic_today()),
        locations_by_id={loc.id: loc for loc in setup.locations()},
        delete_form=DeleteForm(),
        status=422 if form.errors or form.form_errors else 200,
    )


@bp.post("/setup/closures/<int:closure_id>/delete")
@require("schedule.manage")
def setup_delete_closure(closure_id: int):
    if DeleteForm().validate_on_submit():
        setup.delete_closure(_actor(), closure_id)
        flash("Removed the closure.", "success")
    return redirect(url_for("scheduling.setup_closures"))
