"""Immunizations: the patient's page, an encounter's section, and marking one entered in
error.

Thin views: load -> authorize (@require; ids through the services, which 404) -> call a
service in portal.charting.immunizations -> render the page, or its fragment for htmx.
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for

from portal.auth.permissions import require
from portal.charting import bp
from portal.charting.encounters.services import get_encounter_for
from portal.charting.encounters.views import encounter_section
from portal.charting.immunizations import services as immunization_services
from portal.charting.immunizations.forms import ImmunizationEnteredInErrorForm, ImmunizationForm
from portal.charting.models import IMMUNIZATION_SOURCES
from portal.patients.services import death_limit, get_patient_for
from portal.transaction import Refused
from portal.web import attach_error, current_actor, is_htmx_request, render


def _immunizations_page(patient_id: int, form: ImmunizationForm, status: int = 200):
    patient, rows = immunization_services.view_immunizations(current_actor(), patient_id)
    return render(
        "charting/immunizations/immunizations.html",
        status=status,
        patient=patient,
        immunizations=rows,
        immunizations_after_death=death_limit(patient),
        form=form,
        sources=IMMUNIZATION_SOURCES,
        routes=immunization_services.ROUTES,
    )


@bp.get("/patients/<int:patient_id>/immunizations")
@require("chart.read")
def immunizations(patient_id: int):
    """The patient's immunizations and refusals, newest first, and a form to add one."""
    return _immunizations_page(patient_id, ImmunizationForm(formdata=None))


@bp.post("/patients/<int:patient_id>/immunizations")
@require("chart.write")
def add_immunization(patient_id: int):
    """Record an immunization (or a refusal) outside any visit."""
    form = ImmunizationForm()
    if form.validate():
        try:
            immunization_services.record_immunization(current_actor(), patient_id, **form.details())
        except Refused as error:
            attach_error(form, error)
        else:
            flash("Immunization recorded.", "success")
            return redirect(url_for("charting.immunizations", patient_id=patient_id), 303)
    return _immunizations_page(patient_id, form, status=422)


def _encounter_form(section, formdata=None) -> ImmunizationForm:
    """The encounter page's immunization form: prefixed (the page holds other forms), its
    date set to the day of the visit until the user types another, unless that day is after
    a recorded death: a date that would be refused is left for the user to give."""
    # CSRFProtect checks every POST; the page sends its token.
    if formdata is not None:
        return ImmunizationForm(formdata=formdata, prefix="immunization", meta={"csrf": False})
    limit = section.after_death
    day = section.visit_day
    return ImmunizationForm(
        formdata=None,
        prefix="immunization",
        meta={"csrf": False},
        data={"occurred_on": day} if limit is None or limit.allows(day) else None,
    )


def encounter_immunizations_context(encounter, form=None) -> dict:
    """What `charting/immunizations/_encounter_immunizations.html` needs (no audit: the page
    that includes it records its own view)."""
    section = immunization_services.encounter_immunizations_section(encounter)
    return {
        "immunizations_encounter_id": section.encounter_id,
        "immunizations_patient_id": section.patient_id,
        "encounter_immunizations": section.immunizations,
        "encounter_immunizations_in_error": section.in_error,
        "immunization_form": form if form is not None else _encounter_form(section),
        "immunization_sources": IMMUNIZATION_SOURCES,
        "immunization_routes": immunization_services.ROUTES,
        "immunizations_after_death": section.after_death,
        "immunizations_visit_after_death": section.visit_after_death,
    }


@encounter_section
def immunizations_section(actor, page) -> dict:
    """The encounter page's immunizations section."""
    return encounter_immunizations_context(page.encounter)


def _encounter_immunizations(encounter, form=None, status: int = 200):
    """The encounter's immunizations section: alone for htmx, else on a page of its own
    under the patient's banner (a form with errors, no script)."""
    context = encounter_immunizations_context(encounter, form)
    patient = get_patient_for(current_actor(), encounter.patient_id)
    return render(
        "charting/immunizations/immunizations_encounter.html",
        fragment="charting/immunizations/_encounter_immunizations.html",
        status=status,
        patient=patient,
        **context,
    )


@bp.post("/encounters/<int:encounter_id>/immunizations")
@require("chart.write")
def record_encounter_immunization(encounter_id: int):
    """Record an immunization (or a refusal) at this visit; htmx gets the section back."""
    encounter = get_encounter_for(current_actor(), encounter_id)
    form = ImmunizationForm(formdata=request.form, prefix="immunization", meta={"csrf": False})
    if form.validate():
        try:
            immunization_services.record_encounter_immunization(
                current_actor(), encounter.id, **form.details()
            )
        except Refused as error:
            attach_error(form, error)
        else:
            if is_htmx_request():
                return _encounter_immunizations(encounter)
            flash("Immunization recorded.", "success")
            return redirect(
                url_for("charting.encounter_page", encounter_id=encounter.id)
                + "#encounter-immunizations",
                303,
            )
    return _encounter_immunizations(encounter, form, status=422)


def _from_visit(encounter_id: int | None) -> bool:
    """The record was opened from its visit's page (the link there says ``from=encounter``)."""
    return encounter_id is not None and request.values.get("from") == "encounter"


def _immunization_home(patient_id: int, encounter_id: int | None) -> str:
    """Where to go back to: the visit's page when the user came from there (the record leaves
    that list), else the immunization page, where it stays, struck out."""
    if _from_visit(encounter_id):
        return url_for("charting.encounter_page", encounter_id=encounter_id) + (
            "#encounter-immunizations"
        )
    return url_for("charting.immunizations", patient_id=patient_id)


def _immunization_error_page(patient_id: int, immunization_id: int, form, status: int = 200):
    patient, row = immunization_services.view_immunization_to_mark(
        current_actor(), patient_id, immunization_id
    )
    return render(
        "charting/immunizations/immunization_entered_in_error.html",
        status=status,
        patient=patient,
        immunization=row,
        form=form,
        sources=IMMUNIZATION_SOURCES,
        routes=immunization_services.ROUTES,
        came_from="encounter" if _from_visit(row.encounter_id) else None,
        back_url=_immunization_home(patient.id, row.encounter_id),
    )


@bp.get("/patients/<int:patient_id>/immunizations/<int:immunization_id>/entered-in-error")
@require("chart.write")
def confirm_immunization_error(patient_id: int, immunization_id: int):
    """Ask before marking an immunization entered in error: the record, a reason, a box."""
    return _immunization_error_page(
        patient_id, immunization_id, ImmunizationEnteredInErrorForm(formdata=None)
    )


@bp.post("/patients/<int:patient_id>/immunizations/<int:immunization_id>/entered-in-error")
@require("chart.write")
def mark_immunization_error(patient_id: int, immunization_id: int):
    """Mark an immunization entered in error (kept, struck out on the immunization page, left
    out of the visit's lists and the chart summary's count) once the reason is given and the
    box ticked; otherwise the page again, 422, and nothing changed."""
    form = ImmunizationEnteredInErrorForm()
    if form.validate():
        try:
            marked = immunization_services.mark_entered_in_error(
                current_actor(), patient_id, immunization_id, form.reason.data
            )
        except Refused as error:
            attach_error(form, error)
        else:
            flash("Marked as entered in error.", "success")
            return redirect(_immunization_home(patient_id, marked.encounter_id), 303)
    return _immunization_error_page(patient_id, immunization_id, form, status=422)
