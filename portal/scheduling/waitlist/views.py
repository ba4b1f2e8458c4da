"""The waitlist page (who waits for an earlier slot, and the form to add someone) and the
matches for a freed appointment's time, each with a "Book this slot" button.

Thin views: load -> authorize (@require) -> call a service of
portal.scheduling.waitlist.services -> render the page, or its fragment for htmx.
"""

from __future__ import annotations

from flask import current_app, flash, redirect, url_for

from portal.auth.permissions import require
from portal.patients.services import search_patients
from portal.scheduling import bp
from portal.scheduling.services import appointment_types, providers
from portal.scheduling.waitlist import services
from portal.scheduling.waitlist.forms import WaitlistForm
from portal.transaction import Refused
from portal.web import current_actor as _actor
from portal.web import is_htmx_request, render


def _waitlist_form(formdata=True) -> WaitlistForm:
    form = WaitlistForm() if formdata else WaitlistForm(formdata=None)
    form.appointment_type_id.choices = [(0, "Choose…")] + [
        (t.id, t.name) for t in appointment_types(active_only=True)
    ]
    form.provider_ids.choices = [(p.id, p.full_name) for p in providers()]
    return form


def _waitlist_page(form: WaitlistForm, status: int = 200):
    chosen = None
    if form.patient_id.data and not form.patient_id.errors:
        # The patient already chosen stays chosen when the form comes back with an error.
        chosen = services.patient_or_none(form.patient_id.data)
    rows = services.list_waitlist(_actor())
    return render(
        "scheduling/waitlist/waitlist.html",
        fragment="scheduling/waitlist/_waitlist.html",
        form=form,
        rows=rows,
        chosen=chosen,
        status=status,
    )


@bp.post("/waitlist/patients")
@require("schedule.write")
def waitlist_patient_options():
    """The registry search, answered as choices (radio buttons) for the waitlist form."""
    form = WaitlistForm()
    outcome = search_patients(
        _actor(), form.patient_query.data or "", current_app.config["DEFAULT_PHONE_REGION"]
    )
    return render(
        "scheduling/waitlist/_patient_options.html",
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
        services.add_waitlist_entry(
            _actor(),
            patient_id=form.patient_id.data,
            appointment_type_id=form.appointment_type_id.data,
            provider_ids=form.provider_ids.data or [],
            earliest_day=form.earliest_day.data,
            latest_day=form.latest_day.data,
            notes=form.notes.data,
        )
    except Refused as error:
        getattr(form, error.field or "patient_id").errors.append(error.message)
        return _waitlist_page(form, status=error.status)
    if not is_htmx_request():
        flash("Added to the waitlist.", "success")
        return redirect(url_for("scheduling.waitlist"), 303)
    return _waitlist_page(_waitlist_form(formdata=False))


@bp.post("/waitlist/<int:entry_id>/remove")
@require("schedule.write")
def remove_waitlist_entry(entry_id: int):
    """Take an entry off the waitlist."""
    services.remove_waitlist_entry(_actor(), entry_id)
    if not is_htmx_request():
        flash("Removed from the waitlist.", "success")
        return redirect(url_for("scheduling.waitlist"), 303)
    return _waitlist_page(_waitlist_form(formdata=False))


@bp.get("/appointments/<int:appointment_id>/waitlist-matches")
@require("schedule.read")
def waitlist_matches(appointment_id: int):
    """Waitlist entries that could take a freed (cancelled) appointment's time."""
    appointment, rows = services.show_waitlist_matches(_actor(), appointment_id)
    return render(
        "scheduling/waitlist/waitlist_matches.html",
        fragment="scheduling/waitlist/_waitlist_matches.html",
        appointment=appointment,
        matches=rows,
        book_url=url_for("scheduling.book"),
    )
