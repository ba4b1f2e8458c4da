"""Starting encounters (from an appointment, ad hoc) and the encounter page.

The encounter page shows the encounter and composes the sections of the other topics
(notes, vitals, immunizations, problems, medications): each topic's views register the
function giving its section's context with ``@encounter_section``, so this module imports
none of them, and a topic whose post was refused renders the whole page again through
``render_encounter_page``.

Thin views: load -> authorize (@require, then the services' object checks) -> call a
service -> render the page, or its fragment for htmx.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from flask import flash, redirect, request, url_for

from portal.actors import Actor
from portal.auth.permissions import require
from portal.charting import bp
from portal.charting.encounters import services as encounters
from portal.charting.encounters.forms import EncounterForm
from portal.charting.encounters.services import EncounterPage
from portal.charting.models import ENCOUNTER_KINDS
from portal.clinic.clock import clinic_zone, local_to_utc
from portal.clinic.services import list_locations
from portal.patients.services import view_patient
from portal.timeutil import utcnow
from portal.transaction import Refused
from portal.web import attach_error, current_actor, render

SectionContext = Callable[[Actor, EncounterPage], dict]
_SECTIONS: list[SectionContext] = []


def encounter_section(context: SectionContext) -> SectionContext:
    """Register a section of the encounter page: ``context(actor, page)`` returns what its
    fragment needs. No audit event: the page records its own view."""
    _SECTIONS.append(context)
    return context


def encounter_url(encounter_id: int, note_id: int | None = None) -> str:
    """The encounter page's address, at one of its notes when ``note_id`` is given."""
    anchor = f"#note-{note_id}" if note_id else ""
    return url_for("charting.encounter_page", encounter_id=encounter_id) + anchor


def render_encounter_page(encounter_id: int, status: int = 200, **state):
    """The encounter page, audited as a view; ``state`` carries what a refused post leaves
    on it (for the notes: per note id, ``typed`` text, ``errors``, ``conflicts``,
    ``addendum_typed``, ``addendum_errors``)."""
    actor = current_actor()
    page = encounters.view_encounter(actor, encounter_id)
    context = {
        "visit": page,
        "encounter": page.encounter,
        "patient": page.patient,
        "encounter_kinds": ENCOUNTER_KINDS,
    }
    for section in _SECTIONS:
        context.update(section(actor, page))
    context.update(state)
    return render("charting/encounters/encounter.html", status=status, **context)


# --- starting encounters ---------------------------------------------------------------------


@bp.post("/appointments/<int:appointment_id>/start-visit")
@require("chart.write")
def start_visit(appointment_id: int):
    """Open the appointment's encounter (made the first time; the visit goes "with provider")."""
    try:
        encounter = encounters.start_visit(current_actor(), appointment_id)
    except Refused as error:
        flash(error.message, "danger")
        return redirect(
            url_for("scheduling.appointment_status", appointment_id=appointment_id), 303
        )
    return redirect(encounter_url(encounter.id), 303)


def _encounter_form() -> EncounterForm:
    form = EncounterForm()
    form.provider_id.choices = [(None, "Choose…"), *encounters.prescriber_names()]
    form.location_id.choices = [(None, "None")] + [
        (location.id, location.name) for location in list_locations() if location.is_active
    ]
    if request.method == "GET":
        form.request_key.data = secrets.token_hex(16)
        now = utcnow().astimezone(clinic_zone())
        form.occurred_on.data = now.date()
        form.occurred_time.data = now.time().replace(second=0, microsecond=0)
        actor = current_actor()
        if actor.has_permission("chart.sign"):
            form.provider_id.data = actor.id
    return form


@bp.route("/patients/<int:patient_id>/encounters/new", methods=["GET", "POST"])
@require("chart.write")
def new_encounter(patient_id: int):
    """An ad hoc encounter (phone call, walk-in): the form, then the new encounter's page
    (the first one's when the same form is sent twice)."""
    form = _encounter_form()
    if request.method == "POST":
        if form.validate():
            try:
                encounter = encounters.create_encounter(
                    current_actor(),
                    patient_id,
                    kind=form.kind.data,
                    provider_id=form.provider_id.data,
                    location_id=form.location_id.data,
                    chief_complaint=form.chief_complaint.data,
                    occurred_at=local_to_utc(form.occurred_on.data, form.occurred_time.data),
                    request_key=form.request_key.data,
                )
            except Refused as error:
                attach_error(form, error)
            else:
                return redirect(encounter_url(encounter.id), 303)
        patient = view_patient(current_actor(), patient_id, purpose="new encounter")
        return render(
            "charting/encounters/encounter_new.html", form=form, patient=patient, status=422
        )
    patient = view_patient(current_actor(), patient_id, purpose="new encounter")
    return render("charting/encounters/encounter_new.html", form=form, patient=patient)


# --- the encounter page ----------------------------------------------------------------------


@bp.get("/encounters/<int:encounter_id>")
@require("chart.read")
def encounter_page(encounter_id: int):
    """One encounter: the patient banner, its notes, vitals, immunizations, problems and
    medications."""
    return render_encounter_page(encounter_id)
